"""The intent rows on a real PostgreSQL: every planned statement is in the ledger before the first
runs, and each one that did not run ends ``not-applied`` (a failed heal) or is settled from the
catalog (an interrupted one). The same with a real SIGKILL: tests/service/test_killed_concurrently.py."""

from __future__ import annotations

import asyncio
import time

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from worker.engine import ledger, ledger_intent
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import Outcome, current_plan, heal
from worker.engine.lock import advisory_key
from worker.engine.plan import PlanSettings

TOOLS = "CREATE TABLE tools (id integer PRIMARY KEY, name text, rank integer)"
WANTED = table(
    "tools", column("id", "integer", nullable=False), column("name"), column("rank", "integer"),
    column("extra"), primary_key=pk("id"),
    indexes=[{"name": "tools_rank_idx", "elements": ["rank"]},
             {"name": "tools_name_idx", "elements": ["name"]}],
)  # fmt: skip


async def _states(database: FreshDatabase, heal_id: int) -> list[tuple[str, str]]:
    rows = await database.fetch(
        "SELECT sql, state FROM schemaheal.statements WHERE heal_id = $1 ORDER BY ordinal", heal_id
    )
    return [(r["sql"].split(" ON ")[0], r["state"]) for r in rows]


async def test_a_failed_heal_lists_what_it_planned_and_what_did_not_run(
    database: FreshDatabase,
) -> None:
    await database.execute(f"{TOOLS}; INSERT INTO tools VALUES (1, 'a', 1), (2, 'a', 2)")
    unique = table("tools", column("id", "integer", nullable=False), column("name"),
                   column("rank", "integer"), column("extra"), primary_key=pk("id"),
                   unique=[{"columns": ["name"]}])  # fmt: skip
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(manifest(unique)))
    finally:
        await conn.close()
    assert result.outcome is Outcome.FAILED and result.error_code == "statement-failed"
    assert result.ledger_id is not None
    states = await _states(database, result.ledger_id)
    assert [state for _, state in states] == ["applied", "not-applied", "not-applied"]
    assert states[1][0].startswith("CREATE UNIQUE INDEX CONCURRENTLY")  # failed, cleaned up
    row = await database.fetch("SELECT planned, outcome FROM schemaheal.heals")
    assert [(r["planned"], r["outcome"]) for r in row] == [(3, "failed")]


async def test_an_interrupted_heal_is_settled_from_the_catalog(database: FreshDatabase) -> None:
    """The state a heal killed right after a ``CREATE INDEX CONCURRENTLY`` committed leaves:
    intent written, the column's row ``applied``, the first index built but its row still
    ``planned``. The next heal confirms the index from the catalog, records the second index as
    not applied, and builds only that one."""
    await database.execute(TOOLS)
    wanted = load_manifest(manifest(WANTED))
    conn = await connect(database.dsn)
    try:
        await ledger.ensure_ledger(conn, database.name)
        plan = await current_plan(conn, desired_state(wanted), PlanSettings())
        sql = [s.sql for s in plan.statements]
        assert [s.split(" ON ")[0] for s in sql] == [
            "ALTER TABLE public.tools ADD COLUMN IF NOT EXISTS extra text",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS tools_name_idx",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS tools_rank_idx",
        ]
        entry = ledger.HealRecord(manifest_hash="dead", schemas=("public",), outcome="running",
                                  started_at=time.time(), duration_s=0)  # fmt: skip
        dead = await ledger_intent.begin(conn, entry, plan.statements)
        async with conn.transaction():  # as apply runs a transactional group
            await conn.execute(sql[0])
            await conn.execute("UPDATE schemaheal.statements SET state = 'applied', "
                               "started_at = now(), duration_ms = 1 WHERE ordinal = 1")  # fmt: skip
        await conn.execute(sql[1])  # committed; then the worker died before its row
        result = await heal(conn, wanted)
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    assert [a.sql.split(" ON ")[0] for a in result.applied] == [sql[2].split(" ON ")[0]]
    assert await _states(database, dead) == [
        ("ALTER TABLE public.tools ADD COLUMN IF NOT EXISTS extra text", "applied"),
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS tools_name_idx", "confirmed"),
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS tools_rank_idx", "not-applied"),
    ]
    closed = await database.fetch("SELECT outcome, error_message FROM schemaheal.heals "
                                  "WHERE id = $1", dead)  # fmt: skip
    assert closed[0]["outcome"] == "interrupted"
    message = closed[0]["error_message"]
    assert "2 of 3 planned statement(s) committed (1 confirmed from the catalog" in message
    assert "tools_name_idx" in message and "tools_rank_idx" not in message
    # across both heals, each statement that ran is listed as having run exactly once
    ran = await database.fetch(
        "SELECT sql FROM schemaheal.statements WHERE state IN ('applied', 'confirmed')"
    )
    assert sorted(r["sql"] for r in ran) == sorted(sql)


SLOW_CLOSE = """
CREATE FUNCTION public.slow_close() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.outcome = 'running' AND NEW.outcome <> 'running' THEN
        PERFORM pg_sleep(1.5);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow_close BEFORE UPDATE ON schemaheal.heals
    FOR EACH ROW EXECUTE FUNCTION public.slow_close();
"""


async def test_the_next_heal_never_finds_a_finished_heal_running(database: FreshDatabase) -> None:
    """A heal writes its outcome while it still holds the schemas' locks: the next holder of the
    lock reads the finished row, never ``running`` (which it would close as ``interrupted``).
    A trigger makes the outcome's write slow, so a heal that unlocked first is caught."""
    await database.execute(TOOLS)
    setup = await connect(database.dsn)
    try:
        await ledger.ensure_ledger(setup, database.name)
    finally:
        await setup.close()
    await database.execute(SLOW_CLOSE)
    key = advisory_key(database.name, "public")
    conn, other = await connect(database.dsn), await connect(database.dsn)
    try:
        healing = asyncio.create_task(heal(conn, load_manifest(manifest(WANTED))))
        while not await other.fetchval("SELECT count(*) FROM schemaheal.heals"):
            assert not healing.done(), healing.result()
            await asyncio.sleep(0.01)  # the intent row: written under the lock
        for _ in range(6000):  # the next holder: takes the lock the moment it is free
            if await other.fetchval("SELECT pg_try_advisory_lock($1)", key):
                break
            await asyncio.sleep(0.005)
        else:
            raise AssertionError("the heal never released its lock")
        seen = await other.fetchval("SELECT outcome FROM schemaheal.heals")
        await other.fetchval("SELECT pg_advisory_unlock($1)", key)
        result = await healing
    finally:
        await conn.close()
        await other.close()
    assert result.outcome is Outcome.HEALED
    assert seen == "healed"
