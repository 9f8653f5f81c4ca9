"""Other sessions on a table while the worker heals it: writers and readers that never stop,
and a watcher that measures how long any of them waits *behind the worker* (its blockers, by
``pg_blocking_pids``, are worker sessions only — a wait behind the test's own lock holder is
that holder's doing, not the heal's)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

WORKER_APP = "schemaheal worker"
OTHER_APP = "faults-other-session"


@dataclass
class Traffic:
    """What the other sessions did: ids they inserted (committed), statements run, and the
    longest stretch any of them spent blocked by the worker alone."""

    inserted: list[int] = field(default_factory=list)
    statements: int = 0
    longest_wait_s: float = 0.0
    waits: int = 0


async def _writer(dsn: str, table: str, first_id: int, traffic: Traffic) -> None:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": OTHER_APP})
    next_id = first_id
    try:
        while True:
            await conn.execute(f"INSERT INTO {table} (id, name) VALUES ($1, 'w')", next_id)
            traffic.inserted.append(next_id)
            next_id += 1
            await conn.execute(f"UPDATE {table} SET name = 'u' WHERE id = $1",
                               random.randint(1, first_id - 1))  # fmt: skip
            await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id < 100")
            traffic.statements += 3
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def _long_transactions(dsn: str, table: str, top: int, hold_s: float) -> None:
    """Open transactions of ``hold_s``, one after another, each holding a row lock."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": OTHER_APP})
    try:
        while True:
            async with conn.transaction():
                await conn.execute(f"UPDATE {table} SET name = 'long' WHERE id = $1",
                                   random.randint(1, top))  # fmt: skip
                await asyncio.sleep(hold_s)
    finally:
        await conn.close()


async def _watch(dsn: str, traffic: Traffic) -> None:
    conn = await asyncpg.connect(dsn)
    since: dict[int, float] = {}
    try:
        while True:
            rows = await conn.fetch(
                """SELECT a.pid, pg_blocking_pids(a.pid) AS blockers,
                          ARRAY(SELECT pid FROM pg_stat_activity WHERE application_name = $1)
                              AS workers
                   FROM pg_stat_activity a WHERE a.application_name = $2""",
                WORKER_APP, OTHER_APP,
            )  # fmt: skip
            now = time.monotonic()
            for row in rows:
                behind_worker = row["blockers"] and set(row["blockers"]) <= set(row["workers"])
                if behind_worker:
                    start = since.setdefault(row["pid"], now)
                    traffic.longest_wait_s = max(traffic.longest_wait_s, now - start)
                elif row["pid"] in since:
                    del since[row["pid"]]
                    traffic.waits += 1
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def other_sessions(
    dsn: str, table: str, first_id: int, *, writers: int = 3, long_hold_s: float | None = None
) -> AsyncIterator[Traffic]:
    """Writers (insert, update, read) on ``table`` (ids from ``first_id`` up), optionally a
    session with back-to-back transactions of ``long_hold_s``, and the watcher."""
    traffic = Traffic()
    tasks = [asyncio.create_task(_watch(dsn, traffic))]
    tasks += [asyncio.create_task(_writer(dsn, table, first_id + i * 1_000_000, traffic))
              for i in range(writers)]  # fmt: skip
    if long_hold_s is not None:
        tasks.append(asyncio.create_task(_long_transactions(dsn, table, first_id - 1, long_hold_s)))
    try:
        yield traffic
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert task.cancelled() or task.exception() is None


async def missing_rows(dsn: str, table: str, first_id: int, inserted: list[int]) -> int:
    """Rows of the table's original ``first_id - 1`` and of ``inserted`` that are not there."""
    conn = await asyncpg.connect(dsn)
    try:
        original = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id < $1", first_id)
        found = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id = ANY($1::int[])",
                                    inserted)  # fmt: skip
    finally:
        await conn.close()
    return (first_id - 1 - original) + (len(inserted) - found)
