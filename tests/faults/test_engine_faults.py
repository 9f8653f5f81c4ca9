"""The engine under faults on a real PostgreSQL: a connection lost mid-heal and a table held
by another session. Every fault ends in a result the gate can act on, never an exception."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from worker.engine.apply import AppliedStatement, RetryPolicy
from worker.engine.connection import connect, translate
from worker.engine.heal import HealOptions, Outcome, RequestInfo, heal
from worker.engine.plan import PlanSettings
from worker.errors import DatabaseUnavailable, RetryableError

WANT = load_manifest(json.dumps(manifest(table("tenants", column("id", "integer", nullable=False), column("name"),
                      primary_key=pk("id")))))  # fmt: skip


async def test_a_connection_closed_mid_heal_is_a_retryable_result_not_an_exception(
    database: FreshDatabase,
) -> None:
    """The issue's "PostgreSQL restarted mid-heal": recording the heal on the dead connection
    raised ``InterfaceError: connection is closed`` out of ``heal``, losing the batch."""
    conn = await connect(database.dsn)

    def lose_connection(_: AppliedStatement) -> None:
        conn.terminate()  # the connection dies right after the first statement committed

    result = await heal(conn, WANT, observe=lose_connection)
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "database-unavailable", result.error_message
    assert result.ledger_id is not None  # the intent row, written before applying
    conn = await connect(database.dsn)
    try:
        row = await conn.fetchrow("SELECT * FROM schemaheal.heals WHERE id = $1", result.ledger_id)
        assert row["outcome"] == "running"  # nobody could close it: the connection is gone
        committed = await _statements(conn, result.ledger_id)
        assert committed, "the statement that committed is in the ledger"
        again = await heal(conn, WANT)  # the next heal closes it and finishes from the catalog
        closed = await conn.fetchrow(
            "SELECT * FROM schemaheal.heals WHERE id = $1", result.ledger_id
        )
        assert await _statements(conn, result.ledger_id) == committed
    finally:
        await conn.close()
    assert again.satisfied, again.error_message
    assert closed["outcome"] == "interrupted"
    assert f"{len(committed)} of {closed['planned']} planned" in closed["error_message"]
    assert again.ledger_id != result.ledger_id


async def _statements(conn: asyncpg.Connection, heal_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT sql FROM schemaheal.statements WHERE heal_id = $1 "
        "AND state IN ('applied', 'confirmed') ORDER BY ordinal",
        heal_id,
    )
    return [row["sql"] for row in rows]


def test_every_lost_connection_error_is_retryable() -> None:
    lost = [
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator"),
        asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.ProtocolError("unexpected message"),
        ConnectionResetError("reset by peer"),
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        OSError("network unreachable"),
    ]
    for exc in lost:
        assert isinstance(translate(exc, "doing"), DatabaseUnavailable), exc


async def test_inspection_behind_an_exclusive_lock_is_retried_then_reported(
    database: FreshDatabase,
) -> None:
    """Another session holds ACCESS EXCLUSIVE on the table: the heal's catalog reads wait at
    most ``lock_timeout`` each, are retried within the budget, and the heal ends with a
    retryable ``lock-budget-exhausted`` naming what it was doing, instead of stalling."""
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY); "
                           "INSERT INTO tenants VALUES (1)")  # fmt: skip
    wanted = load_manifest(json.dumps(manifest(table(
        "tenants", column("id", "integer", nullable=False), column("plan", "text", nullable=False),
        primary_key=pk("id")))))  # fmt: skip
    holder = await asyncpg.connect(database.dsn)
    conn = await connect(
        database.dsn, timeouts=PlanSettings(lock_timeout_ms=200, statement_timeout_ms=5000)
    )
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
        options = HealOptions(retry=RetryPolicy(budget_s=1.5, first_wait_s=0.05, max_wait_s=0.2))
        result = await asyncio.wait_for(heal(conn, wanted, options=options), 30)
        assert result.error_code == "lock-budget-exhausted", result.error_message
        assert "inspecting" in (result.error_message or "")
        await tx.rollback()
        again = await heal(conn, wanted, options=options)  # the lock is gone: the same heal runs
        assert again.outcome is Outcome.BLOCKED or again.satisfied, again.error_message
    finally:
        await holder.close()
        await conn.close()


async def test_catalog_queries_run_with_lock_and_statement_timeouts(
    database: FreshDatabase,
) -> None:
    conn = await connect(
        database.dsn, timeouts=PlanSettings(lock_timeout_ms=1500, statement_timeout_ms=20_000)
    )
    try:
        assert await conn.fetchval("SHOW lock_timeout") == "1500ms"
        assert await conn.fetchval("SHOW statement_timeout") == "20s"
        result = await heal(conn, WANT)  # apply sets its own timeouts, then restores these
        assert result.outcome is Outcome.HEALED
        assert await conn.fetchval("SHOW lock_timeout") == "1500ms"
        assert await conn.fetchval("SHOW statement_timeout") == "20s"
    finally:
        await conn.close()
    assert issubclass(DatabaseUnavailable, RetryableError)


async def test_an_index_build_that_timed_out_behind_a_reader_is_rebuilt_not_skipped(
    database: FreshDatabase,
) -> None:
    """``CREATE INDEX CONCURRENTLY`` waits for older transactions under ``lock_timeout``; timed
    out, it leaves an INVALID index, whose cleanup (``DROP INDEX CONCURRENTLY``) times out too
    behind the same reader. The retry (``IF NOT EXISTS``) then saw the name and did nothing:
    "applied" in 0.3 ms, and the heal failed its verification. Found by the broker-outage fault
    test. The retry must drop the leftover first, and the heal must end healed."""
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY, name text)")
    wanted = load_manifest(json.dumps(manifest(table(
        "tenants", column("id", "integer", nullable=False), column("name"), primary_key=pk("id"),
        indexes=[{"name": "tenants_name_idx", "elements": [{"column": "name"}]}]))))  # fmt: skip
    reader = await asyncpg.connect(database.dsn)
    conn = await connect(database.dsn)
    try:
        await reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM tenants")

        async def let_go() -> None:
            await asyncio.sleep(2)
            await reader.execute("COMMIT")

        releasing = asyncio.create_task(let_go())
        options = HealOptions(plan=PlanSettings(lock_timeout_ms=200, concurrent_lock_timeout_ms=200),
                              retry=RetryPolicy(budget_s=30, first_wait_s=0.05, max_wait_s=0.5))  # fmt: skip
        result = await heal(conn, wanted, options=options)
        await releasing
        valid = await conn.fetchval("SELECT bool_and(indisvalid) FROM pg_index "
                                    "WHERE indrelid = 'public.tenants'::regclass")  # fmt: skip
    finally:
        await reader.close()
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    assert result.applied[-1].retries > 0  # it did wait behind the reader
    assert valid


async def test_a_request_healed_by_another_worker_while_waiting_gets_that_heals_outcome(
    database: FreshDatabase,
) -> None:
    """A rebalance hands a record over while its first worker is mid-heal: the second worker
    read the ledger before the first finished, then waited for the locks, then found nothing to
    do and answered ``unchanged`` — a duplicate reply with another outcome (the 3-worker fault
    test). Re-checked under the locks, it answers with the first heal's outcome and row."""
    conn = await connect(database.dsn)
    try:
        request = RequestInfo(request_id="handed-over", service="orchestrator")
        first = await heal(conn, WANT, request=request)
        second = await heal(conn, WANT, request=request)
        rows = await conn.fetchval("SELECT count(*) FROM schemaheal.heals")
    finally:
        await conn.close()
    assert first.outcome is Outcome.HEALED
    assert (second.outcome, second.ledger_id) == (Outcome.HEALED, first.ledger_id)
    assert rows == 1
