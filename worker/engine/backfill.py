"""The backfill runner: finishes the expand of registered migrations, in the background.

For each pending migration (:mod:`worker.engine.backfill_store`), oldest first:

1. take the table's backfill lock (a session advisory lock, tried, never waited for: a table
   another worker is backfilling is skipped and taken up later), so one backfill runs per table
   across all workers;
2. touch the rows in batches by primary key (:func:`worker.engine.expand_sql.render`), each batch
   its own short transaction under ``lock_timeout`` that also records the batch's last key and
   counts; batches are throttled (rows per batch, pause between them). A batch that waits for a
   row lock past ``lock_timeout``, or is a deadlock victim, is rolled back and retried — never
   skipped: a row a writer holds may be left unconverted by its rollback;
3. check that no row is left unconverted;
4. run the enforce steps (NOT NULL, the in-place swap), each recorded as it commits;
5. mark the migration ``expanded``.

A worker killed at any point resumes from the last committed batch or step. Errors that a retry
cannot fix (an expression that fails on some row, rows NOT NULL cannot accept) stop the
migration with a message saying what to do; the other migrations go on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TypeVar

import asyncpg

from worker.engine import backfill_store as store
from worker.engine.connection import Connection, connection_lost
from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import Step
from worker.engine.expand_sql import MigrationSql, render
from worker.engine.lock import advisory_key

__all__ = ["BackfillSettings", "Finish", "register", "run_migration", "run_pending"]

log = logging.getLogger("schemaheal.backfill")
register = store.register
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

    batch_rows: int = 1000
    #: pause between batches, in seconds: the throttle that leaves room to writers
    pause_s: float = 0.0
    #: how long a batch or a step waits for a lock before it is rolled back and retried
    lock_timeout_ms: int = 1000
    statement_timeout_ms: int = 60_000
    #: VALIDATE, CREATE INDEX CONCURRENTLY and the final check scan the table
    long_statement_timeout_ms: int = 3_600_000
    #: attempts of one batch or step before the migration is left for the next round
    attempts: int = 20
    first_wait_s: float = 0.05
    max_wait_s: float = 2.0
    store_schema: str = store.DEFAULT_SCHEMA

    def __post_init__(self) -> None:
        if self.batch_rows < 1 or self.pause_s < 0 or self.attempts < 1:
            raise ValueError("batch_rows and attempts must be positive, pause_s not negative")
        if not 0 < self.lock_timeout_ms < self.statement_timeout_ms:
            raise ValueError("lock_timeout must be positive and below statement_timeout")


class Finish(StrEnum):
    """How one run of one migration ended."""

    EXPANDED = "expanded"  # backfilled and enforced: the expand phase is complete
    BUSY = "busy"  # another runner holds the table: taken up later
    LATER = "later"  # locks kept timing out: taken up in the next round
    STOPPED = "stopped"  # an error a person must fix; recorded in the store


class _Stop(Exception):
    """An error a retry cannot fix; its message says what to do."""


class _GaveUp(Exception):
    """Locks kept timing out: the migration waits for the next round."""


async def run_pending(
    conn: Connection, settings: BackfillSettings | None = None
) -> dict[str, Finish]:
    """Run every pending migration of the connection's database once; migration id → finish."""
    settings = settings or BackfillSettings()
    done = {}
    for item in await store.pending(conn, settings.store_schema):
        done[item.migration.id] = await run_migration(conn, item.migration, settings)
    return done


async def run_migration(
    conn: Connection, m: ColumnMigration, settings: BackfillSettings | None = None
) -> Finish:
    """Backfill and enforce ``m`` from where its progress record says, holding its table's
    lock; other runners skip the table meanwhile."""
    settings = settings or BackfillSettings()
    key = advisory_key(await conn.fetchval("SELECT current_database()"), lock_name(m))
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        return Finish.BUSY
    try:
        return await _run_locked(conn, m, settings)
    finally:
        if not getattr(conn, "is_closed", lambda: False)():
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)


def lock_name(m: ColumnMigration) -> str:
    return f"\0backfill\0{m.schema}\0{m.table}"


#: The session settings the runner changes, put back when it is done with a migration.
_SESSION = ("lock_timeout", "statement_timeout", "synchronous_commit")


async def _run_locked(conn: Connection, m: ColumnMigration, settings: BackfillSettings) -> Finish:
    session = await conn.fetchrow(
        "SELECT " + ", ".join(f"current_setting('{name}') AS {name}" for name in _SESSION)
    )
    await _timeouts(conn, settings, long=False, local=False)  # batches and records run under them
    # Batches do not wait for their commit to reach the disk: a crash can lose only the last
    # batches, each with its own progress record (the WAL keeps their order), so the runner
    # resumes from an earlier key and touches those rows again, which changes nothing.
    await conn.execute("SET synchronous_commit = off")
    try:
        return await _run(conn, m, settings)
    finally:
        if not getattr(conn, "is_closed", lambda: False)():
            await conn.fetchrow(
                "SELECT " + ", ".join(f"set_config('{n}', ${i}, false)" for i, n in
                                      enumerate(_SESSION, 1)),
                *(session[name] for name in _SESSION),
            )  # fmt: skip


