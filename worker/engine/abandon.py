"""Abandon one running online migration: back to the old shape, nothing of it left.

``schemaheal backfill --abandon ID`` (:func:`abandon`). Allowed only while the old shape is
intact, that is before contract began and, for a change in place, before the swap; and only when
no live instance of a manifest relies on the new column (``ignore_leases`` overrides that). Then,
under the schema's heal lock:

1. the migration is marked ``abandoned`` in ``<ledger>.migrations`` (state and ``finished_at``):
   the runner's next record of a batch or step finds it so and rolls that batch or step back,
   so the backfill stops; the contract runner never takes it up;
2. once the runner has let go of the table (its backfill lock), the sync trigger, its function
   and the new column (the shadow column of a change in place) are dropped in one short
   transaction under ``lock_timeout``. The indexes and checks built on that column go with it.
   The old column is not touched: the trigger kept it written by writers of either version.

Without ``apply`` nothing changes: the checks run and the statements are returned. A heal of the
migration's manifest after the abandonment starts it afresh. :func:`refusal` and
:func:`statements` are pure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts.identifiers import quote_ident
from worker.engine import backfill_store as store
from worker.engine import lease_store
from worker.engine.backfill import lock_name
from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_parts import Carry, drop_sync, physical_column, table_name
from worker.engine.expand_sql import render
from worker.engine.liveness import Lease, uses_new_shape
from worker.engine.lock import advisory_key, advisory_locks
from worker.errors import AbandonRefused, LockWaitTimeout

__all__ = ["Abandonment", "abandon", "refusal", "statements", "swapped"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Abandonment:
    migration: ColumnMigration
    #: its state when abandon began (``abandoned``: a repeated abandon, which drops again)
    state: str
    statements: tuple[str, ...]
    #: what is lost with the new column
    warnings: tuple[str, ...]
    applied: bool


def statements(m: ColumnMigration) -> tuple[str, ...]:
    """Drop the trigger, its function and the column the migration added (idempotent)."""
    column = quote_ident(physical_column(m))
    return (*drop_sync(m), f"ALTER TABLE {table_name(m)} DROP COLUMN IF EXISTS {column}")


def swapped(m: ColumnMigration, enforce_steps: int) -> bool:
    """True when a change in place has committed its swap (the new column has the old name)."""
    steps = render(m).enforce
    swap = next((i for i, s in enumerate(steps) if s.carry is Carry.SWAP), None)
    return swap is not None and enforce_steps > swap


def warnings(m: ColumnMigration) -> tuple[str, ...]:
    column = f"{m.schema}.{m.table}.{physical_column(m)}"
    if m.kind is MigrationKind.BACKFILL:
        return (f"{column} is dropped with the values it holds, including any the new version "
                "wrote itself",)  # fmt: skip
    if m.reverse is None:
        return (f"{column} is dropped; values the new version wrote to it are not in "
                f"{m.old_column} (the migration declares no reverse) and are lost",)  # fmt: skip
    return ()


def refusal(
    m: ColumnMigration,
    *,
    enforce_steps: int,
    contracted: bool,
    old_column_exists: bool,
    new_shape_users: Sequence[Lease],
    ignore_leases: bool,
) -> str | None:
    """Why ``m`` cannot be abandoned (None: it can). ``new_shape_users``: the live leases
    whose manifest declares the new column."""
    table = f"{m.schema}.{m.table}"
    if contracted:
        return (f"migration {m.id} has contracted (its trigger is dropped): the new shape is the "
                f"table's now. To go back, declare the old column again as a new migration "
                f"(renamed_from / using) in a new manifest")  # fmt: skip
    if swapped(m, enforce_steps):
        return (f"migration {m.id} has swapped {m.old_column} of {table} in place to "
                f"{m.new_type}: the old column is retired and abandoning would need a swap back. "
                f"Let it finish; to go back, declare the old type in a new migration")  # fmt: skip
    if m.old_column is not None and not old_column_exists:
        return (
            f"the old column {table}.{m.old_column} of migration {m.id} no longer exists: "
            "the old shape is not intact, and dropping the new column would lose the data"
        )
    if new_shape_users and not ignore_leases:
        live = sorted(f"{lease.service}/{lease.instance}" for lease in new_shape_users)
        shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        until = max(lease.end for lease in new_shape_users).isoformat(timespec="seconds")
        return (f"live instances rely on {table}.{m.new_column} {m.new_type} of migration "
                f"{m.id}: {shown} (leases until {until}). Roll them back to the old version "
                "first (a stopped instance ends its lease), or pass --ignore-leases if they are "
                "gone without saying so")  # fmt: skip
    return None


async def abandon(
    conn: Connection,
    migration_id: str,
    *,
    apply: bool,
    ignore_leases: bool = False,
    schema: str = store.DEFAULT_SCHEMA,
    lock_wait_s: float = 60.0,
    lock_timeout_ms: int = 1000,
) -> Abandonment:
    """Check, and with ``apply`` abandon, the migration ``migration_id``; raises
    :class:`AbandonRefused` saying why not and what to do."""
    progress = await _checked(conn, migration_id, schema, ignore_leases)
    m = progress.migration
    found = Abandonment(migration=m, state=progress.state, statements=statements(m),
                        warnings=warnings(m), applied=False)  # fmt: skip
    if not apply:
        return found
    database = await conn.fetchval("SELECT current_database()")
    async with advisory_locks(conn, database, [m.schema], max_wait_s=lock_wait_s):
        async with conn.transaction():  # checked again under the lock, the row locked
            progress = await _checked(conn, migration_id, schema, ignore_leases, lock=True)
            await conn.execute(
                f"""UPDATE {quote_ident(schema)}.migrations SET state = '{store.ABANDONED}',
                           error = NULL, finished_at = now(), updated_at = now()
                     WHERE id = $1""",
                migration_id,
            )
        key = advisory_key(database, lock_name(m))
        await _take(conn, key, m, lock_wait_s)
        try:
            await _drop(conn, m, lock_timeout_ms, lock_wait_s)
        finally:
            await conn.fetchval("SELECT pg_advisory_unlock($1)", key)
    return Abandonment(migration=m, state=progress.state, statements=found.statements,
                       warnings=found.warnings, applied=True)  # fmt: skip


async def _checked(
    conn: Connection, migration_id: str, schema: str, ignore_leases: bool, *, lock: bool = False
) -> store.Progress:
    if lock:
        await conn.execute(
            f"SELECT FROM {quote_ident(schema)}.migrations WHERE id = $1 FOR UPDATE", migration_id
        )
    progress = await store.progress(conn, migration_id, schema)
    if progress is None:
        raise AbandonRefused(
            f"no migration {migration_id!r} is registered in {schema}.migrations: "
            f"`schemaheal replay` or SELECT id, state FROM {schema}.migrations lists them"
        )
    m = progress.migration
    record = (await lease_store.contract_records(conn, schema)).get(m.id)
    now = await lease_store.now(conn)
    users = [
        lease
        for lease in await lease_store.leases(conn, schema)
        if lease.live(now) and uses_new_shape(lease.shape, m)
    ]
    old_exists = m.old_column is None or await _column_exists(conn, m, m.old_column)
    why = refusal(
        m, enforce_steps=progress.enforce_steps,
        contracted=record is not None and record.contracted,
        old_column_exists=old_exists, new_shape_users=users, ignore_leases=ignore_leases,
    )  # fmt: skip
    if why is not None:
        raise AbandonRefused(why)
    return progress


async def _column_exists(conn: Connection, m: ColumnMigration, column: str) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass($1)
                               AND attname = $2 AND attnum > 0 AND NOT attisdropped)""",
            table_name(m),
            column,
        )
    )


