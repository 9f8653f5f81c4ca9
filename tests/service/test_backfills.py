"""The worker's background backfills on a real PostgreSQL: a migration a heal registers is taken
up at once (woken on commit, not by the poll), and stopping the worker mid-backfill leaves a
record that the next worker resumes from."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME, USERS, expand, expanded_users, wait_for_batches
from worker.engine import backfill_store as store
from worker.engine.connection import connect
from worker.service.backfills import Backfills
from worker.settings import WorkerSettings

pytestmark = pytest.mark.postgres


def settings(database: FreshDatabase, **extra: object) -> WorkerSettings:
    values = {"databases": {"nexus": database.dsn}, "backfill_poll_s": 600.0, **extra}
    return WorkerSettings(**values)  # type: ignore[arg-type]


async def state(database: FreshDatabase, until: str, *, timeout_s: float = 30) -> store.Progress:
    conn = await connect(database.dsn)
    try:
        for _ in range(int(timeout_s * 20)):
            record = await store.progress(conn, RENAME.id)
            if record is not None and record.state == until:
                return record
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError(f"the migration never reached {until}")


async def test_a_registered_migration_is_backfilled_without_waiting_for_the_poll(
    database: FreshDatabase,
) -> None:
    await database.execute(USERS.format(rows=500))
    backfills = Backfills(settings(database))
    await backfills.start()
    try:
        for _ in range(200):  # the first round, which found nothing
            if backfills.rounds.get("nexus", 0):
                break
            await asyncio.sleep(0.05)
        conn = await connect(database.dsn)
        try:
            await expand(conn, RENAME)  # notifies on commit
        finally:
            await conn.close()
        record = await state(database, store.EXPANDED, timeout_s=20)  # the poll is 600 s
        assert record.rows_scanned == 500
    finally:
        await backfills.stop()


async def test_a_worker_stopped_mid_backfill_leaves_it_to_the_next(
    database: FreshDatabase,
) -> None:
    rows = 3000
    conn = await expanded_users(database, rows, RENAME)
    try:
        fixed = {"backfill_batch_rows": 100, "backfill_batch_target_ms": 0}
        first = Backfills(settings(database, backfill_pause_s=0.05, **fixed))
        await first.start()
        await wait_for_batches(conn, RENAME.id, 3)
        await first.stop()
        stopped = await store.progress(conn, RENAME.id)
        assert stopped is not None and stopped.state == store.BACKFILLING
        assert 3 <= stopped.batches < rows // 100

        second = Backfills(settings(database, backfill_batch_rows=100))
        await second.start()
        try:
            record = await state(database, store.EXPANDED)
        finally:
            await second.stop()
        # the second resumed where the first stopped, its batches sized by their duration
        assert record.batches > stopped.batches and record.rows_scanned == rows
        touched = await conn.fetch("SELECT touches, count(*) FROM public.users GROUP BY 1")
        assert [tuple(r) for r in touched] == [(1, rows)]
    finally:
        await conn.close()


async def test_a_worker_creates_nothing_in_a_database_without_migrations(
    database: FreshDatabase,
) -> None:
    backfills = Backfills(settings(database))
    await backfills.start()
    try:
        for _ in range(200):
            if backfills.rounds.get("nexus", 0):
                break
            await asyncio.sleep(0.05)
        assert backfills.rounds["nexus"] >= 1
    finally:
        await backfills.stop()
    made = await database.fetch("SELECT nspname FROM pg_namespace WHERE nspname = 'schemaheal'")
    assert made == []
