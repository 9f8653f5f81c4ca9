"""The backfill's batches commit without waiting for the disk (``synchronous_commit`` off in the
runner's session): a PostgreSQL crash may lose the last batches the runner saw commit. Each
batch and its progress record are one statement, so they are lost together, and the WAL replays
commits in order: after the crash the record is never ahead of the rows, and the resumed runner
touches again exactly the rows whose batches were lost.

The crash is made deterministic: the WAL writer is stopped (SIGSTOP), so the batches' WAL stays
in PostgreSQL's shared memory, then killed (SIGKILL): the postmaster treats that as a crash of a
server process, drops its shared memory and recovers from the WAL on disk."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME, expanded_users
from worker.embedded.postgres import LocalPostgres
from worker.engine import backfill_store as store
from worker.engine.backfill import BackfillSettings, Finish, run_migration

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: commits of other sessions flush the WAL (synchronous_commit on, as PostgreSQL's default);
#: nothing else writes it out while the WAL writer is stopped: no autovacuum, no background
#: writer cleaning, no timed checkpoint
QUIET = (
    "-c synchronous_commit=on -c autovacuum=off -c bgwriter_lru_maxpages=0 "
    "-c checkpoint_timeout=3600"
)
ROWS, BATCH = 10_000, 100


@pytest.fixture
def crashable(pg_server: LocalPostgres) -> Iterator[LocalPostgres]:
    """A server of the same version that this test alone crashes."""
    server = LocalPostgres(pg_server.binaries, options=QUIET).start()
    yield server
    server.stop()


async def _pid(conn: asyncpg.Connection, backend_type: str) -> int:
    pid = await conn.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = $1", backend_type
    )
    assert pid, f"no {backend_type} process"
    return int(pid)


async def _batches(dsn: str, at_least: int, *, flush: bool = False) -> int:
    """Batches the record counts, once it counts ``at_least`` (at most 10 s); ``flush``: then
    made durable (a checkpoint flushes the WAL written before it)."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(1000):
            done = await conn.fetchval(
                "SELECT batches FROM schemaheal.migrations WHERE id = $1", RENAME.id
            )
            if done >= at_least:
                if flush:
                    await conn.execute("CHECKPOINT")
                return int(done)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    raise AssertionError(f"fewer than {at_least} batches in 10 s")


async def _reconnect(dsn: str) -> asyncpg.Connection:
    """A connection once the server has recovered from the crash (at most 30 s)."""
    for _ in range(300):
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError):
            await asyncio.sleep(0.1)
    raise AssertionError("the server did not come back after the crash")


async def _touched(conn: asyncpg.Connection) -> dict[str, int]:
    """How many rows the backfill touched, and the greatest of them (the test trigger of
    ``USERS`` counts each row's updates)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE touches = 1) AS once,
                  count(*) FILTER (WHERE touches > 1) AS again,
                  coalesce(max(id) FILTER (WHERE touches > 0), 0) AS last
             FROM public.users"""
    )
    return dict(row)


async def test_batches_a_crash_lost_are_redone_from_the_record_never_skipped(
    crashable: LocalPostgres,
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(crashable.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    walwriter = await _pid(admin, "walwriter")
    await admin.close()
    database = FreshDatabase(crashable, name)
    runner = await expanded_users(database, ROWS, RENAME)
    fixed = BackfillSettings(
        batch_rows=BATCH, batch_target_ms=0, pause_s=0.02, synchronous_commit=False
    )
    task = asyncio.create_task(run_migration(runner, RENAME, fixed))
    try:
        durable = await _batches(database.dsn, 3, flush=True)
        os.kill(walwriter, signal.SIGSTOP)  # from now on the batches' WAL stays in memory
        stopped = await _batches(database.dsn, 0)  # some may have been written before the stop
        seen = await _batches(database.dsn, stopped + 3)  # these cannot have been
        os.kill(walwriter, signal.SIGKILL)  # a server process crashed: the server restarts
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(outcome, BaseException), outcome  # the runner lost its connection
    finally:
        task.cancel()
        runner.terminate()

    conn = await _reconnect(database.dsn)
    try:
        record = await store.progress(conn, RENAME.id)
        assert record is not None and record.state == store.BACKFILLING
        # the record counts exactly the rows whose batches survived, none ahead of them
        touched = await _touched(conn)
        assert touched == {"once": record.rows_scanned, "again": 0, "last": record.rows_scanned}
        assert record.rows_scanned == record.batches * BATCH
        assert record.last_key == f'{{"id": {touched["last"]}}}'
        # the crash lost batches the runner saw commit: they did not wait for the disk
        assert durable <= record.batches < seen

        assert await run_migration(conn, RENAME, BackfillSettings(batch_rows=BATCH)) is (
            Finish.EXPANDED
        )
        touched = await _touched(conn)
        assert touched == {
            "once": ROWS,
            "again": 0,
            "last": ROWS,
        }  # none redone twice, none skipped
        assert (
            await conn.fetchval("SELECT count(*) FROM public.users WHERE full_name = name") == ROWS
        )
    finally:
        await conn.close()
