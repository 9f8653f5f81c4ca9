"""The backfill runner's settings, retries and enforce steps (see :mod:`worker.engine.backfill`).

Every batch and step is retried on the lock timeouts and deadlocks that a busy table gives
(growing, jittered waits; never skipped); any other database error stops the migration with a
message saying what to do (:class:`Stop`), and locks that keep timing out leave it for the next
round (:class:`GaveUp`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import asyncpg

from worker.engine import backfill_store as store
from worker.engine.backfill_carry import (
    BUILD_ATTEMPTS,
    Unmovable,
    Unprepared,
    in_key_tablespace,
    prepare_indexes,
    swap_carrying,
)
from worker.engine.backfill_pace import Pace
from worker.engine.connection import Connection, connection_lost
from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import Carry, Step
from worker.engine.lock import advisory_locks
from worker.errors import LockWaitTimeout

__all__ = ["RETRY_HOW", "BackfillSettings", "GaveUp", "Stop", "enforce", "retrying", "timeouts"]

log = logging.getLogger("schemaheal.backfill")
T = TypeVar("T")

#: Retried with a growing, jittered wait: the batch or step is rolled back and run again.
_RETRYABLE = (
    asyncpg.exceptions.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.exceptions.DeadlockDetectedError,  # 40P01
    asyncpg.exceptions.SerializationError,  # 40001
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillSettings:
    """Throttle and timeouts of the runner."""

    #: rows of the first batch (of every batch when ``batch_target_ms`` is 0)
    batch_rows: int = 1000
    #: batches are resized toward this duration (:mod:`worker.engine.backfill_pace`): what a
    #: writer of a row the batch holds may wait; 0 keeps every batch at ``batch_rows``
    batch_target_ms: float = 50.0
    #: the bounds of a resized batch
    min_batch_rows: int = 100
    max_batch_rows: int = 20_000
    #: the share of the time spent in batches: each batch is followed by a rest in proportion
    #: to its duration (:func:`worker.engine.backfill_pace.rest_s`); 1: none
    duty: float = 1.0
    #: the batches' commits wait for their WAL to reach the disk (off: a crash may lose the last
    #: batches, which are then done again; :mod:`worker.engine.backfill_wal`)
    synchronous_commit: bool = True
    #: the batches' WAL compresses its page images when the server does not already (and the
    #: runner may set wal_compression)
    wal_compression: bool = True
    #: pause between batches, in seconds, besides the rest: a fixed throttle
    pause_s: float = 0.0
    #: how long a batch or a step waits for a lock before it is rolled back and retried
    lock_timeout_ms: int = 1000
    statement_timeout_ms: int = 60_000
    #: VALIDATE, CREATE INDEX CONCURRENTLY and the final check scan the table
    long_statement_timeout_ms: int = 3_600_000
    #: attempts of one batch or step before the migration is left for the next round
    attempts: int = 20
    #: how long a short enforce step waits for a heal of its schema to finish
    heal_wait_s: float = 10.0
    first_wait_s: float = 0.05
    max_wait_s: float = 2.0
    store_schema: str = store.DEFAULT_SCHEMA
    #: called after each committed batch: (migration, rows converted, seconds, retries included)
    on_batch: Callable[[ColumnMigration, int, float], None] | None = None

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.pause_s < 0 or self.attempts < 1:
            raise ValueError("batch_rows and attempts must be positive, pause_s not negative")
        if not 0 < self.lock_timeout_ms < self.statement_timeout_ms:
            raise ValueError("lock_timeout must be positive and below statement_timeout")
        if not 1 <= self.min_batch_rows <= self.max_batch_rows or self.batch_target_ms < 0:
            raise ValueError("batch rows bounds must be ordered and positive, target not negative")
        if not 0 < self.duty <= 1:
            raise ValueError("duty must be above 0 and at most 1")

    @property
    def pace(self) -> Pace:
        low, high = self.min_batch_rows, self.max_batch_rows
        target_s = self.batch_target_ms / 1000
        return Pace(target_s=target_s, min_rows=low, max_rows=high, duty=self.duty)


class Stop(Exception):
    """An error a retry cannot fix; its message says what to do."""


class GaveUp(Exception):
    """Locks kept timing out: the migration waits for the next round."""


#: What a person runs to let a stopped migration go on.
RETRY_HOW = (
    "run `schemaheal backfill --dsn … --retry '{id}'` (or clear the error: "
    "UPDATE {schema}.migrations SET error = NULL WHERE id = '{id}')"
)


async def enforce(
    conn: Connection,
    m: ColumnMigration,
    steps: tuple[Step, ...],
    done: int,
    settings: BackfillSettings,
) -> None:
    """The enforce steps after the ``done`` already committed, each recorded as it commits.
    The short ones (the DDL under a strong lock, the swap) hold the schema's heal lock, so that
    no heal inspects or changes the table halfway through them; the scans (VALIDATE, the
    concurrent index build) do not, so that boots are never held up behind them."""
    database = await conn.fetchval("SELECT current_database()")
    index, rounds = done, 0
    while index < len(steps):
        try:
            await _locked_step(conn, m, steps[index], index, settings, database)
        except Unprepared as exc:  # an index made on the old column since they were prepared
            rounds += 1
            if rounds >= BUILD_ATTEMPTS:
                raise GaveUp from exc
            index = next(i for i, s in enumerate(steps) if s.carry is Carry.PREPARE)
            await store.record_step(conn, m.id, index, settings.store_schema)
            continue
        index += 1


async def _locked_step(
    conn: Connection,
    m: ColumnMigration,
    step: Step,
    index: int,
    settings: BackfillSettings,
    database: str,
) -> None:
    work = partial(_one_step, conn, m, step, index, settings)
    if step.long:
        await retrying(work, m, settings)
        return
    try:
        async with advisory_locks(conn, database, [m.schema], max_wait_s=settings.heal_wait_s):
            await retrying(work, m, settings)
    except LockWaitTimeout as exc:
        raise GaveUp from exc


async def _one_step(
    conn: Connection, m: ColumnMigration, step: Step, index: int, settings: BackfillSettings
) -> None:
    if step.transactional:
        async with conn.transaction():
            await timeouts(conn, settings, long=step.long)
            if step.carry is Carry.SWAP:
                how = RETRY_HOW.format(schema=settings.store_schema, id=m.id)
                await _carrying(swap_carrying(conn, m, step.sql, how), m)
            else:
                await conn.execute(step.sql)
            await store.record_step(conn, m.id, index + 1, settings.store_schema)
        return
    # CREATE INDEX CONCURRENTLY: alone, outside a transaction; what an interrupted attempt left
    # goes first (an INVALID index that IF NOT EXISTS would keep)
    await timeouts(conn, settings, long=step.long, local=False)
    try:
        if step.carry is Carry.PREPARE:
            await _carrying(prepare_indexes(conn, m), m)
        else:
            if step.reset is not None:
                await conn.execute(step.reset)
            sql = step.sql
            if step.carry is Carry.KEY:
                sql = await in_key_tablespace(conn, m, sql)
            await conn.execute(sql)
    finally:
        await timeouts(conn, settings, long=False, local=False)
    await store.record_step(conn, m.id, index + 1, settings.store_schema)


async def _carrying(work: Awaitable[None], m: ColumnMigration) -> None:
    """``work``, with what the swap cannot carry turned into a stop of the migration."""
    try:
        await work
    except Unmovable as exc:
        raise Stop(f"migrating {m.schema}.{m.table}.{m.new_column}: {exc}") from exc


async def timeouts(
    conn: Connection, settings: BackfillSettings, *, long: bool, local: bool = True
) -> None:
    statement = settings.long_statement_timeout_ms if long else settings.statement_timeout_ms
    verb = "SET LOCAL" if local else "SET"
    await conn.execute(
        f"{verb} lock_timeout = {int(settings.lock_timeout_ms)}; "
        f"{verb} statement_timeout = {int(statement)}"
    )


async def retrying(
    work: Callable[[], Awaitable[T]], m: ColumnMigration, settings: BackfillSettings
) -> T:
    """``work()``, retried on lock timeouts and deadlocks with growing, jittered waits; other
    database errors stop the migration (unless the connection is gone: that propagates)."""
    wait = settings.first_wait_s
    for attempt in range(1, settings.attempts + 1):
        try:
            return await work()
        except _RETRYABLE as exc:
            log.info("migration %s: %s, attempt %d; retrying", m.id, type(exc).__name__, attempt)
            await asyncio.sleep(random.uniform(wait / 2, wait))
            wait = min(wait * 2, settings.max_wait_s)
        except asyncpg.PostgresError as exc:
            if connection_lost(exc):
                raise
            raise Stop(
                f"migrating {m.schema}.{m.table}.{m.new_column} failed: {type(exc).__name__}: "
                f"{exc}; {_cause(exc)}, then "
                + RETRY_HOW.format(schema=settings.store_schema, id=m.id)
            ) from exc
    log.warning("migration %s: locks kept timing out; left for the next round", m.id)
    raise GaveUp


def _cause(exc: asyncpg.PostgresError) -> str:
    """What to do: the server's hint where it gives one (the swap's do)."""
    hint = getattr(exc, "hint", None)
    return str(hint) if hint else "fix the cause (often a row the expression cannot convert)"
