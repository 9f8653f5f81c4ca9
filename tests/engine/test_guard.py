"""The last check before execution: only statement kinds a plan may contain."""

from __future__ import annotations

from pathlib import Path

import pytest
from pglast import ast, parse_sql
from pglast.parser import split

from contracts import load_manifest
from worker.engine import model as m
from worker.engine.desired import desired_state
from worker.engine.diff import diff
from worker.engine.guard import UnsafeStatementError, check
from worker.engine.plan import make_plan

CASES = Path(__file__).parent.parent / "cases"


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE public.tenants",
        "DROP INDEX public.i",  # not concurrent: takes a strong lock
        "DELETE FROM public.tenants",
        "UPDATE public.tenants SET name = ''",
        "TRUNCATE public.tenants",
        "DO $$ BEGIN PERFORM 1; END $$",
        "ALTER TABLE public.t DROP COLUMN a",
        "ALTER TABLE public.t RENAME COLUMN a TO b",
        "ALTER TABLE public.t DROP CONSTRAINT c",  # without IF EXISTS
        "ALTER TABLE public.t ATTACH PARTITION public.u FOR VALUES IN (1)",  # a table: no
        "ALTER TABLE public.t DETACH PARTITION public.u",
        "CREATE TABLE public.t (a int); DROP TABLE public.u",
        "SET search_path = public",
        "GRANT ALL ON public.t TO public",
        "SELECT pg_sleep(10)",
        "CREATE TABLE (",
        # functions and triggers: only an online migration's sync trigger
        "CREATE FUNCTION public.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
        "CREATE FUNCTION public.schemaheal_sync_1(a int) RETURNS trigger LANGUAGE sql AS $$ $$",
        "CREATE FUNCTION public.schemaheal_sync_1() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        "CREATE TRIGGER t BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()",
        "CREATE TRIGGER schemaheal_sync_1 BEFORE INSERT ON public.t FOR EACH ROW "
        "EXECUTE FUNCTION public.schemaheal_sync_2()",
    ],
)
def test_anything_a_plan_cannot_contain_is_refused(sql: str) -> None:
    with pytest.raises(UnsafeStatementError, match="refusing"):
        check(sql)


def test_a_partition_index_may_be_attached_to_its_parent_index() -> None:
    check("ALTER INDEX public.events_name_idx ATTACH PARTITION public.events_1_events_name_idx_p")
    check("CREATE INDEX IF NOT EXISTS i ON ONLY public.events USING btree (name)")


def test_every_golden_statement_passes() -> None:
    """All SQL of the golden cases, one command at a time, is of an allowed kind."""
    count = 0
    for expected in sorted(CASES.glob("*/expected.sql")):
        text = expected.read_text().split("\n-- drift ")[0].split("\n-- migration ")[0]
        text = text.split("\n-- contract ")[0]  # the statements, without the trailing comments
        for command in split(text):  # PostgreSQL's own splitting: function bodies hold ';'
            if command not in ("BEGIN", "COMMIT"):
                check(command)
                count += 1
    assert count > 100


UNUSUAL = ["x--y", "a/*b", "c*/", "$$d", "e)f", "g(h", "i,j", "k l", "Mixed", "select", "m.n", "%s"]


def test_unusual_names_are_always_quoted_and_read_back_as_themselves() -> None:
    """Names a manifest now accepts that would end a comment, a list or a statement if pasted
    into SQL: every statement of their plan passes the guard and names exactly them."""
    columns = [{"name": n, "type": "integer"} for n in UNUSUAL]
    manifest = load_manifest(
        {
            "service": "s",
            "database": "d",
            "schemas": ["Odd Schema"],
            "tables": [
                {
                    "schema": "Odd Schema",
                    "name": "t--1",
                    "columns": columns,
                    "unique": [{"name": "u/*", "columns": ["x--y"]}],
                    "indexes": [{"elements": UNUSUAL[:4]}],
                    "checks": [{"expression": '"e)f" > 0'}],
                }
            ],
        }
    )
    changes, drift = diff(m.Realm(schemas=frozenset()), desired_state(manifest))
    plan = make_plan(changes, drift)
    seen: set[str] = set()
    for statement in plan.statements:
        check(statement.sql)
        [parsed] = parse_sql(statement.sql)
        seen.update(_identifiers(parsed.stmt))
    assert set(UNUSUAL) | {"Odd Schema", "t--1", "u/*"} <= seen


def _identifiers(node: object) -> set[str]:
    """Every string that names something in a parse tree (column, relation, constraint, …)."""
    found: set[str] = set()
    if isinstance(node, (list, tuple)):
        for item in node:
            found |= _identifiers(item)
    elif isinstance(node, ast.Node):
        for slot in node.__slots__:  # type: ignore[attr-defined]
            value = getattr(node, slot)
            if isinstance(value, str) and slot in (
                "colname",
                "relname",
                "schemaname",
                "conname",
                "idxname",
                "name",
                "sval",
                "schemaname",
            ):
                found.add(value)
            else:
                found |= _identifiers(value)
    return found


def test_a_batch_is_checked_without_stopping_for_the_cycle_collector() -> None:
    """A heal's batch of new tables parses into tens of thousands of small acyclic objects; the
    cycle collector, left running, stopped dozens of times to scan them (and, in a worker whose
    caches hold many objects, every one of those): about three quarters of the guard's time in
    a 1000-table heal (bench.heal_empty). Paused there, it runs at most once, when it is on
    again (before: six times for this batch)."""
    import gc

    from worker.engine.guard import check_batch

    statements = [
        f"CREATE TABLE public.t{i} (id bigint NOT NULL, name text NOT NULL DEFAULT 'x', "
        f"CONSTRAINT t{i}_pkey PRIMARY KEY (id)); CREATE INDEX IF NOT EXISTS ix_t{i} "
        f"ON public.t{i} (name)"
        for i in range(100)
    ]
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    assert gc.isenabled()
    gc.callbacks.append(count)
    try:
        check_batch("; ".join(statements), 200)
    finally:
        gc.callbacks.remove(count)
    assert len(runs) <= 1
    assert gc.isenabled()
