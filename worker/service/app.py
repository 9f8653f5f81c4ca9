"""The worker process: FastStream on aiokafka, one consumer group, explicit acknowledgement.

The subscriber takes a poll's batch of ``service.starting`` records, hands them to the
:class:`~worker.service.gate.Gate` (without FastStream's per-message pipeline:
:mod:`worker.service.direct`), and acknowledges (commits) only after every reply is
published — at-least-once (:mod:`worker.service.consuming`). Replies and dead letters go through
one aiokafka producer (:mod:`worker.service.sink`). Topics are created at start-up when missing
(:mod:`worker.service.topics`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, cast

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from opentelemetry import metrics

from contracts.events import SchemaHealed, ServiceHeartbeat, ServiceStarting
from worker.engine.connection import DATABASE_ERRORS, connect
from worker.observability.health import HealthServer, health_app
from worker.observability.logs import BROKER_LOGGER
from worker.observability.metrics import observe_consumers
from worker.service.arguments import Message, Raw
from worker.service.backfills import Backfills
from worker.service.consuming import batch_consumer, broker_security, heartbeat_consumer, settle
from worker.service.databases import check_databases
from worker.service.direct import serve_directly
from worker.service.gate import Gate
from worker.service.heartbeats import Heartbeats
from worker.service.offsets import GuardedConsumer, OffsetGuard
from worker.service.polling import poll_without_idle_sleep
from worker.service.sink import KafkaSink
from worker.service.topics import ensure_topics
from worker.settings import WorkerSettings

# KafkaSink and ensure_topics are re-exported: callers and tests import them from here
__all__ = ["KafkaSink", "build_app", "ensure_topics"]


def _health_server(settings: WorkerSettings, broker: KafkaBroker, spec: AsyncAPI) -> HealthServer:
    async def readiness() -> dict[str, str]:
        problems: dict[str, str] = {}
        if not await broker.ping(timeout=3):
            problems["kafka"] = f"{settings.bootstrap_servers} does not answer"
        for alias in settings.databases:
            try:
                conn = await asyncio.wait_for(connect(settings.dsn(alias)), 3)
                await conn.fetchval("SELECT 1")
                await conn.close()
            except (TimeoutError, *DATABASE_ERRORS) as exc:
                problems[f"database {alias}"] = type(exc).__name__  # never the DSN: it is secret
        return problems

    return HealthServer(
        health_app(readiness, spec), host=settings.health_host, port=settings.health_port
    )


def _subscribe_heartbeats(
    broker: KafkaBroker, settings: WorkerSettings, sink: KafkaSink
) -> Heartbeats:
    """``service.heartbeat`` records renew or end leases (:mod:`worker.service.heartbeats`)."""
    heartbeats = Heartbeats(settings, sink.dead_letter)

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options given as one dict
        settings.heartbeat_topic,
        # a group of its own: its members joining or leaving never rebalance the boot gate's
        **heartbeat_consumer(settings),
        title="service.heartbeat",
        description="A booted instance says it still runs (ce_type "
        "dev.schemaheal.service.heartbeat.v1: its lease is renewed) or that it stopped "
        "(dev.schemaheal.service.stopped.v1: its lease ends). No reply; bad records are "
        "dead-lettered.",
    )
    async def on_service_heartbeat(
        bodies: Annotated[list[ServiceHeartbeat], Raw()], message: Message
    ) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        await settle(message, sink, heartbeats.handle(records), "serving heartbeats")

    return heartbeats


def build_app(settings: WorkerSettings) -> tuple[FastStream, KafkaBroker]:
    """The FastStream application of the worker (also what the AsyncAPI document describes)."""
    broker = KafkaBroker(
        settings.bootstrap_servers,
        security=broker_security(settings.kafka_auth()),
        enable_idempotence=False,
        graceful_timeout=settings.max_heal_s,  # let an in-flight heal finish on shutdown
        log_level=logging.DEBUG,  # its per-message "Received"/"Processed" lines; errors stay
        # through our handlers (JSON lines with trace ids, or rich in `dev`), not its own stdout
        # handler; configure_logging sets its level
        logger=logging.getLogger(BROKER_LOGGER),
    )
    sink = KafkaSink(settings)
    gate = Gate(settings, sink)
    backfills = Backfills(settings)
    guard = OffsetGuard(settings.offset_gap_wait_s) if settings.offset_guard else None
    spec = AsyncAPI(
        broker,
        title="schemaheal worker",
        version="1.0.0",
        description="The boot gate: service.starting → heal → schema.healed (CloudEvents 1.0, "
        "binary content mode). See the README for headers and semantics.",
    )
    app = FastStream(broker, specification=spec)

    async def serve(message: Any) -> None:
        """Serve a polled batch (FastStream's message, or a :class:`Batch`) and settle it."""
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        if guard is not None:  # Tansu: never serve past a batch written late
            records = await guard.admit(cast(GuardedConsumer, message.consumer), records)
            message.raw_message = records  # a nack rewinds to these, never past a hole
            if not records:
                return  # nothing to serve yet: the partition is fetched again from the hole
        await settle(message, sink, gate.handle(records), "publishing the batch's replies")

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options given as one dict
        settings.request_topic,
        **batch_consumer(settings, settings.group_id),
        max_poll_interval_ms=settings.max_poll_interval_ms,
        title="service.starting",
        description="A service asks for its schema to be healed before it starts.",
    )
    async def on_service_starting(
        # Documented as ServiceStarting for AsyncAPI; never cast here — the gate validates each
        # record itself so that a bad one is rejected, not an exception in FastStream.
        bodies: Annotated[list[ServiceStarting], Raw()],
        message: Message,
    ) -> None:
        await serve(message)  # FastStream's test broker; a real one: serve_directly below

    heartbeats = _subscribe_heartbeats(broker, settings, sink)

    for subscriber in broker.subscribers:
        poll_without_idle_sleep(subscriber)
        if cast(Any, subscriber).topics[0].name == settings.request_topic:
            serve_directly(subscriber, serve)

    # Declared for the AsyncAPI document only. Replies and dead letters are sent by KafkaSink:
    # decorating the handler would make FastStream publish its return value as an extra message.
    broker.publisher(
        settings.reply_topic,
        schema=SchemaHealed,
        title="schema.healed",
        description="The worker's answer; key = database alias; correlation_id = the request's "
        "correlation_id, else its ce_id. Every answer is here, also those sent to a reply topic "
        "the request named (reply_to, kafka_replyTopic) and the operator allows.",
    )
    broker.publisher(
        settings.dead_letter_topic,
        schema=ServiceStarting,
        title="service.starting.dlq",
        description="Records that could not be served, with x-schemaheal-error-* headers.",
    )

    health = _health_server(settings, broker, spec) if settings.health_port else None
    observe_consumers(
        metrics.get_meter("schemaheal"),
        lambda: [c for s in broker.subscribers if (c := getattr(s, "consumer", None)) is not None],
    )

    @app.on_startup
    async def _start() -> None:
        await check_databases(settings)  # a transaction-pooling proxy stops the worker here
        await ensure_topics(settings)
        await sink.start()
        if health is not None:
            await health.start()
        await backfills.start()

    @app.after_shutdown
    async def _stop() -> None:
        await backfills.stop()
        if health is not None:
            await health.stop()
        await sink.stop()
        await gate.close()
        await heartbeats.close()

    return app, broker