async def _take(conn: Connection, key: int, m: ColumnMigration, wait_s: float) -> None:
    """The table's backfill lock, once the runner let go of it (its next record stops it)."""
    deadline = time.monotonic() + wait_s
    while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        if time.monotonic() > deadline:
            raise LockWaitTimeout(
                f"migration {m.id} is marked abandoned, but a backfill runner still held "
                f"{m.schema}.{m.table} after {wait_s:g} s (a long index build or scan); run the "
                "same abandon again to drop its trigger and column"
            )
        await asyncio.sleep(0.2)


async def _drop(conn: Connection, m: ColumnMigration, lock_timeout_ms: int, wait_s: float) -> None:
    """The drops, in one transaction under ``lock_timeout``, retried while writers hold the
    table (never waiting behind them long enough to block the writers queued after it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
                for sql in statements(m):
                    await conn.execute(sql)
        except asyncpg.exceptions.LockNotAvailableError as exc:
            if time.monotonic() > deadline:
                raise LockWaitTimeout(
                    f"migration {m.id} is marked abandoned, but {m.schema}.{m.table} stayed "
                    f"locked by others for {wait_s:g} s; run the same abandon again to drop "
                    "its trigger and column"
                ) from exc
            await asyncio.sleep(0.2)
        else:
            return
