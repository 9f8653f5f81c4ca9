"""The metrics of online migrations: backfill batches as they commit, and gauges of every
database's migrations (by phase, and why their contract waits) and live leases, read at each
scrape from the counts the worker's last backfill round took (:mod:`worker.service.backfills`).

Labels stay bounded: database aliases are configured, phases and waits are closed sets, a
service is one the access policy admits, and ``table``/``column`` name the few tables under
migration (a migration is registered by a heal and finished by contract).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation

__all__ = ["BATCH_DURATION", "BackfillInstruments", "Counted", "observe_migrations"]

BATCH_DURATION = "schemaheal.backfill.batch.duration"


class Counted(Protocol):
    """One database's counts (:class:`worker.engine.migration_census.Census`)."""

    @property
    def phases(self) -> Mapping[str, int]: ...
    @property
    def waiting(self) -> Mapping[str, int]: ...
    @property
    def leases(self) -> Mapping[tuple[str, str], int]: ...


@dataclass(frozen=True, slots=True)
class BackfillInstruments:
    rows: Counter
    batch_duration: Histogram

    @classmethod
    def make(cls, meter: Meter) -> BackfillInstruments:
        return cls(
            rows=meter.create_counter(
                "schemaheal.backfill.rows", unit="{row}",
                description="rows a backfill batch converted (committed), by table and column",
            ),
            batch_duration=meter.create_histogram(
                BATCH_DURATION, unit="s",
                description="time of one committed backfill batch, its lock waits and retries "
                "included",
            ),
        )  # fmt: skip

    def batch(self, database: str, table: str, column: str, rows: int, seconds: float) -> None:
        """One batch committed: ``rows`` converted in ``seconds``."""
        self.rows.add(rows, {"database": database, "table": table, "column": column})
        self.batch_duration.record(seconds, {"database": database})


def observe_migrations(meter: Meter, counts: Callable[[], Mapping[str, Counted]]) -> None:
    """Three gauges over ``counts()`` (database → its counts), read at each scrape."""

    def phases(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"database": d, "phase": p})
                for d, c in sorted(counts().items())
                for p, n in sorted(c.phases.items())]  # fmt: skip

    def waiting(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"database": d, "reason": w})
                for d, c in sorted(counts().items())
                for w, n in sorted(c.waiting.items())]  # fmt: skip

    def leases(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"database": d, "service": s, "shape": shape})
                for d, c in sorted(counts().items())
                for (s, shape), n in sorted(c.leases.items())]  # fmt: skip

    meter.create_observable_gauge(
        "schemaheal.migrations", [phases], unit="{migration}",
        description="online column migrations, by phase (backfilling, enforcing, stopped, "
        "contract-waiting, contract-ready, retired-kept, contracted)",
    )  # fmt: skip
    meter.create_observable_gauge(
        "schemaheal.contracts.waiting", [waiting], unit="{migration}",
        description="migrations whose contract waits, by reason (backfill, stopped, tracking, "
        "lease, grace, approval)",
    )  # fmt: skip
    meter.create_observable_gauge(
        "schemaheal.leases.live", [leases], unit="{instance}",
        description="running instances (unexpired leases), by service and shape (old: uses the "
        "old shape of a migration not yet contracted)",
    )  # fmt: skip
