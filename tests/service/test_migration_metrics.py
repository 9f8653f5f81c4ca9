"""The worker's migration metrics move with real work on a real PostgreSQL: a backfill's rows and
batches as they commit, then the migration's phase, why its contract waits, and the live leases
by service and shape, as the round after each change counts them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME, USERS, expand
from tests.service.test_backfills import settings
from worker.engine import lease_store
from worker.engine.connection import Connection, connect
from worker.service.backfills import Backfills

pytestmark = pytest.mark.postgres
OLD_SHAPE = frozenset({("public", "users", "id", "integer"), ("public", "users", "name", "text")})


def readings(reader: InMemoryMetricReader) -> dict[str, dict[frozenset[tuple[str, Any]], Any]]:
    """Metric name → attributes → value (a histogram's: its count)."""
    out: dict[str, dict[frozenset[tuple[str, Any]], Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    value = point.count if value is None else value  # type: ignore[attr-defined]
                    out.setdefault(metric.name, {})[frozenset(point.attributes.items())] = value
    return out


def at(reading: dict[frozenset[tuple[str, Any]], Any], **labels: str) -> Any:
    return reading.get(frozenset(labels.items()))


async def until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    for _ in range(int(timeout_s * 20)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def next_round(backfills: Backfills, conn: Connection) -> None:
    """Wake the runner (as a heal's registration does) and wait for the round to end."""
    done = backfills.rounds["nexus"]
    await conn.execute("NOTIFY schemaheal_migrations")
    await until(lambda: backfills.rounds["nexus"] > done, "another round")


async def test_backfill_rows_batches_phases_waits_and_leases_are_measured(
    database: FreshDatabase,
) -> None:
    await database.execute(USERS.format(rows=450))
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    fixed = settings(database, backfill_batch_rows=100, backfill_batch_target_ms=0)  # 100 a batch
    backfills = Backfills(fixed, meter)
    conn = await connect(database.dsn)
    await backfills.start()
    try:
        await until(lambda: bool(backfills.rounds.get("nexus")), "a first round")
        phases = readings(reader)["schemaheal.migrations"]
        assert {dict(k)["phase"]: v for k, v in phases.items()}["backfilling"] == 0
        await expand(conn, RENAME)  # registered: the runner is woken and backfills it
        await until(lambda: backfills.counts["nexus"].phases["contract-waiting"] == 1, "expanded")

        found = readings(reader)
        where = {"database": "nexus", "table": "public.users", "column": "full_name"}
        assert at(found["schemaheal.backfill.rows"], **where) == 450
        assert at(found["schemaheal.backfill.batch.duration"], database="nexus") == 5  # 4½ batches
        # leases are recorded only since this round: instances booted before may still run
        assert at(found["schemaheal.contracts.waiting"], database="nexus", reason="tracking") == 1
        assert at(found["schemaheal.migrations"], database="nexus", phase="backfilling") == 0

        await conn.execute(
            "UPDATE schemaheal.liveness SET tracked_since = now() - interval '1 day'"
        )
        await lease_store.record_boot(conn, instances=[("legacy", "pod-1"), ("legacy", "pod-2")],
                                      manifest_hash="h1", shape=OLD_SHAPE, ttl_s=600)  # fmt: skip
        await next_round(backfills, conn)
        found = readings(reader)
        assert at(found["schemaheal.leases.live"], database="nexus", service="legacy",
                  shape="old") == 2  # fmt: skip
        assert at(found["schemaheal.contracts.waiting"], database="nexus", reason="lease") == 1
        assert at(found["schemaheal.contracts.waiting"], database="nexus", reason="tracking") == 0

        for pod in ("pod-1", "pod-2"):
            await lease_store.stop(conn, service="legacy", instance=pod)
        await next_round(backfills, conn)  # the grace is 600 s by default
        found = readings(reader)
        assert at(found["schemaheal.contracts.waiting"], database="nexus", reason="grace") == 1
        assert found.get("schemaheal.leases.live", {}) == {}  # no live instance: no series
    finally:
        await backfills.stop()
        await conn.close()
    assert backfills.counts == {}  # a stopped worker's gauges report nothing
