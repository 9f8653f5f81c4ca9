"""The backfill runner: finishes the expand of registered migrations, in the background.

For each pending migration (:mod:`worker.engine.backfill_store`), oldest first:

1. take the table's backfill lock (a session advisory lock, tried, never waited for: a table
   another worker is backfilling is skipped and taken up later), so one backfill runs per table
   across all workers;
2. touch the rows in batches by primary key (:func:`worker.engine.expand_sql.render`), each batch
   one statement — its own short transaction under ``lock_timeout``, one round trip — that also
   records the batch's last key and counts; batches are sized toward a target duration
   (:mod:`worker.engine.backfill_pace`) and throttled (a rest after each, in proportion to its
   duration, and a fixed pause); their WAL's page images compressed, and, if asked, their
   commits not waiting for the disk (:mod:`worker.engine.backfill_wal`). A batch that waits
   for a row lock past ``lock_timeout``, or is a deadlock victim, is rolled back and retried — never
   skipped: a row a writer holds may be left unconverted by its rollback;
3. check that no row is left unconverted: by a count, unless NOT NULL is enforced, whose
   VALIDATE proves it in the same read (a row it finds undoes the check and is counted then);
4. run the enforce steps (NOT NULL, the in-place swap), each recorded as it commits;
5. mark the migration ``expanded``.

A worker killed at any point resumes from the last committed batch or step (after a crash of
the server, from the last batch whose WAL reached the disk). Errors that a retry
cannot fix (an expression that fails on some row, rows NOT NULL cannot accept) stop the
migration with a message saying what to do; the other migrations go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import StrEnum
from functools import partial

import asyncpg

from worker.engine import backfill_store as store
from worker.engine.backfill_pace import next_rows, rest_s
from worker.engine.backfill_steps import (
    RETRY_HOW,
    BackfillSettings,
    GaveUp,
    Stop,
    enforce,
    retrying,
    timeouts,
)
from worker.engine.backfill_wal import batch_session
from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration
from worker.engine.expand_sql import MigrationSql, recorded_batch, render
from worker.engine.lock import advisory_key

__all__ = ["BackfillSettings", "Finish", "register", "run_migration", "run_pending"]

log = logging.getLogger("schemaheal.backfill")
register = store.register


class Finish(StrEnum):
    """How one run of one migration ended."""

    EXPANDED = "expanded"  # backfilled and enforced: the expand phase is complete
    BUSY = "busy"  # another runner holds the table: taken up later
    LATER = "later"  # locks kept timing out: taken up in the next round
    STOPPED = "stopped"  # an error a person must fix; recorded in the store
    ABANDONED = "abandoned"  # abandoned while it ran (worker.engine.abandon): its last batch
    # or step was rolled back


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
_SESSION = ("lock_timeout", "statement_timeout")


async def _run_locked(conn: Connection, m: ColumnMigration, settings: BackfillSettings) -> Finish:
    session = await conn.fetchrow(
        "SELECT " + ", ".join(f"current_setting('{name}') AS {name}" for name in _SESSION)
    )
    await timeouts(conn, settings, long=False, local=False)  # batches and records run under them
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
    proof = next((step.proves_converted for step in sql.enforce if step.proves_converted), None)
    try:
        if progress.state == store.BACKFILLING:
            stop_key = progress.stop_key
            if stop_key is None:
                take = partial(_take_stop_key, conn, m, sql, settings)
                stop_key = await retrying(take, m, settings)
            async with batch_session(
                conn,
                synchronous_commit=settings.synchronous_commit,
                wal_compression=settings.wal_compression,
            ):
                await _backfill(conn, m, sql, stop_key, progress.last_key, settings)
            if proof is None:
                await _check_converted(conn, m, sql, settings)
            await store.record_state(conn, m.id, store.ENFORCING, settings.store_schema)
        try:
            await enforce(conn, m, sql.enforce, progress.enforce_steps, settings)
        except Stop as exc:
            if proof is not None and isinstance(exc.__cause__, asyncpg.CheckViolationError):
                await _not_converted(conn, m, sql, proof, settings)
                raise GaveUp from exc  # converted since (a writer's update): the next round
            raise
        await store.record_state(conn, m.id, store.EXPANDED, settings.store_schema)
    except Stop as exc:
        log.error("migration %s stopped: %s", m.id, exc, extra={"migration": m.id})
        await store.fail(conn, m.id, str(exc), settings.store_schema)
        return Finish.STOPPED
    except GaveUp:
        return Finish.LATER
    except store.Abandoned:
        log.warning("migration %s was abandoned; stopped", m.id, extra={"migration": m.id})
        return Finish.ABANDONED
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
    """Touch every row after ``last_key`` up to ``stop_key`` in batches, each one statement
    that also records its progress (one round trip, its own transaction), sized by
    :mod:`worker.engine.backfill_pace`."""
    if stop_key == "null":  # the table was empty
        return
    record = partial(store.batch_record, settings.store_schema)
    first = recorded_batch(m, first=True, record=record("$3"))
    later = recorded_batch(m, first=False, record=record("$4"))
    rows = settings.batch_rows
    while True:
        if last_key is None:
            batch = partial(conn.fetchrow, first, stop_key, rows, m.id)
        else:
            batch = partial(conn.fetchrow, later, stop_key, last_key, rows, m.id)
        started = time.monotonic()
        row = await retrying(batch, m, settings)
        took = time.monotonic() - started
        if row is None:
            return
        if not row["recorded"]:  # abandoned (worker.engine.abandon) since the last batch
            raise store.Abandoned(m.id)
        last_key = str(row["last_key"])
        if settings.on_batch is not None:
            settings.on_batch(m, int(row["touched"]), took)
        rows = next_rows(settings.pace, rows, int(row["scanned"]), took)
        rest = settings.pause_s + rest_s(settings.pace, took)
        if rest:
            await asyncio.sleep(rest)


async def _not_converted(
    conn: Connection, m: ColumnMigration, sql: MigrationSql, undo: str, settings: BackfillSettings
) -> None:
    """A row failed the NOT NULL check's VALIDATE: drop the check (else it would refuse the
    writers' NULLs while the migration is stopped), go back to before the enforce steps, and
    stop with the count of the rows left (:func:`_check_converted`)."""

    async def back() -> None:
        async with conn.transaction():
            await timeouts(conn, settings, long=False)
            await conn.execute(undo)
            await store.record_step(conn, m.id, 0, settings.store_schema)
            await store.record_state(conn, m.id, store.BACKFILLING, settings.store_schema)

    await retrying(back, m, settings)
    await _check_converted(conn, m, sql, settings)


async def _check_converted(
    conn: Connection, m: ColumnMigration, sql: MigrationSql, settings: BackfillSettings
) -> None:
    async def count() -> int:
        async with conn.transaction():
            await timeouts(conn, settings, long=True)
            return int(await conn.fetchval(sql.unconverted))

    left = await retrying(count, m, settings)
    if left:
        raise Stop(
            f"{left} rows of {m.schema}.{m.table} have no value in {m.new_column} after the "
            f"backfill although the expression gives one, or NOT NULL is wanted and the "
            f"expression gives NULL for them: fix those rows, then "
            f"{RETRY_HOW.format(schema=settings.store_schema, id=m.id)} (a changed expression "
            f"is refused while this migration runs: abandon it first with `schemaheal backfill "
            f"--dsn … --abandon '{m.id}'`)"
        )