async def _run(conn: Connection, m: ColumnMigration, settings: BackfillSettings) -> Finish:
    progress = await store.progress(conn, m.id, settings.store_schema)
    if progress is None or progress.failed or progress.state == store.EXPANDED:
        return Finish.EXPANDED if progress and progress.state == store.EXPANDED else Finish.LATER
    sql = render(m)
    try:
        if progress.state == store.BACKFILLING:
            stop_key = progress.stop_key
            if stop_key is None:
                take = partial(_take_stop_key, conn, m, sql, settings)
                stop_key = await _retrying(take, m, settings)
            await _backfill(conn, m, sql, stop_key, progress.last_key, settings)
            await _check_converted(conn, m, sql, settings)
            await store.record_state(conn, m.id, store.ENFORCING, settings.store_schema)
        await _enforce(conn, m, sql.enforce, progress.enforce_steps, settings)
        await store.record_state(conn, m.id, store.EXPANDED, settings.store_schema)
    except _Stop as exc:
        log.error("migration %s stopped: %s", m.id, exc, extra={"migration": m.id})
        await store.fail(conn, m.id, str(exc), settings.store_schema)
        return Finish.STOPPED
    except _GaveUp:
        return Finish.LATER
    log.info("migration %s expanded", m.id, extra={"migration": m.id})
    return Finish.EXPANDED


async def _take_stop_key(
    conn: Connection, m: ColumnMigration, sql: MigrationSql, settings: BackfillSettings
) -> str:
    """The greatest key now: every row written since went through the trigger."""
    async with conn.transaction():
        found = await conn.fetchval(sql.backfill_stop_key)
        return await store.record_stop_key(conn, m.id, found, settings.store_schema)


async def _backfill(
    conn: Connection,
    m: ColumnMigration,
    sql: MigrationSql,
    stop_key: str,
    last_key: str | None,
    settings: BackfillSettings,
) -> None:
    """Touch every row after ``last_key`` up to ``stop_key`` in batches; each batch commits
    with its progress."""
    if stop_key == "null":  # the table was empty
        return
    while True:
        batch = partial(_one_batch, conn, m, sql, stop_key, last_key, settings)
        last_key = await _retrying(batch, m, settings)
        if last_key is None:
            return
        if settings.pause_s:
            await asyncio.sleep(settings.pause_s)


async def _one_batch(
    conn: Connection,
    m: ColumnMigration,
    sql: MigrationSql,
    stop_key: str,
    last_key: str | None,
    settings: BackfillSettings,
) -> str | None:
    """One batch and its progress record, in one transaction; the batch's last key, or None
    when no row is left."""
    async with conn.transaction():
        if last_key is None:
            row = await conn.fetchrow(sql.backfill_first, stop_key, settings.batch_rows)
        else:
            row = await conn.fetchrow(sql.backfill_batch, stop_key, last_key, settings.batch_rows)
        if row is None:
            return None
        await store.record_batch(
            conn,
            m.id,
            last_key=row["last_key"],
            scanned=row["scanned"],
            touched=row["touched"],
            schema=settings.store_schema,
        )
        return str(row["last_key"])


async def _check_converted(
    conn: Connection, m: ColumnMigration, sql: MigrationSql, settings: BackfillSettings
) -> None:
    async def count() -> int:
        async with conn.transaction():
            await _timeouts(conn, settings, long=True)
            return int(await conn.fetchval(sql.unconverted))

    left = await _retrying(count, m, settings)
    if left:
        raise _Stop(
            f"{left} rows of {m.schema}.{m.table} have no value in {m.new_column} after the "
            f"backfill although the expression gives one, or NOT NULL is wanted and the "
            f"expression gives NULL for them: fix those rows (or the manifest's expression), "
            f"then let the migration retry"
        )


async def _enforce(
    conn: Connection,
    m: ColumnMigration,
    steps: tuple[Step, ...],
    done: int,
    settings: BackfillSettings,
) -> None:
    """The enforce steps after the ``done`` already committed, each recorded as it commits."""
    for index in range(done, len(steps)):
        await _retrying(partial(_one_step, conn, m, steps[index], index, settings), m, settings)


async def _one_step(
    conn: Connection, m: ColumnMigration, step: Step, index: int, settings: BackfillSettings
) -> None:
    if step.transactional:
        async with conn.transaction():
            await _timeouts(conn, settings, long=step.long)
            await conn.execute(step.sql)
            await store.record_step(conn, m.id, index + 1, settings.store_schema)
        return
    # CREATE INDEX CONCURRENTLY: alone, outside a transaction; what an interrupted attempt left
    # goes first (an INVALID index that IF NOT EXISTS would keep)
    await _timeouts(conn, settings, long=step.long, local=False)
    try:
        if step.reset is not None:
            await conn.execute(step.reset)
        await conn.execute(step.sql)
    finally:
        await _timeouts(conn, settings, long=False, local=False)
    await store.record_step(conn, m.id, index + 1, settings.store_schema)


async def _timeouts(
    conn: Connection, settings: BackfillSettings, *, long: bool, local: bool = True
) -> None:
    statement = settings.long_statement_timeout_ms if long else settings.statement_timeout_ms
    verb = "SET LOCAL" if local else "SET"
    await conn.execute(
        f"{verb} lock_timeout = {int(settings.lock_timeout_ms)}; "
        f"{verb} statement_timeout = {int(statement)}"
    )


async def _retrying(
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
            raise _Stop(
                f"migrating {m.schema}.{m.table}.{m.new_column} failed: {type(exc).__name__}: "
                f"{exc}; fix the cause (often a row the expression cannot convert), then let "
                "the migration retry"
            ) from exc
    log.warning("migration %s: locks kept timing out; left for the next round", m.id)
    raise _GaveUp
