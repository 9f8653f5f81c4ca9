"""The worker's background backfills: one task per database, started with the worker.

Each task holds a direct connection (session advisory locks), LISTENs on the channel a heal
notifies when it registers a migration (:data:`~worker.engine.backfill_store.CHANNEL`, delivered
on commit), and runs the database's pending migrations (:func:`~worker.engine.backfill.
run_pending`) when woken and every ``backfill_poll_s``. A table another worker is backfilling is
skipped (its lock is tried, never waited for) and taken up in a later round. A lost connection
is opened again after a pause; stopping the worker cancels the tasks, and a batch cut short is
rolled back by PostgreSQL and done again by whichever worker resumes the migration.

Each round then contracts the migrations no live instance needs any more
(:func:`~worker.engine.contract.run_contracts`). The old column is dropped only when the access
policy grants the ``column-drop`` hazard on this database to a service whose running or recent
instances declare the migration's new shape (the service that owns the table); otherwise it is
kept, unused, and reported.

Each committed batch adds to the backfill metrics, and each round ends by counting the
database's migrations (by phase, and why their contract waits) and live leases for the gauges
(:mod:`worker.observability.migration_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import Meter

from worker.engine import backfill_store, lease_store
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import DATABASE_ERRORS
from worker.engine.contract import ContractFinish, run_contracts
from worker.engine.expand import ColumnMigration
from worker.engine.hazards import Hazard
from worker.engine.heal_migrations import read_liveness
from worker.engine.liveness import Lease, uses_new_shape
from worker.engine.migration_census import Census, census
from worker.errors import SchemahealError
from worker.observability.migration_metrics import BackfillInstruments, observe_migrations
from worker.service.access import Grant, PolicyFile
from worker.service.databases import open_checked
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.backfill")
RECONNECT_PAUSE_S = 5.0
#: how long a lease is kept past its end and the grace (for people looking at the table)
LEASE_KEPT_S = 86_400.0


class Backfills:
    """Start with :meth:`start`, stop with :meth:`stop`; ``rounds`` counts finished rounds per
    database (for tests and health), ``counts`` what the last round of each found (the gauges)."""

    def __init__(self, settings: WorkerSettings, meter: Meter | None = None) -> None:
        self.settings = settings
        self.rounds: dict[str, int] = {}
        self.counts: dict[str, Census] = {}
        self.access = PolicyFile(settings.access_policy)
        self._tasks: list[asyncio.Task[None]] = []
        meter = meter or metrics.get_meter("schemaheal")
        self._metrics = BackfillInstruments.make(meter)
        observe_migrations(meter, lambda: self.counts)

    async def start(self) -> None:
        if not self.settings.backfill:
            return
        for alias in sorted(self.settings.databases):
            self._tasks.append(asyncio.create_task(self._serve(alias), name=f"backfill {alias}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self.counts.clear()  # a stopped worker reports no migrations (another one does)

    async def _serve(self, alias: str) -> None:
        """Rounds on ``alias`` until cancelled, reconnecting after a pause when it fails."""
        while True:
            try:
                await self._rounds(alias)
            except (SchemahealError, *DATABASE_ERRORS) as exc:
                log.warning("backfills of %s paused: %s", alias, exc,
                            extra={"database": alias, "error": str(exc)})  # fmt: skip
                await asyncio.sleep(RECONNECT_PAUSE_S)

    async def _rounds(self, alias: str) -> None:
        conn = await open_checked(self.settings, alias)
        woken = asyncio.Event()

        def wake(*_: Any) -> None:
            woken.set()

        try:
            await conn.add_listener(backfill_store.CHANNEL, wake)
            settings = replace(self.settings.backfill_settings(), on_batch=self._batch(alias))
            while True:
                woken.clear()
                await self._round(conn, alias, settings)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), self.settings.backfill_poll_s)
        finally:
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.close(timeout=5)

    async def _round(self, conn: Any, alias: str, settings: BackfillSettings) -> None:
        finished = await run_pending(conn, settings)
        for migration_id, finish in finished.items():
            if finish is not Finish.BUSY:
                log.info("backfill of %s: %s", migration_id, finish.value,
                         extra={"database": alias, "migration": migration_id,
                                "finish": finish.value})  # fmt: skip
        await self._contract(conn, alias)
        self.counts[alias] = await self._count(conn, alias)
        self.rounds[alias] = self.rounds.get(alias, 0) + 1

    def _batch(self, alias: str) -> Callable[[ColumnMigration, int, float], None]:
        def done(m: ColumnMigration, rows: int, seconds: float) -> None:
            table = f"{m.schema}.{m.table}"
            self._metrics.batch(alias, table, m.new_column, rows, seconds)

        return done

    async def _count(self, conn: Any, alias: str) -> Census:
        """The database's migrations and live leases, counted for the gauges. Reads only."""
        schema = self.settings.ledger_schema
        contract = self.settings.contract_settings()
        liveness = await read_liveness(conn, schema, contract.grace_s, contract.lease_ttl_s)

        def approved(m: ColumnMigration) -> bool:
            return column_drop_approved(self.access, alias, m, liveness.leases)

        items = await backfill_store.registered(conn, schema)
        return census(items, await lease_store.contract_records(conn, schema), liveness, approved)

    async def _contract(self, conn: Any, alias: str) -> None:
        def approved(m: ColumnMigration, leases: Sequence[Lease]) -> bool:
            return column_drop_approved(self.access, alias, m, leases)

        settings = self.settings.contract_settings()
        contracted = await run_contracts(conn, approved, settings)
        await lease_store.prune(conn, settings.grace_s + LEASE_KEPT_S, settings.store_schema)
        for migration_id, (finish, why) in contracted.items():
            if finish in (ContractFinish.CONTRACTED, ContractFinish.KEPT):
                log.info("contract of %s: %s (%s)", migration_id, finish.value, why,
                         extra={"database": alias, "migration": migration_id,
                                "finish": finish.value})  # fmt: skip


def column_drop_approved(
    access: PolicyFile, alias: str, m: ColumnMigration, leases: Sequence[Lease]
) -> bool:
    """The access policy grants ``column-drop`` on ``alias`` to a service owning the table
    (one whose instances declared the migration's new shape)."""
    policy = access.current()
    owners = sorted({lease.service for lease in leases if uses_new_shape(lease.shape, m)})
    for service in owners:
        grant = policy.decide(service, alias, frozenset({m.schema}))
        if isinstance(grant, Grant) and Hazard.COLUMN_DROP in grant.hazards:
            return True
    return False
