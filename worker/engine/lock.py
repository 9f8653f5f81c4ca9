"""Advisory locks: one heal per (database, schema) at a time, across replicas and workers.

Locks are session-level and taken by *polling* ``pg_try_advisory_lock`` with jittered, growing
waits up to a bounded total — never a blocking ``pg_advisory_lock``: a session blocked in it sits
in an open transaction, and ``CREATE INDEX CONCURRENTLY`` in the session holding the lock waits
for that transaction to end — a deadlock that no timeout inside PostgreSQL breaks (Atlas learned
this). Keys are taken in sorted order, so two heals over overlapping schema sets cannot deadlock.

The key is a stable hash: the first 8 bytes of sha256 over ``schemaheal\\0<database>\\0<schema>``,
as a signed 64-bit integer. Not Python's ``hash()`` (salted per process) and not ``hashtext``
(PostgreSQL may change it between versions); a golden-value test pins it.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from worker.engine.connection import Connection
from worker.errors import LockWaitTimeout


def advisory_key(database: str, schema: str) -> int:
    """The lock key of one schema of one database."""
    digest = hashlib.sha256(f"schemaheal\0{database}\0{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def advisory_locks(
    conn: Connection,
    database: str,
    schemas: Iterable[str],
    *,
    max_wait_s: float = 60.0,
    first_wait_s: float = 0.05,
    max_step_s: float = 1.0,
) -> AsyncIterator[float]:
    """Hold the locks of ``schemas``; yields the seconds spent waiting for them."""
    keys = sorted({advisory_key(database, s) for s in schemas})
    started = time.monotonic()
    held: list[int] = []
    try:
        for key in keys:
            await _poll(conn, key, started + max_wait_s, first_wait_s, max_step_s)
            held.append(key)
        yield time.monotonic() - started
    finally:
        for key in reversed(held):
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)


async def _poll(
    conn: Connection, key: int, deadline: float, first_wait_s: float, max_step_s: float
) -> None:
    step = first_wait_s
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockWaitTimeout(
                "waiting for the schema lock: another heal of the same schemas has held it "
                "too long; it will be retried, or raise the lock wait limit"
            )
        await asyncio.sleep(min(remaining, random.uniform(0, step)))
        step = min(step * 2, max_step_s)
