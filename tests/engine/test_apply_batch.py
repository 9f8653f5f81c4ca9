"""New tables' statements reach the server in one round trip per transaction, still checked by
the guard as a whole, recorded one by one, and all-or-nothing when one of them fails."""

from __future__ import annotations

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.diff import diff
from worker.engine.guard import UnsafeStatementError, check_batch
from worker.engine.heal import Outcome, RequestInfo, heal
from worker.engine.model import Realm
from worker.engine.plan import make_plan
from worker.engine.render import group_commands


def chained(count: int) -> list[dict[str, object]]:
    """``count`` new tables, each with an index and a foreign key to the one before."""
    out = []
    for i in range(count):
        columns = [column("id", "integer", nullable=False), column("name")]
        keys = []
        if i:
            columns.append(column("parent_id", "integer"))
            keys.append(fk(["parent_id"], f"t{i - 1}", ["id"]))
        out.append(table(f"t{i}", *columns, primary_key=pk("id"), foreign_keys=keys,
                         indexes=[{"elements": ["name"]}]))  # fmt: skip
    return out


async def test_new_tables_go_in_one_round_trip_per_transaction(database: FreshDatabase) -> None:
    conn = await connect(database.dsn)
    ddl: list[str] = []
    conn.add_query_logger(
        lambda q: ddl.append(q.query) if "TABLE IF NOT EXISTS public" in q.query else None
    )
    try:
        result = await heal(conn, load_manifest(manifest(*chained(5))), request=RequestInfo())
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    assert len(result.applied) == 10  # five CREATE TABLE, five CREATE INDEX
    transactions = {s.group for s in result.plan.statements}
    assert len(ddl) == len(transactions) == 1  # it was one query per statement: 10
    assert all(a.sql in ddl[0] for a in result.applied)
    assert sum(a.duration_s for a in result.applied) > 0
    rows = await database.fetch(
        "SELECT ordinal, sql, state FROM schemaheal.statements ORDER BY ordinal"
    )
    assert [(r["ordinal"], r["sql"], r["state"]) for r in rows] == [
        (a.ordinal, a.sql, "applied") for a in result.applied
    ]
    tables = await database.fetch(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind = 'r'"
    )
    assert tables[0]["count"] == 5


async def test_a_statement_failing_in_a_round_trip_leaves_none_of_its_transaction(
    database: FreshDatabase,
) -> None:
    """``t3`` cannot be created (a type of that name exists, which inspection does not read as
    a table): the whole transaction of new tables rolls back, and the ledger says so."""
    await database.execute("CREATE TYPE public.t3 AS (a integer)")
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(manifest(*chained(5))), request=RequestInfo())
        again = await heal(conn, load_manifest(manifest(*chained(5))), request=RequestInfo())
    finally:
        await conn.close()
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "statement-failed")
    assert "t3" in (result.error_message or "") and result.applied == ()
    assert again.outcome is Outcome.FAILED  # still there: nothing was half done in between
    created = await database.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    )
    assert created == []
    states = await database.fetch("SELECT DISTINCT state FROM schemaheal.statements")
    assert "applied" not in {r["state"] for r in states}


def test_the_guard_checks_a_round_trip_as_a_whole() -> None:
    desired = desired_state(load_manifest(manifest(*chained(3))))
    plan = make_plan(*diff(Realm(schemas=desired.schemas, server_version=180000), desired))
    [group] = [g for g in plan.groups() if len(g) > 1]
    parts = [sql for s, settings in group_commands(group) for sql in (*settings, s.sql)]
    check_batch(";\n".join(parts), len(parts))  # SET LOCAL and the DDL: all allowed
    with pytest.raises(UnsafeStatementError, match=f"{len(parts) - 1} statements as {len(parts)}"):
        check_batch(";\n".join(parts[:-1]), len(parts))
    smuggled = [*parts, "DROP TABLE public.t0"]
    with pytest.raises(UnsafeStatementError, match="DROP"):
        check_batch(";\n".join(smuggled), len(smuggled))
    with pytest.raises(UnsafeStatementError, match="does not parse"):  # a comment ate the ';'
        check_batch(";\n".join([parts[-1] + " -- x", parts[0]]), 2)
