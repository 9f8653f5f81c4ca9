"""The in-place swap of a key that foreign keys reference, against a writer of the referencing
table: found by the corpus test on optuna's models (tests/corpus/test_expand_contract.py), where
old replicas insert into trial_values while trials.trial_id is swapped.

The swap takes the table's ACCESS EXCLUSIVE lock (dropping the sync trigger), then the
referencing tables' (dropping the primary key CASCADE). A writer that holds a referencing table
(an INSERT locks its target, then the table its SELECT or foreign key check reads) and queues
behind the swap on the table starts waiting *before* the swap waits for the referencing table:
its deadlock check (deadlock_timeout after its wait began) fired first, so the writer, not the
swap, was rolled back with ``deadlock detected``. The swap now yields instead: it takes every lock
it needs before changing anything, waiting less than deadlock_timeout, else rolls back and retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import WIDE_KEY, expand
from worker.engine.backfill import BackfillSettings
from worker.engine.backfill_steps import enforce
from worker.engine.connection import connect
from worker.engine.expand_sql import render

pytestmark = pytest.mark.postgres

SCHEMA = """
CREATE TABLE public.users (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.posts (id serial PRIMARY KEY, note text,
                           user_id integer NOT NULL REFERENCES public.users);
"""
ROWS = """
INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, 20) g;
INSERT INTO public.posts (user_id) SELECT g FROM generate_series(1, 20) g;
"""
#: room for the test to line the sessions up while the swap waits behind the reader
SETTINGS = BackfillSettings(lock_timeout_ms=4000)


async def _waiting(watcher: asyncpg.Connection, pid: int, unless: asyncio.Task[Any]) -> None:
    """Until backend ``pid`` waits for a lock, or ``unless`` is done."""
    for _ in range(1000):
        if unless.done() or await watcher.fetchval(
            "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted", pid
        ):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_a_writer_of_a_referencing_table_is_not_the_deadlock_victim(
    database: FreshDatabase,
) -> None:
    await database.execute(SCHEMA)
    runner = await connect(database.dsn)
    reader, writer, watcher = [await asyncpg.connect(database.dsn) for _ in range(3)]
    swap: asyncio.Task[None] | None = None
    try:
        await expand(runner, WIDE_KEY)
        await database.execute(ROWS)  # written through the trigger: nothing to backfill
        steps = render(WIDE_KEY).enforce
        at = next(i for i, s in enumerate(steps) if "PRIMARY KEY USING INDEX" in s.sql)  # swap
        await enforce(runner, WIDE_KEY, steps[:at], 0, SETTINGS)
        reader_tx = reader.transaction()
        await reader_tx.start()
        await reader.fetchval("SELECT count(*) FROM public.users")  # holds users briefly
        swap = asyncio.create_task(enforce(runner, WIDE_KEY, steps, at, SETTINGS))
        await _waiting(watcher, runner.get_server_pid(), swap)  # queued behind the reader
        writer_tx = writer.transaction()
        await writer_tx.start()
        await writer.execute("UPDATE public.posts SET note = 'w' WHERE id = 1")  # holds posts
        reads = asyncio.create_task(writer.fetchval("SELECT max(id) FROM public.users"))
        await _waiting(watcher, writer.get_server_pid(), reads)  # queued behind the swap
        await reader_tx.commit()  # the swap takes users, then waits for posts
        assert await reads == 20  # not: DeadlockDetectedError
        await writer_tx.commit()
        await swap
        key = await watcher.fetchval(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'public.users'::regclass AND attname = 'id'"
        )
        assert key == "bigint"
    finally:
        for conn in (reader, writer, watcher):
            await conn.close()  # the writer's locks go: a swap still waiting finishes
        if swap is not None:
            await asyncio.wait([swap], timeout=30)
        await runner.close()
