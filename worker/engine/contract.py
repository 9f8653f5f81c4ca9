"""The contract runner: finishes online migrations once no live instance uses their old shape.

For each registered migration whose expand is complete (``expanded``), in the background:

1. take its table's backfill lock (tried, never waited for) and the advisory lock of its schema
   (the one every heal holds), so a boot recording its lease and healing is decided either
   wholly before the contract (its lease keeps the migration) or wholly after (it is blocked);
2. decide from the leases (:func:`worker.engine.liveness.decide`);
3. drop the sync trigger and its function (no approval needed), recorded in the same
   transaction;
4. drop the old column only when ``approved`` says the ``column-drop`` hazard is approved for
   the service owning the table; otherwise keep it, unused, and record why
   (``retired, unused, kept: approve column-drop to remove``). A later round drops it once
   approved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from worker.engine import backfill_store, lease_store
from worker.engine.backfill import lock_name
from worker.engine.connection import Connection, connection_lost
from worker.engine.expand import ColumnMigration
from worker.engine.expand_handover import contract_steps
from worker.engine.expand_parts import Step, retired_column
from worker.engine.inspect import inspect
from worker.engine.liveness import Lease, decide
from worker.engine.lock import advisory_key, advisory_locks
from worker.errors import LockWaitTimeout

__all__ = ["Approval", "ContractFinish", "ContractSettings", "kept_reason", "run_contracts"]

log = logging.getLogger("schemaheal.contract")

#: may the old column of this migration be dropped, given the leases (owners of its new shape)?
Approval = Callable[[ColumnMigration, Sequence[Lease]], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractSettings:
    #: how long after the last instance using the old shape ended contract waits
    grace_s: float = 600.0
    #: how long a boot's lease lasts: instances that booted before leases were recorded are
    #: presumed to run that long after recording began
    lease_ttl_s: float = 3600.0
    lock_timeout_ms: int = 1000
    statement_timeout_ms: int = 60_000
    lock_wait_s: float = 5.0
    store_schema: str = backfill_store.DEFAULT_SCHEMA


class ContractFinish(StrEnum):
    WAITING = "waiting"  # an instance may still use the old shape (or the grace runs)
    CONTRACTED = "contracted"  # trigger and old column gone
    KEPT = "kept"  # trigger gone; the old column stays until column-drop is approved
    LATER = "later"  # the table is busy, or a lock timed out: the next round tries again


def kept_reason(m: ColumnMigration) -> str:
    column = f"{m.schema}.{m.table}.{retired_column(m)}"
    return f"{column}: retired, unused, kept: approve column-drop to remove"


async def run_contracts(
    conn: Connection, approved: Approval, settings: ContractSettings | None = None
) -> dict[str, tuple[ContractFinish, str]]:
    """One round over every complete migration not fully contracted: id → (finish, why)."""
    settings = settings or ContractSettings()
    records = await lease_store.contract_records(conn, settings.store_schema)
    done = {}
    for item in await backfill_store.registered(conn, settings.store_schema):
        record = records.get(item.migration.id)
        if item.state != backfill_store.EXPANDED or item.failed:
            continue
        if record is not None and record.column_dropped_at is not None:
            continue
        if record is not None and record.contracted and retired_column(item.migration) is None:
            continue
        done[item.migration.id] = await _contract(conn, item.migration, approved, settings)
    return done


async def _contract(
    conn: Connection, m: ColumnMigration, approved: Approval, settings: ContractSettings
) -> tuple[ContractFinish, str]:
    database = await conn.fetchval("SELECT current_database()")
    key = advisory_key(database, lock_name(m))
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        return ContractFinish.LATER, "another worker is migrating the table"
    try:
        async with advisory_locks(conn, database, [m.schema], max_wait_s=settings.lock_wait_s):
            return await _decided(conn, m, approved, settings)
    except (asyncpg.exceptions.LockNotAvailableError, LockWaitTimeout):
        return ContractFinish.LATER, "a lock timed out (a heal or a writer held it); next round"
    except asyncpg.PostgresError as exc:
        if connection_lost(exc):
            raise
        why = (f"contracting {m.schema}.{m.table} failed: {type(exc).__name__}: {exc}; fix the "
               "cause (often a view or another object using the old column), it is tried again "
               "every round")  # fmt: skip
        log.error("%s", why, extra={"migration": m.id})
        return ContractFinish.LATER, why
    finally:
        await conn.fetchval("SELECT pg_advisory_unlock($1)", key)


async def _decided(
    conn: Connection, m: ColumnMigration, approved: Approval, settings: ContractSettings
) -> tuple[ContractFinish, str]:
    schema = settings.store_schema
    progress = await backfill_store.progress(conn, m.id, schema)  # again, under the locks
    if progress is None or progress.state != backfill_store.EXPANDED:
        return ContractFinish.LATER, "the migration was abandoned"
    await lease_store.ensure_store(conn, schema)
    leases = await lease_store.leases(conn, schema)
    decision = decide(
        m, leases, now=await lease_store.now(conn), grace_s=settings.grace_s,
        tracked_since=await lease_store.tracked_since(conn, schema),
        lease_ttl_s=settings.lease_ttl_s,
    )  # fmt: skip
    if not decision.contractable:
        return ContractFinish.WAITING, decision.reason
    record = (await lease_store.contract_records(conn, schema)).get(m.id)
    table = None
    if m.old_column is not None and not m.in_place and (record is None or not record.contracted):
        table = (await inspect(conn, [m.schema])).table(m.schema, m.table)  # for the handover
    for step in contract_steps(m, table):
        if not step.drops_column:
            if record is None or not record.contracted:
                await _step(conn, m, step, "sync", settings)
        elif approved(m, leases):
            await _step(conn, m, step, "column", settings)
        else:
            reason = kept_reason(m)
            if record is None or record.column_kept != reason:
                await lease_store.record_contract(conn, m.id, step="kept", kept=reason,
                                                  schema=schema)  # fmt: skip
            log.warning("contract of %s: %s", m.id, reason, extra={"migration": m.id})
            return ContractFinish.KEPT, reason
    log.info("migration %s contracted", m.id, extra={"migration": m.id})
    return ContractFinish.CONTRACTED, decision.reason


async def _step(
    conn: Connection, m: ColumnMigration, step: Step, name: str, settings: ContractSettings
) -> None:
    async with conn.transaction():
        await conn.execute(
            f"SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}; "
            f"SET LOCAL statement_timeout = {int(settings.statement_timeout_ms)}"
        )
        await conn.execute(step.sql)
        await lease_store.record_contract(conn, m.id, step=name, schema=settings.store_schema)
