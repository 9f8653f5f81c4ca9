"""The worker's background backfills: one task per database, started with the worker.

Each task holds a direct connection (session advisory locks), LISTENs on the channel a heal
notifies when it registers a migration (:data:`~worker.engine.backfill_store.CHANNEL`, delivered
on commit), and runs the database's pending migrations (:func:`~worker.engine.backfill.
run_pending`) when woken and every ``backfill_poll_s``. A table another worker is backfilling is
skipped (its lock is tried, never waited for) and taken up in a later round. A lost connection
is opened again after a pause; stopping the worker cancels the tasks, and a batch cut short is
rolled back by PostgreSQL and done again by whichever worker resumes the migration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from worker.engine import backfill_store
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import DATABASE_ERRORS
from worker.errors import SchemahealError
from worker.service.databases import open_checked
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.backfill")
RECONNECT_PAUSE_S = 5.0


class Backfills:
    """Start with :meth:`start`, stop with :meth:`stop`; ``rounds`` counts finished rounds per
    database (for tests and health)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.rounds: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []

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
            settings = self.settings.backfill_settings()
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
        self.rounds[alias] = self.rounds.get(alias, 0) + 1
