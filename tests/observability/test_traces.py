"""One trace per boot, through a real broker: the service's boot span → service.starting →
the worker's processing span → lock, inspect, plan, statements, ledger → schema.healed → the
client's wait span. Recorded with in-memory exporters."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from contracts import ensure_schema
from contracts.events import REQUEST_TYPE, decode_headers, event_headers
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import produce, read_topic, running_worker, worker_settings
from tests.service.records import request_body
from worker.observability.metrics import SECONDS
from worker.service.app import ensure_topics

NEXUS = Path(__file__).parents[2] / "examples" / "nexus"
SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def telemetry() -> None:
    _install_providers()


@functools.cache
def _install_providers() -> None:
    """The SDK providers for these tests: the API allows setting them once per process."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    from worker.observability.metrics import meter_provider  # noqa: F401 - the views we test

    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def clear() -> None:
    SPANS.clear()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def parent_of(span: ReadableSpan, spans: tuple[ReadableSpan, ...]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    [parent] = [s for s in spans if s.context.span_id == span.parent.span_id]
    return parent


async def test_one_trace_from_the_boot_span_through_the_worker_and_back(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    tracer = trace.get_tracer("orchestrator")
    async with running_worker(worker_settings(kafka, database)):
        with tracer.start_as_current_span("orchestrator boot") as boot:
            reply = await ensure_schema((NEXUS / "manifest.json").read_bytes(),
                                        bootstrap_servers=kafka.bootstrap_servers, timeout_s=60)  # fmt: skip
        [record] = await read_topic(kafka, "schema.healed", 1)
    assert reply.outcome == "healed"
    spans = SPANS.get_finished_spans()
    trace_id = boot.get_span_context().trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}, "one trace for the whole boot"

    [send] = by_name(spans, "send service.starting")
    [process] = by_name(spans, "process service.starting")
    [heal] = by_name(spans, "schemaheal heal")
    [apply] = by_name(spans, "schemaheal apply")
    [reply_span] = by_name(spans, "send schema.healed")
    [wait] = by_name(spans, "receive schema.healed")
    [client] = by_name(spans, "ensure_schema")
    assert parent_of(client, spans).name == "orchestrator boot"  # nested under the caller's
    assert parent_of(send, spans) is client
    assert parent_of(process, spans) is send
    assert parent_of(heal, spans) is process
    assert parent_of(apply, spans).name == "schemaheal heal"
    assert parent_of(reply_span, spans) is process
    assert parent_of(wait, spans) is client
    assert [link.context.span_id for link in wait.links] == [reply_span.context.span_id]
    for name in ("schemaheal lock wait", "schemaheal inspect and plan", "schemaheal verify",
                 "schemaheal ledger write"):  # fmt: skip
        [span] = by_name(spans, name)
        assert parent_of(span, spans) is heal, name
    statements = [
        s for s in spans if s.parent is not None and s.parent.span_id == apply.context.span_id
    ]
    # a new table's statements go in one round trip: one span for them, saying how many
    covered = [s.attributes.get("db.operation.batch.size", 1) for s in statements]
    assert sum(covered) == len(reply.statements) == 10
    assert any(
        s.name == "BATCH CREATE TABLE" and n >= 2 for s, n in zip(statements, covered, strict=True)
    )
    assert all(s.kind is SpanKind.CLIENT for s in statements)
    assert {s.attributes["db.system.name"] for s in statements} == {"postgresql"}
    assert any(s.name == "ALTER TABLE public.tenants" for s in statements)
    assert (send.kind, process.kind, reply_span.kind, wait.kind) == (
        SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.PRODUCER, SpanKind.CONSUMER,
    )  # fmt: skip
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.name"] == "service.starting"
    assert process.attributes["schemaheal.outcome"] == "healed"
    assert process.attributes["schemaheal.manifest.hash"] == reply.manifest_hash
    traceparent = decode_headers(record.headers)["traceparent"]
    assert traceparent.split("-")[1] == format(trace_id, "032x")  # the reply carries the trace
    ledger = await database.fetch("SELECT trace_id FROM schemaheal.heals")
    assert [r["trace_id"] for r in ledger] == [format(trace_id, "032x")]


async def test_a_boot_without_a_span_of_its_own_is_one_trace_rooted_at_ensure_schema(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    """The README's lifespan example: no span of the caller's; the client opens the root."""
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with running_worker(worker_settings(kafka, database)):
        reply = await ensure_schema((NEXUS / "manifest.json").read_bytes(),
                                    bootstrap_servers=kafka.bootstrap_servers, timeout_s=60)  # fmt: skip
    spans = SPANS.get_finished_spans()
    [root] = by_name(spans, "ensure_schema")
    assert root.parent is None
    assert root.attributes is not None and root.attributes["schemaheal.outcome"] == reply.outcome
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert all(s is root or parent_of(s, spans) for s in spans), "no orphan spans"
    [wait] = by_name(spans, "receive schema.healed")
    assert parent_of(wait, spans) is root


async def test_coalesced_requests_keep_their_own_traces_linked_to_the_heal(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    tracer = trace.get_tracer("replicas")
    traces = []
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    settings = worker_settings(kafka, database)
    await ensure_topics(settings)
    for i in range(3):  # published before the worker starts: its first poll takes all three
        with tracer.start_as_current_span(f"replica {i} boot") as boot:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id=f"r{i}",
                                    extra=carrier)  # fmt: skip
            traces.append(boot.get_span_context().trace_id)
        await produce(kafka, "service.starting", json.dumps(request_body()).encode(), headers)
    async with running_worker(settings):
        await read_topic(kafka, "schema.healed", 3)
    spans = SPANS.get_finished_spans()
    processing = by_name(spans, "process service.starting")
    assert sorted(s.context.trace_id for s in processing) == sorted(traces)  # each its own trace
    [heal] = by_name(spans, "schemaheal heal")  # one heal served all three
    leader = parent_of(heal, spans)
    followers = [p for p in processing if p is not leader]
    assert len(followers) == 2
    for follower in followers:  # linked to the heal that served it, not to its requester
        assert [link.context.span_id for link in follower.links] == [heal.context.span_id]
        assert follower.attributes["schemaheal.outcome"] == "healed"


async def test_metrics_have_units_and_second_buckets(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    async with running_worker(worker_settings(kafka, database)):
        headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="m1")
        await produce(kafka, "service.starting", json.dumps(request_body()).encode(), headers)
        await produce(
            kafka,
            "service.starting",
            b"{bad",
            event_headers(event_type=REQUEST_TYPE, source="/s", event_id="m2"),
        )
        await read_topic(kafka, "schema.healed", 2)
        await asyncio.sleep(0.1)
    data = READER.get_metrics_data()
    found = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert found["schemaheal.heal.duration"].unit == "s"
    outcomes = {
        dict(p.attributes)["outcome"] for p in found["schemaheal.requests"].data.data_points
    }
    assert {"healed", "rejected"} <= outcomes
    codes = {dict(p.attributes)["code"] for p in found["schemaheal.dead_letters"].data.data_points}
    assert "not-json" in codes
    hazards = {
        dict(p.attributes)["hazard"]
        for p in found["schemaheal.statements.applied"].data.data_points
    }
    assert "strong-lock" in hazards
    assert SECONDS[0] == 0.005  # buckets fit seconds (checked through the provider in test_health)


async def test_a_replayed_request_starts_a_new_trace_linked_to_the_original(
    database: FreshDatabase,
) -> None:
    from contracts import load_manifest
    from worker.engine.connection import connect
    from worker.engine.heal import HealOptions
    from worker.replay.audit import Boot, RequestEvent
    from worker.replay.database import reapply

    await database.execute((NEXUS / "old_shape.sql").read_text())
    original_trace, original_span = 0x1234ABCD << 64, 0x42
    manifest = load_manifest((NEXUS / "manifest.json").read_bytes())
    boot = Boot(request=RequestEvent(
        request_id="r-original", time_ms=0, position="service.starting:0:7",
        service="orchestrator", database="nexus", manifest=manifest,
        traceparent=f"00-{original_trace:032x}-{original_span:016x}-01",
    ))  # fmt: skip
    tracer = trace.get_tracer("operator")
    with tracer.start_as_current_span("operator runs replay"):  # an unrelated current span
        conn = await connect(database.dsn)
        try:
            result = await reapply(conn, boot, HealOptions())
        finally:
            await conn.close()
    assert result.outcome.value == "healed"
    spans = SPANS.get_finished_spans()
    [root] = by_name(spans, "schemaheal replay reapply")
    assert root.parent is None, "a replay is not a child of the original boot (or of the caller)"
    assert root.context.trace_id != original_trace
    [link] = root.links
    assert (link.context.trace_id, link.context.span_id) == (original_trace, original_span)
    assert root.attributes is not None and root.attributes["schemaheal.replay.of"] == "r-original"
    [heal] = by_name(spans, "schemaheal heal")
    assert parent_of(heal, spans) is root
    rows = await database.fetch("SELECT request_id, trace_id FROM schemaheal.heals")
    assert [r["trace_id"] for r in rows] == [format(root.context.trace_id, "032x")]
    assert rows[0]["request_id"].startswith("replay-of:r-original:")
