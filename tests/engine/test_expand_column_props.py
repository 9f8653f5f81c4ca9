"""The block that carries a column's own properties to the column replacing it
(:mod:`worker.engine.expand_column_props`), and where a migration runs it. Pure; the block runs
on real PostgreSQL in test_carry_column.py and test_carry_labels.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pglast.parser import parse_sql_json

from tests.engine.backfill_helpers import CENTS, LABEL, RENAME, WIDE_KEY
from worker.engine.expand import ColumnMigration
from worker.engine.expand_column_props import carry_properties, is_carry_block
from worker.engine.expand_parts import Carry
from worker.engine.expand_sql import render
from worker.engine.guard import UnsafeStatementError, check
from worker.engine.results_json import background

ODD = ["plain", "O'Brien", "two\nlines", "$sh$", "a$$b", "x--y", "c*/", "Mixed Case", "%I"]


def body(sql: str) -> str:
    """The code of the one DO statement ``sql`` is (as PostgreSQL parses it)."""
    (statement,) = json.loads(parse_sql_json(sql))["stmts"]
    (arg,) = statement["stmt"]["DoStmt"]["args"]
    return str(arg["DefElem"]["arg"]["String"]["sval"])


@pytest.mark.parametrize("name", ODD)
def test_any_name_stays_a_literal_and_the_block_is_recognised(name: str) -> None:
    sql = carry_properties(f'public."{name}"', name, f"{name}_new")
    code = body(sql)
    assert is_carry_block(code)
    check(sql)  # the guard runs it
    literal = "'" + name.replace("'", "''") + "'"
    assert f"\n  source text := {literal};\n" in code
    # the name is in the first line, a comment, with nothing that could end it
    comment = code.strip("\n").splitlines()[0]
    assert comment.startswith("-- give ") and "\n" not in comment


@pytest.mark.parametrize(
    "tamper",
    [
        lambda code: code.replace("\nBEGIN\n", "\nBEGIN\n  PERFORM pg_sleep(1);\n", 1),
        lambda code: code.replace("GRANT %s", "REVOKE %s"),
        lambda code: code.replace("-- give", "-- take"),
        lambda code: code + "\nDROP TABLE public.users;",
        lambda code: code.replace("'name'", "'name'; PERFORM 1"),
        lambda code: "",
    ],
    ids=["statement added", "grant made revoke", "comment changed", "trailing", "in a literal",
         "empty"],
)  # fmt: skip
def test_a_changed_block_is_not_recognised_and_the_guard_refuses_it(tamper: object) -> None:
    code = body(carry_properties("public.users", "name", "full_name"))
    assert callable(tamper)
    changed = tamper(code)
    assert changed != code  # the tamper applies
    assert not is_carry_block(changed)
    with pytest.raises(UnsafeStatementError):
        check(f"DO $x${changed}$x$")


def test_a_block_with_a_language_clause_is_refused() -> None:
    sql = carry_properties("public.users", "name", "full_name")
    with pytest.raises(UnsafeStatementError):
        check(sql.replace("DO $sh$", "DO LANGUAGE plpgsql $sh$", 1))


def carried_in(sql: str) -> list[tuple[str, str]]:
    """(source, target) of each carry block among ``sql``'s statements."""
    out = []
    for statement in json.loads(parse_sql_json(sql))["stmts"]:
        if "DoStmt" not in statement["stmt"]:
            continue
        (arg,) = statement["stmt"]["DoStmt"]["args"]
        code = arg["DefElem"]["arg"]["String"]["sval"]
        if is_carry_block(code):
            lines = {line.split(" := ")[0].strip(): line for line in code.splitlines()}
            source = lines["source text"].split("'")[1]
            target = lines["target text"].split("'")[1]
            out.append((source, target))
    return out


def where_carried(m: ColumnMigration) -> dict[str, list[tuple[str, str]]]:
    sql = render(m)
    swap = [s.sql for s in sql.enforce if s.carry is Carry.SWAP]
    return {
        "expand": carried_in("; ".join(sql.expand)),
        "swap": carried_in(swap[0]) if swap else [],
        "contract": [pair for step in sql.contract for pair in carried_in(step.sql)],
        "drop": [pair for s in sql.contract if s.drops_column for pair in carried_in(s.sql)],
    }


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        # a rename: at expand (the new version uses the new column at once) and at contract,
        # with the trigger's drop (not again with the column's drop, later and approved)
        (RENAME, {"expand": [("name", "full_name")], "swap": [],
                  "contract": [("name", "full_name")], "drop": []}),
        (CENTS, {"expand": [("amount", "amount_cents")], "swap": [],
                 "contract": [("amount", "amount_cents")], "drop": []}),
        # in place: at the swap, from the retired column to the one that took its name
        (WIDE_KEY, {"expand": [], "swap": [("id__sh_old", "id")], "contract": [], "drop": []}),
        (replace(WIDE_KEY, key=("tenant", "id")),
         {"expand": [], "swap": [("id__sh_old", "id")], "contract": [], "drop": []}),
        # a new column replaces none
        (LABEL, {"expand": [], "swap": [], "contract": [], "drop": []}),
    ],
    ids=["rename", "convert renamed", "in place key", "in place in a composite key", "backfill"],
)  # fmt: skip
def test_each_kind_carries_where_its_new_column_takes_over(
    m: ColumnMigration, expected: dict[str, list[tuple[str, str]]]
) -> None:
    assert where_carried(m) == expected


def test_plan_says_what_the_swap_carries() -> None:
    assert background(WIDE_KEY).endswith(
        "swap the new column in for id, with the indexes, constraints, views, triggers and "
        "policies that use it and the column's own privileges, statistics target, options, "
        "storage, compression, comment and security labels"
    )
