"""One trace per boot in a real backend: Jaeger v2 (built from the Go module proxy, see
tests/jaeger.py), asked through its query API. The worker exports over OTLP/gRPC, the clients
and ``schemaheal dev`` over OTLP/HTTP: both protocols are proved on the way.

Every way a service boots is here: ``ensure_schema`` with no span of the caller's (the README's
lifespan example), ``schemaheal await-schema`` in an init container that the platform hands a
``TRACEPARENT``, the ``schemaheal dev --demo`` replicas, and a storm of boots coalesced into one
heal. Each must be one trace, rooted at the booting side, with no orphan span, the README's
parents, ``db.*`` on statements, the promised links, and the ledger's trace ids."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FreshDatabase
from tests.jaeger import Jaeger
from tests.kafka import KafkaServer
from tests.observability.processes import environment, eventually, otel, run, worker_process
from tests.observability.span_tree import Boot, by_trace, check_boot, links, statements_covered
from tests.service.conftest import read_topic, worker_settings
from worker.service.app import ensure_topics

NEXUS = Path(__file__).parents[2] / "examples" / "nexus"


@pytest.fixture
def jaeger() -> Iterator[Jaeger]:
    server = Jaeger().start()
    yield server
    server.stop()


def grpc_worker(jaeger: Jaeger) -> dict[str, str]:
    return otel(jaeger.otlp_grpc, "grpc", "schemaheal-worker")


def http_client(jaeger: Jaeger, service: str | None = "orchestrator") -> dict[str, str]:
    return environment(**otel(jaeger.otlp_http, "http/protobuf", service))


async def boots(jaeger: Jaeger, count: int, external_parent: str | None = None) -> list[Boot]:
    """The ``count`` boot traces Jaeger holds (and nothing else), each checked."""

    async def check() -> list[Boot]:
        traces = by_trace(await asyncio.to_thread(jaeger.spans))
        assert len(traces) == count, f"{len(traces)} traces, not {count}"
        checked = [check_boot(s, external_parent=external_parent) for s in traces.values()]
        for boot in checked:  # every request was served by a heal Jaeger holds
            assert boot.heal is not None or heal_links(boot, checked), boot.trace_id
        return checked

    return await eventually(check)


def heal_links(boot: Boot, checked: list[Boot]) -> list[tuple[str, str]]:
    """The heals of other boots that ``boot``'s process span links to."""
    heals = {(b.trace_id, b.heal["spanId"]) for b in checked if b.heal is not None}
    return [link for link in links(boot.process) if link in heals]


async def ledger_trace_ids(database: FreshDatabase) -> set[str]:
    return {r["trace_id"] for r in await database.fetch("SELECT trace_id FROM schemaheal.heals")}


async def test_a_boot_through_ensure_schema_without_a_span_is_one_trace(
    kafka: KafkaServer, database: FreshDatabase, jaeger: Jaeger
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with worker_process(kafka, database, **grpc_worker(jaeger)):
        code, out, err = await run("-m", "tests.observability.boot", kafka.bootstrap_servers,
                                   "orchestrator-0", env=http_client(jaeger))  # fmt: skip
    assert code == 0, err
    reply = json.loads(out)
    [boot] = await boots(jaeger, 1)
    assert boot.root["service"] == "orchestrator"
    assert boot.process["service"] == "schemaheal-worker"
    assert statements_covered(boot.statements) == len(reply["statements"]) == 10
    assert any(s["name"] == "BATCH CREATE TABLE" for s in boot.statements)
    assert {s["name"] for s in boot.statements} >= {"ALTER TABLE public.tenants"}
    assert await ledger_trace_ids(database) == {boot.trace_id}


async def test_await_schema_joins_the_trace_its_environment_names(
    kafka: KafkaServer, database: FreshDatabase, jaeger: Jaeger
) -> None:
    """An init container whose platform hands it the pod's deploy trace in TRACEPARENT."""
    await database.execute((NEXUS / "old_shape.sql").read_text())
    trace_id, deploy_span = secrets.token_hex(16), secrets.token_hex(8)
    env = http_client(jaeger, service=None)  # named after the manifest's service
    env |= {"TRACEPARENT": f"00-{trace_id}-{deploy_span}-01", "TRACESTATE": "platform=deploy"}
    async with worker_process(kafka, database, **grpc_worker(jaeger)):
        code, _, err = await run(
            "-m", "worker.cli", "await-schema", "--bootstrap-servers", kafka.bootstrap_servers,
            str(NEXUS / "manifest.json"), "--format", "json", env=env,
        )  # fmt: skip
    assert code == 0, err
    [boot] = await boots(jaeger, 1, external_parent=deploy_span)
    assert boot.trace_id == trace_id
    assert boot.root["parentSpanId"] == deploy_span
    assert boot.root["service"] == "orchestrator"
    assert boot.heal is not None and boot.statements
    assert await ledger_trace_ids(database) == {trace_id}


async def test_the_demo_replicas_boot_in_one_trace_each(jaeger: Jaeger) -> None:
    """``schemaheal dev --demo``: tracing from OTEL_* like the worker; three replicas."""
    env = http_client(jaeger, service=None)
    code, _, err = await run("-m", "worker.cli", "dev", "--demo", "--replicas", "3",
                             "--exit-after-demo", env=env)  # fmt: skip
    assert code == 0, err[-3000:]
    checked = await boots(jaeger, 3)
    assert {b.root["service"] for b in checked} == {"schemaheal-dev"}
    assert sum(statements_covered(b.statements) for b in checked) == 10  # the DDL ran once


async def test_a_coalesced_storm_is_one_trace_per_boot_linked_to_the_one_heal(
    kafka: KafkaServer, database: FreshDatabase, jaeger: Jaeger
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    await ensure_topics(worker_settings(kafka, database))
    clients = [
        asyncio.ensure_future(run("-m", "tests.observability.boot", kafka.bootstrap_servers,
                                  f"orchestrator-{i}", env=http_client(jaeger)))
        for i in range(3)
    ]  # fmt: skip
    await read_topic(kafka, "service.starting", 3, timeout_s=60)  # all asked before the worker
    async with worker_process(kafka, database, **grpc_worker(jaeger)):
        results = await asyncio.gather(*clients)
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    checked = await boots(jaeger, 3)
    [leader] = [b for b in checked if b.heal is not None]
    assert leader.heal is not None
    for follower in (b for b in checked if b is not leader):
        assert links(follower.process) == [(leader.trace_id, leader.heal["spanId"])]
    assert await ledger_trace_ids(database) == {b.trace_id for b in checked}
