"""The example service (``examples/nexus/orchestrator.py``, what ``make demo`` boots) keeps its
lease while it runs and ends it when it stops: its lifespan sends heartbeats through
``contracts.keep_alive`` and ``service.stopped`` on exit, through a real broker and worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from examples.nexus.orchestrator import lifespan
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings

NEXUS = Path(__file__).parents[2] / "examples" / "nexus"


async def lease_of(database: FreshDatabase, instance: str) -> Any:
    rows = await database.fetch(
        "SELECT booted_at, renewed_at, ended_at FROM schemaheal.leases "
        "WHERE service = 'orchestrator' AND instance = $1", instance,
    )  # fmt: skip
    return rows[0] if rows else None


async def until(database: FreshDatabase, instance: str, check: Any, what: str) -> Any:
    for _ in range(600):
        lease = await lease_of(database, instance)
        if lease is not None and check(lease):
            return lease
        await asyncio.sleep(0.05)
    raise AssertionError(f"the lease of {instance} never {what}: {lease!r}")


async def test_the_example_service_renews_its_lease_while_it_runs_and_ends_it_when_it_stops(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with running_worker(worker_settings(kafka, database)):
        servers = kafka.bootstrap_servers
        async with lifespan(bootstrap_servers=servers, instance="pod-a", timeout_s=60,
                            heartbeat_s=0.2) as reply:  # fmt: skip
            assert reply.outcome == "healed"
            first = await until(database, "pod-a", lambda r: r["renewed_at"] > r["booted_at"],
                                "was renewed")  # fmt: skip
            assert first["ended_at"] is None
            await until(database, "pod-a", lambda r: r["renewed_at"] > first["renewed_at"],
                        "was renewed again")  # fmt: skip
        ended = await until(database, "pod-a", lambda r: r["ended_at"] is not None, "ended")
    assert ended["ended_at"] >= ended["renewed_at"]
