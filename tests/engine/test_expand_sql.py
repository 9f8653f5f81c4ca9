"""The SQL of online column migrations (:mod:`worker.engine.expand_sql`): golden text per kind,
and the rules the text must keep. Pure; the SQL is run on real PostgreSQL by test_backfill*.py.

Regenerate the goldens with ``pytest tests/engine/test_expand_sql.py --update-golden``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_parts import derived_name, dollar_quoted, physical_column
from worker.engine.expand_sql import MigrationSql, on_new_row, render

GOLDEN = Path(__file__).parent / "expand_golden"


def migration(
    kind: MigrationKind, table: str, new: str, type_: str, forward: str, **more: Any
) -> ColumnMigration:
    """A migration on ``public.<table>`` keyed by ``id`` unless ``more`` says otherwise."""
    values = {"schema": "public", "key": ("id",), **more}
    return ColumnMigration(
        kind=kind, table=table, new_column=new, new_type=type_, forward=forward, **values
    )


R, C, B = MigrationKind.RENAME, MigrationKind.CONVERT, MigrationKind.BACKFILL
MIGRATIONS = {
    "rename": migration(
        R,
        "users",
        "full_name",
        "text",
        "name",
        old_column="name",
        reverse="full_name",
        not_null=True,
    ),
    "convert_renamed_lossy_reverse": migration(
        C,
        "Invoices",
        "amount_cents",
        "bigint",
        "round(amount * 100)::bigint",
        schema="billing",
        key=("tenant", "no"),
        old_column="amount",
        reverse="(amount_cents / 100.0)::numeric(12,2)",
    ),
    "convert_in_place_key": migration(
        C, "orders", "id", "bigint", "id::bigint", old_column="id", in_place=True, not_null=True
    ),
    "convert_in_place_column": migration(
        C, "orders", "title", "text", "title::text", old_column="title", in_place=True
    ),
    "backfill": migration(
        B, "users", "label", "character varying(200)", "lower(name) || '#' || id", not_null=True
    ),
}


def golden_text(sql: MigrationSql) -> str:
    """Every command in the order it runs, each section headed by a comment."""
    parts = ["-- expand (one transaction)", *(s + ";" for s in sql.expand)]
    parts += ["-- backfill: stop key", sql.backfill_stop_key + ";"]
    parts += ["-- backfill: first batch", sql.backfill_first + ";"]
    parts += ["-- backfill: next batch", sql.backfill_batch + ";"]
    parts += ["-- backfill: rows left unconverted", sql.unconverted + ";"]
    for title, steps in (("enforce", sql.enforce), ("contract", sql.contract)):
        for step in steps:
            flags = [
                "transaction" if step.transactional else "no transaction",
                *(["long"] if step.long else []),
                *(["drops a column"] if step.drops_column else []),
            ]
            parts.append(f"-- {title} ({', '.join(flags)})")
            if step.reset is not None:
                parts.append(f"-- first: {step.reset};")
            parts.append(step.sql + ";")
    return "\n".join(parts) + "\n"


@pytest.mark.parametrize("name", sorted(MIGRATIONS))
def test_golden_sql(name: str, update_golden: bool) -> None:
    text = golden_text(render(MIGRATIONS[name]))
    path = GOLDEN / f"{name}.sql"
    if update_golden:
        path.write_text(text)
    assert text == path.read_text(), f"the SQL of migration {name} changed"


def test_the_same_migration_renders_the_same_text() -> None:
    for m in MIGRATIONS.values():
        assert render(m) == render(replace(m))


def test_expressions_in_the_trigger_read_the_new_row() -> None:
    assert on_new_row("lower(name) || '#' || id") == "lower(new.name) || '#' || new.id"
    assert on_new_row('"Weird Col"::bigint') == 'CAST(new."Weird Col" AS bigint)'
    # a string that looks like a column is left alone
    assert on_new_row("'name'") == "'name'"


def test_derived_names_stay_within_63_bytes_and_apart() -> None:
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    a, b = derived_name(long_a, "__sh_new"), derived_name(long_b, "__sh_new")
    assert len(a.encode()) <= 63 and len(b.encode()) <= 63
    assert a != b and a.endswith("__sh_new")
    multibyte = derived_name("é" * 31, "__sh_old")  # 62 bytes: cut on a character boundary
    assert len(multibyte.encode()) <= 63
    assert derived_name("id", "__sh_new") == "id__sh_new"


def test_in_place_writes_a_shadow_column_and_others_the_new_one() -> None:
    assert physical_column(MIGRATIONS["convert_in_place_key"]) == "id__sh_new"
    assert physical_column(MIGRATIONS["rename"]) == "full_name"


def test_object_names_stay_within_63_bytes() -> None:
    m = replace(MIGRATIONS["rename"], table="t" * 63, new_column="c" * 63)
    sql = render(m)
    assert len(sql.trigger.encode()) <= 63
    assert len(sql.function.split(".")[-1].encode()) <= 63


def test_a_body_holding_the_dollar_tag_gets_another_tag() -> None:
    assert dollar_quoted("x") == "$sh$\nx\n$sh$"
    assert dollar_quoted("a $sh$ b") == "$sh1$\na $sh$ b\n$sh1$"


def test_a_string_literal_cannot_end_the_function_body() -> None:
    m = replace(MIGRATIONS["backfill"], forward="name || '$sh$'")
    assert "$sh1$" in render(m).expand[1]


def test_only_the_column_drop_is_a_hazard_and_backfill_has_none() -> None:
    for name, m in MIGRATIONS.items():
        drops = [s for s in render(m).contract if s.drops_column]
        assert len(drops) == (0 if m.old_column is None else 1), name


def test_not_null_is_enforced_without_a_scan_under_a_strong_lock() -> None:
    enforce = render(MIGRATIONS["backfill"]).enforce
    assert [s.long for s in enforce] == [False, True, False]
    assert "NOT VALID" in enforce[0].sql and "VALIDATE" in enforce[1].sql
    assert "SET NOT NULL" in enforce[2].sql


def test_a_nullable_migration_has_nothing_to_enforce() -> None:
    assert render(MIGRATIONS["convert_renamed_lossy_reverse"]).enforce == ()


def test_a_key_swapped_in_place_builds_its_index_concurrently_first() -> None:
    enforce = render(MIGRATIONS["convert_in_place_key"]).enforce
    build = next(s for s in enforce if "CONCURRENTLY" in s.sql)
    assert not build.transactional and build.reset is not None
    assert enforce.index(build) < next(i for i, s in enumerate(enforce) if "RENAME" in s.sql)
