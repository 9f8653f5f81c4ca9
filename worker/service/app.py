"""The worker process: FastStream on aiokafka, one consumer group, explicit acknowledgement.

The subscriber takes a poll's batch of ``service.starting`` records, hands them to the
:class:`~worker.service.gate.Gate`, and acknowledges (commits) only after every reply is
published — at-least-once. Replies and dead letters go through one aiokafka producer, so the
original records' headers are copied byte for byte. Topics are created at start-up when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Annotated, Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.params.no_cast import NoCastField
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from faststream.specification import AsyncAPI
from opentelemetry import metrics
from opentelemetry.trace import SpanKind

from contracts.events import (
    REPLY_TYPE,
    SchemaHealed,
    ServiceHeartbeat,
    ServiceStarting,
    event_headers,
)
from contracts.kafka_auth import KafkaAuth
from worker.engine.connection import DATABASE_ERRORS, connect
from worker.errors import KafkaUnavailable
from worker.observability.health import HealthServer, health_app
from worker.observability.logs import BROKER_LOGGER
from worker.observability.metrics import observe_consumers
from worker.observability.tracing import headers_from_context, messaging_attributes, tracer
from worker.service.backfills import Backfills
from worker.service.databases import check_databases
from worker.service.gate import Gate
from worker.service.heartbeats import Heartbeats
from worker.service.offsets import GuardedConsumer, OffsetGuard
from worker.service.polling import poll_without_idle_sleep
from worker.service.replies import dead_letter
from worker.service.requests import TRACE_HEADERS, Rejection
from worker.service.routing import Destination, Route, refused_headers
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.worker")
REDELIVERY_PAUSE_S = 5.0
METADATA_WAIT_S = 10.0  # for a reply topic a request names


HEADERS_ROOM = 1024 * 1024  # what a request record may carry besides its body
SMALL_DEAD_LETTER = 512 * 1024  # fits a topic left at a broker's default (1 MB)
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


def record_limit(settings: WorkerSettings) -> int:
    """The largest record the worker publishes, and the topics it creates accept: the
    largest body it accepts plus room for headers (a dead letter is the request, plus why)."""
    return settings.max_request_bytes + HEADERS_ROOM


class KafkaSink:
    """Publishes replies and dead letters with one producer (acks=all, not idempotent: Tansu
    rejects the idempotent producer, and replies are idempotent for the client anyway).

    A send is confirmed only by :meth:`flush`, which waits for the broker's acknowledgement of
    every record sent since the last flush and raises KafkaUnavailable if one was refused or
    timed out: the batch is then redelivered, never committed past an unpublished reply."""

    def __init__(self, settings: WorkerSettings, *, request_timeout_ms: int = 40_000) -> None:
        self.settings = settings
        self.request_timeout_ms = request_timeout_ms  # a send not acknowledged by then fails
        self._producer: AIOKafkaProducer | None = None
        # sent, not yet confirmed; with the rejection of a dead letter, to cut it if too large
        self._pending: list[tuple[asyncio.Future[Any], Rejection | None]] = []

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the reply producer is not started")
        return self._producer

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            # No linger: a reply waits for nothing (a boot waits for it). Replies still go out
            # in batches: those sent while a partition's request is in flight are sent together.
            linger_ms=0,
            max_request_size=record_limit(self.settings),  # the client's 1 MiB is too small
            request_timeout_ms=self.request_timeout_ms,
            **self.settings.kafka_auth().aiokafka_options(),
        )
        await self.settings.start_client(self._producer)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def reply(
        self, reply: SchemaHealed, request_headers: dict[str, str], key: bytes | None,
        route: Route,
    ) -> None:  # fmt: skip
        route = await self._deliverable(route)
        topic = route.destinations[0].topic
        attributes = messaging_attributes("send", topic, message_id=reply.request_id, key=key)
        with tracer().start_as_current_span(f"send {topic}", kind=SpanKind.PRODUCER,
                                            attributes=attributes):  # fmt: skip
            # The reply continues the request's trace: the context of this send span when
            # tracing is on, else the request's own traceparent, carried over unchanged.
            trace_headers = headers_from_context() or {
                k: request_headers[k] for k in TRACE_HEADERS if k in request_headers
            }
            headers = event_headers(
                event_type=REPLY_TYPE,
                source="/schemaheal/worker",
                subject=reply.request_id,
                extra=trace_headers,
            ) + list(route.correlation + refused_headers(route.refused))
            for destination in route.destinations:
                await self._send(
                    destination.topic, reply.model_dump_json().encode(), key=key,
                    partition=destination.partition, headers=headers,
                )  # fmt: skip

    async def _deliverable(self, route: Route) -> Route:
        """``route``, unless the topic it names does not exist or lacks the partition it names:
        then the reply goes to the standard topic, saying why (only the broker knows)."""
        requested = route.destinations[0]
        if requested.topic == self.settings.reply_topic and requested.partition is None:
            return route
        try:
            partitions = await asyncio.wait_for(
                self.producer.partitions_for(requested.topic), METADATA_WAIT_S
            )
        except (TimeoutError, KafkaError):
            partitions = None
        if partitions and (requested.partition is None or requested.partition in partitions):
            return route
        why = (
            f"reply topic {requested.topic} has no partition {requested.partition}"
            if partitions
            else f"reply topic {requested.topic} does not exist: ask the operators to create it"
        )
        log.warning("reply destination refused", extra={"reason": why})
        standard = Destination(topic=self.settings.reply_topic)
        return replace(route, destinations=(standard,), refused=why)

    async def dead_letter(self, rejection: Rejection) -> None:
        """The record, whole when it fits the record limit, else truncated (see replies)."""
        await self._dead_letter(rejection, record_limit(self.settings), rejection)

    async def _dead_letter(
        self, rejection: Rejection, limit: int, retry: Rejection | None = None
    ) -> None:
        key, value, headers = dead_letter(rejection, limit)
        topic = self.settings.dead_letter_topic
        await self._send(topic, value, key=key, headers=headers, retry=retry)

    async def _send(self, topic: str, value: bytes | None, *, key: bytes | None,
                    headers: Sequence[tuple[str, bytes | None]], partition: int | None = None,
                    retry: Rejection | None = None) -> None:  # fmt: skip
        try:
            sent = await self.producer.send(
                topic, value, key=key, partition=partition, headers=headers
            )
        except KafkaError as exc:
            raise KafkaUnavailable(f"publishing to {topic}: {type(exc).__name__}: {exc}") from exc
        self._pending.append((sent, retry))

    async def flush(self) -> None:
        """Wait until the broker acknowledged every record sent since the last flush. A dead
        letter the topic refuses as too large (its ``max.message.bytes`` is below the worker's
        limit) is sent again cut to ``SMALL_DEAD_LETTER`` bytes: it never holds the batch back."""
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*(sent for sent, _ in pending), return_exceptions=True)
        failed = []
        for (_, retry), result in zip(pending, results, strict=True):
            if retry is not None and isinstance(result, TOO_LARGE):
                log.warning("the dead-letter topic refused %s; sending it cut to %d bytes",
                            type(result).__name__, SMALL_DEAD_LETTER)  # fmt: skip
                await self._dead_letter(retry, SMALL_DEAD_LETTER)
            elif isinstance(result, BaseException):
                failed.append(result)
        if self._pending and not failed:
            await self.flush()  # the dead letters sent again (without a second retry)
        if failed:
            raise KafkaUnavailable(
                f"{len(failed)} of {len(results)} replies and dead letters were not "
                f"acknowledged by the broker ({type(failed[0]).__name__}: {failed[0]}); "
                "the batch is redelivered"
            )


async def ensure_topics(settings: WorkerSettings) -> None:
    """Create the request, reply, dead-letter and heartbeat topics unless they exist."""
    options = settings.kafka_auth().aiokafka_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **options)
    await settings.start_client(admin)
    try:
        existing = set(await admin.list_topics())
        # time-based retention, never compaction: replay needs every request, not the last
        retention_ms = int(settings.topic_retention_days * 86_400_000)
        retention = {"cleanup.policy": "delete", "retention.ms": str(retention_ms),
                     "max.message.bytes": str(record_limit(settings))}  # fmt: skip
        missing = [
            NewTopic(
                name, settings.topic_partitions, settings.topic_replication, topic_configs=retention
            )
            for name in (
                settings.request_topic,
                settings.reply_topic,
                settings.dead_letter_topic,
                settings.heartbeat_topic,
            )
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                await admin.create_topics(missing)
            log.info("created topics", extra={"topics": [t.name for t in missing]})
        absent = sorted(settings.allowed_reply_topics - existing - {settings.reply_topic})
        if absent:
            log.warning("allowed reply topics do not exist yet", extra={"topics": absent})
    finally:
        await admin.close()


def _tolerant_parser() -> Any:
    """FastStream's batch parser decodes every header as UTF-8 and crashes on null or binary
    values. Hand it copies without such headers, then put the original records back."""

    async def parse(records: tuple[Any, ...], original: Any) -> Any:
        clean = tuple(
            replace(r, headers=tuple((k, v) for k, v in (r.headers or ()) if _utf8(v)))
            for r in records
        )
        message = await original(clean)
        message.raw_message = records
        return message

    return parse


def _utf8(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _raw_bodies(message: Any, _original: Any) -> list[bytes]:
    """Bodies stay bytes here; the gate parses (and rejects) them itself."""
    return [r.value or b"" for r in message.raw_message]


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


def broker_security(auth: KafkaAuth) -> BaseSecurity | None:
    """FastStream's form of ``auth`` (it takes security objects, not aiokafka's keywords)."""
    context = auth.ssl_context()
    if not auth.uses_sasl or auth.username is None or auth.password is None:
        return BaseSecurity(ssl_context=context) if context is not None else None
    kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256}.get(
        auth.sasl_mechanism, SASLPlaintext
    )
    return kind(
        auth.username, auth.password.get_secret_value(), ssl_context=context, use_ssl=auth.uses_tls
    )


def _batch_consumer(settings: WorkerSettings, group_id: str) -> dict[str, Any]:
    """Subscriber options of the worker's batch consumers: acknowledged by hand, only after the
    whole batch was served (the Kafka default commits before the handler runs)."""
    return {
        "batch": True,
        "group_id": group_id,
        "ack_policy": AckPolicy.MANUAL,
        "auto_offset_reset": "earliest",
        "max_records": settings.batch_max_records,
        "batch_timeout_ms": settings.fetch_max_wait_ms,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        # FastStream would publish the handler's return value (nothing) to any topic a request
        # names in reply_to; replies are KafkaSink's, to the topics the operator allows.
        "no_reply": True,
        "parser": _tolerant_parser(),
        "decoder": _raw_bodies,
    }


async def _settle(message: Any, sink: KafkaSink, serving: Awaitable[bool], doing: str) -> None:
    """Acknowledge the batch once it is served and every reply and dead letter is acknowledged
    by the broker; otherwise rewind it after a pause (served requests are then answered from
    the ledger). The handlers never raise; a refused or lost send does."""
    try:
        served = await serving
        await sink.flush()
    except Exception:
        log.exception("%s failed; the batch will be redelivered", doing)
        served = False
    if served:
        await message.ack()
    else:
        await asyncio.sleep(REDELIVERY_PAUSE_S)
        await message.nack()


def _subscribe_heartbeats(
    broker: KafkaBroker, settings: WorkerSettings, sink: KafkaSink
) -> Heartbeats:
    """``service.heartbeat`` records renew or end leases (:mod:`worker.service.heartbeats`)."""
    heartbeats = Heartbeats(settings, sink.dead_letter)

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options given as one dict
        settings.heartbeat_topic,
        # a group of its own: its members joining or leaving never rebalance the boot gate's
        **_batch_consumer(settings, f"{settings.group_id}.heartbeats"),
        title="service.heartbeat",
        description="A booted instance says it still runs (ce_type "
        "dev.schemaheal.service.heartbeat.v1: its lease is renewed) or that it stopped "
        "(dev.schemaheal.service.stopped.v1: its lease ends). No reply; bad records are "
        "dead-lettered.",
    )
    async def on_service_heartbeat(
        bodies: Annotated[list[ServiceHeartbeat], NoCastField()], message: KafkaMessage
    ) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        await _settle(message, sink, heartbeats.handle(records), "serving heartbeats")

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

    @broker.subscriber(  # type: ignore[untyped-decorator]  # options given as one dict
        settings.request_topic,
        **_batch_consumer(settings, settings.group_id),
        max_poll_interval_ms=settings.max_poll_interval_ms,
        title="service.starting",
        description="A service asks for its schema to be healed before it starts.",
    )
    async def on_service_starting(
        # Documented as ServiceStarting for AsyncAPI; never cast here — the gate validates each
        # record itself so that a bad one is rejected, not an exception in FastStream.
        bodies: Annotated[list[ServiceStarting], NoCastField()],
        message: KafkaMessage,
    ) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        if guard is not None:  # Tansu: never serve past a batch written late
            records = await guard.admit(cast(GuardedConsumer, message.consumer), records)
            message.raw_message = records  # a nack rewinds to these, never past a hole
            if not records:
                return  # nothing to serve yet: the partition is fetched again from the hole
        await _settle(message, sink, gate.handle(records), "publishing the batch's replies")

    heartbeats = _subscribe_heartbeats(broker, settings, sink)

    for subscriber in broker.subscribers:
        poll_without_idle_sleep(subscriber)

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
