"""The worker's metrics, as OpenTelemetry instruments, exposed for Prometheus on ``/metrics``.

Histograms measure seconds with bucket boundaries chosen for their unit: from 5 ms (a heal that
finds nothing) to 5 minutes (an index build on a large table).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from worker.observability.migration_metrics import BATCH_DURATION

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True, slots=True)
class Instruments:
    heal_duration: Histogram
    lock_wait: Histogram
    statements: Counter
    drift: Counter
    requests: Counter
    coalesced: Counter
    dead_letters: Counter


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """Every label value a counter can ever be added to with, so each series starts at 0.
    The service fills it in from the engine's closed sets (this layer does not import them)."""

    databases: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    hazards: tuple[str, ...] = ()  # with "none", for statements without one
    drift_kinds: tuple[str, ...] = ()
    dead_letter_codes: tuple[str, ...] = ()
    rejected: str = "rejected"  # the outcome of a record that names no known database


def make_instruments(meter: Meter, series: Series | None = None) -> Instruments:
    """The worker's instruments, every counter series it can ever add to already at 0."""
    instruments = Instruments(
        heal_duration=meter.create_histogram(
            "schemaheal.heal.duration", unit="s", description="time of one heal, lock to ledger"
        ),
        lock_wait=meter.create_histogram(
            "schemaheal.lock.wait", unit="s", description="time waiting for the schema locks"
        ),
        statements=meter.create_counter(
            "schemaheal.statements.applied", unit="{statement}",
            description="statements applied, by hazard",
        ),
        drift=meter.create_counter(
            "schemaheal.drift.unresolved", unit="{difference}",
            description="differences reported and left alone, by kind",
        ),
        requests=meter.create_counter(
            "schemaheal.requests", unit="{request}", description="requests answered, by outcome"
        ),
        coalesced=meter.create_counter(
            "schemaheal.requests.coalesced", unit="{request}",
            description="requests served by a heal run for another request",
        ),
        dead_letters=meter.create_counter(
            "schemaheal.dead_letters", unit="{record}", description="records dead-lettered, by code"
        ),
    )  # fmt: skip
    if series is not None:
        zero_counters(instruments, series)
    return instruments


def zero_counters(instruments: Instruments, series: Series) -> None:
    """Add 0 to every series (outcome, hazard, drift kind, dead-letter code, per database), so
    ``/metrics`` shows them from the start and dashboards tell zero from no data."""
    instruments.requests.add(0, {"outcome": series.rejected})  # a record of no database
    for code in series.dead_letter_codes:
        instruments.dead_letters.add(0, {"code": code})
    for database in sorted(series.databases):
        instruments.coalesced.add(0, {"database": database})
        for outcome in series.outcomes:
            instruments.requests.add(0, {"outcome": outcome, "database": database})
        for hazard in series.hazards:
            instruments.statements.add(0, {"database": database, "hazard": hazard})
        for kind in series.drift_kinds:
            instruments.drift.add(0, {"database": database, "kind": kind})


def observe_consumers(meter: Meter, consumers: Callable[[], Iterable[Any]]) -> None:
    """Two gauges, read at each scrape from the request topic's aiokafka consumers: the
    partitions each holds, and the seconds since its least recently fetched partition was
    last fetched. aiokafka fetches every assigned partition continuously, idle or not, except
    one whose fetched records wait for the handler: a growing age means requests are waiting
    that this worker does not take (our own stand-in for consumer lag, which needs no broker
    exporter)."""

    def partitions(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(len(c.assignment())) for c in consumers()]

    def fetch_age(_options: CallbackOptions) -> Iterable[Observation]:
        now_ms = time.time() * 1000
        ages = [now_ms - stamp for c in consumers() for stamp in _fetch_stamps(c)]
        return [Observation(max(ages) / 1000)] if ages else []

    meter.create_observable_gauge(
        "schemaheal.consumer.partitions",
        [partitions],
        unit="{partition}",
        description="partitions of the request topic assigned to this worker",
    )
    meter.create_observable_gauge(
        "schemaheal.consumer.fetch_age", [fetch_age], unit="s",
        description="seconds since the least recently fetched assigned partition was fetched",
    )  # fmt: skip


def _fetch_stamps(consumer: Any) -> list[int]:
    stamps = []
    for partition in consumer.assignment():
        with contextlib.suppress(AssertionError):  # revoked by a rebalance meanwhile
            stamp = consumer.last_poll_timestamp(partition)
            if stamp is not None:  # not fetched yet since it was assigned
                stamps.append(stamp)
    return stamps


def meter_provider() -> MeterProvider:
    """A provider whose readings Prometheus scrapes from ``/metrics``."""
    views = [
        View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(SECONDS))
        for name in ("schemaheal.heal.duration", "schemaheal.lock.wait", BATCH_DURATION)
    ]
    return MeterProvider(metric_readers=[PrometheusMetricReader()], views=views)
