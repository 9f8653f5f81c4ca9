"""The backfill under the conditions that break such tools, on a real PostgreSQL: continuous
writes of both versions and rolled-back writers during it, a runner killed mid-backfill, and two
runners on one table. Every row must end converted, touched exactly once by the backfill where
nothing else writes, and the progress record must count exactly what committed."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import sys
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import (
    CENTS,
    RENAME,
    USERS,
    expand,
    expanded_users,
    wait_for_batches,
)
from worker.engine import backfill_store as store
from worker.engine.backfill import BackfillSettings, Finish, run_migration, run_pending
from worker.engine.connection import connect

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
ROOT = Path(__file__).parents[2]


async def touches(conn: asyncpg.Connection) -> dict[int, int]:
    """How many rows the backfill touched how many times."""
    rows = await conn.fetch("SELECT touches, count(*) AS n FROM public.users GROUP BY 1")
    return {r["touches"]: r["n"] for r in rows}


class Writers:
    """Old and new replicas writing during the backfill, and writers that roll back."""

    def __init__(self, dsn: str, rows: int) -> None:
        self.dsn, self.rows = dsn, rows
        self.done: Counter[str] = Counter()
        self.stop = asyncio.Event()

    async def run(self, name: str, work: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self.stop.is_set():
                await getattr(self, work)(conn)
                self.done[name] += 1
        finally:
            await conn.close()

    def some_id(self) -> int:
        return random.randint(1, self.rows)

    async def old_insert(self, conn: asyncpg.Connection) -> None:
        cents = random.randint(0, 10**6)
        await conn.execute("INSERT INTO public.users (name, amount) VALUES ('o', $1)", cents / 100)

    async def new_insert(self, conn: asyncpg.Connection) -> None:
        cents = random.randint(0, 10**6)
        await conn.execute("INSERT INTO public.users (name, amount_cents) VALUES ('n', $1)", cents)

    async def old_update(self, conn: asyncpg.Connection) -> None:
        cents = random.randint(0, 10**6)
        await conn.execute(
            "UPDATE public.users SET amount = $2 WHERE id = $1", self.some_id(), cents / 100
        )

    async def new_update(self, conn: asyncpg.Connection) -> None:
        cents = random.randint(0, 10**6)
        await conn.execute(
            "UPDATE public.users SET amount_cents = $2 WHERE id = $1", self.some_id(), cents
        )

    async def delete(self, conn: asyncpg.Connection) -> None:
        await conn.execute("DELETE FROM public.users WHERE id = $1", self.some_id())
        await asyncio.sleep(0.01)

    async def rolled_back(self, conn: asyncpg.Connection) -> None:
        """Hold a block of rows ahead of the backfill longer than its lock_timeout, then roll
        back: the rows go back to their unconverted version, and must still get converted. The
        block starts just ahead of the backfill's last committed key, so batches run into it."""
        last = await conn.fetchval(
            "SELECT (last_key->>'id')::int FROM schemaheal.migrations WHERE id = $1", CENTS.id
        )
        first = (last or 0) + random.randint(1, 150)
        with contextlib.suppress(RuntimeError):
            async with conn.transaction():
                await conn.execute(
                    "UPDATE public.users SET amount = amount + 1 WHERE id BETWEEN $1 AND $1 + 20",
                    first,
                )
                await asyncio.sleep(0.08)  # longer than the batches' lock_timeout
                raise RuntimeError("roll back")
        await asyncio.sleep(0.1)  # and let the backfill on


WORK = {
    "old_insert": "old_insert",
    "new_insert": "new_insert",
    "old_update": "old_update",
    "new_update": "new_update",
    "delete": "delete",
    "rolled_back_1": "rolled_back",
    "rolled_back_2": "rolled_back",
}


async def test_every_row_ends_converted_under_continuous_writes_and_rollbacks(
    database: FreshDatabase,
) -> None:
    rows = 6000
    conn = await expanded_users(database, rows, CENTS)
    writers = Writers(database.dsn, rows)
    try:
        tasks = [asyncio.create_task(writers.run(n, w)) for n, w in WORK.items()]
        await asyncio.sleep(0.2)  # writers under way before the backfill starts
        settings = BackfillSettings(batch_rows=100, pause_s=0.01, lock_timeout_ms=50)
        during = Counter(writers.done)
        finish = await run_migration(conn, CENTS, settings)
        during = writers.done - during
        writers.stop.set()
        await asyncio.gather(*tasks)
        assert finish is Finish.EXPANDED
        assert all(during[name] > 0 for name in WORK), during  # every kind wrote meanwhile
        wrong = await conn.fetch(
            """SELECT id, amount, amount_cents FROM public.users
                WHERE amount_cents IS DISTINCT FROM round(amount * 100)::bigint"""
        )
        assert wrong == []
        assert await conn.fetchval("SELECT count(*) FROM public.users WHERE amount IS NULL") == 0
    finally:
        writers.stop.set()
        await conn.close()


async def test_a_runner_killed_mid_backfill_resumes_without_redoing_or_skipping(
    database: FreshDatabase,
) -> None:
    rows, batch = 3000, 100
    conn = await expanded_users(database, rows, RENAME)
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.engine.backfill_child", database.dsn, str(batch), "0.05",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await wait_for_batches(conn, RENAME.id, 5)
        child.send_signal(signal.SIGKILL)
        await child.wait()
        record = await store.progress(conn, RENAME.id)
        assert record is not None and record.state == store.BACKFILLING
        done = record.batches
        assert 5 <= done < rows // batch  # killed mid-backfill
        # the record counts exactly what committed: those rows once, the others not at all
        assert record.rows_scanned == done * batch
        assert await touches(conn) == {1: done * batch, 0: rows - done * batch}

        finish = await _run_when_unlocked(conn)
        assert finish is Finish.EXPANDED
        record = await store.progress(conn, RENAME.id)
        assert record is not None and record.state == store.EXPANDED
        # resumed with batches sized by their duration, from the last committed key
        assert record.batches > done and record.rows_scanned == rows
        assert await touches(conn) == {1: rows}  # none redone, none skipped
        assert await conn.fetchval("SELECT count(*) FROM public.users WHERE full_name = name")
    finally:
        await conn.close()


async def _run_when_unlocked(conn: asyncpg.Connection) -> Finish:
    """The killed runner's session lock goes when PostgreSQL sees its connection close."""
    for _ in range(100):
        finish = await run_migration(conn, RENAME, BackfillSettings(batch_rows=100))
        if finish is not Finish.BUSY:
            return finish
        await asyncio.sleep(0.1)
    raise AssertionError("the killed runner's backfill lock was never released")


async def test_two_runners_never_backfill_one_table_at_once(database: FreshDatabase) -> None:
    rows, batch = 2000, 100
    await database.execute(USERS.format(rows=rows))
    first, second = await connect(database.dsn), await connect(database.dsn)
    try:
        await expand(first, RENAME)
        settings = BackfillSettings(batch_rows=batch, batch_target_ms=0, pause_s=0.02)
        finishes = await asyncio.gather(
            run_migration(first, RENAME, settings), run_pending(second, settings)
        )
        assert {finishes[0], *finishes[1].values()} == {Finish.EXPANDED, Finish.BUSY}
        assert await touches(first) == {1: rows}  # each batch ran once, by one runner
        record = await store.progress(first, RENAME.id)
        assert record is not None and record.batches == math.ceil(rows / batch)
    finally:
        await first.close()
        await second.close()
