"""The boot client: ``await ensure_schema(manifest, bootstrap_servers=...)`` before startup.

It publishes ``service.starting`` and waits for the ``schema.healed`` reply that names its
request. FastStream's ``broker.request()`` relies on a reply-to topic per request, which a real
Kafka cluster does not give us, so the client reads the shared reply topic itself. A reply is
keyed by the database alias, like its request, so the client reads only the partition that key
hashes to (the producers' default partitioner, :func:`reply_partition`): a storm of N replicas
over many databases no longer moves N² reply records to clients. It takes the end offsets of
every partition and *waits until they are resolved* before sending, so a reply that comes back
fast can never be missed, and if the topic's partition count changes while it waits, it reads
every partition from those offsets. Its ``correlation_id`` header is its ``ce_id``, which the
worker's reply echoes, and it names no reply topic: the shared one is where every answer is.
It never moves past an offset it has not read: on a broker that writes concurrent batches out of
offset order (Tansu, when several workers write one reply partition) it fetches again from the
first offset not read until that batch is written.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from contracts.errors import (
    BootGateTimeout,
    BrokerUnavailable,
    SchemaBlocked,
    SchemaFailed,
    SchemaRejected,
)
from contracts.events import (
    REPLY_TOPIC,
    REPLY_TYPE,
    REQUEST_TOPIC,
    REQUEST_TYPE,
    SchemaHealed,
    ServiceStarting,
    decode_headers,
    event_headers,
    service_source,
)
from contracts.kafka_auth import KafkaAuth, connection_problem
from contracts.manifest import Manifest
from contracts.signing import sign
from contracts.validation import load_manifest

__all__ = ["ensure_schema", "reply_partition", "request_schema"]

REPARTITION_CHECK_S = 3.0
HOLE_WAIT_S = 10.0  # a batch is written within milliseconds of taking its offsets

_tracer = trace.get_tracer("schemaheal.contracts")
_ERRORS = {"blocked": SchemaBlocked, "rejected": SchemaRejected, "failed": SchemaFailed}


async def ensure_schema(
    manifest: Manifest | Mapping[str, Any] | bytes | str,
    *,
    bootstrap_servers: str,
    instance: str | None = None,
    timeout_s: float = 120.0,
    trace_headers: Mapping[str, str] | None = None,
    kafka_auth: KafkaAuth | None = None,
    kafka_options: Mapping[str, Any] | None = None,
    fetch_max_wait_ms: int = 100,
    signing_key: Ed25519PrivateKey | None = None,
    key_id: str | None = None,
) -> SchemaHealed:
    """Ask the worker to heal ``manifest``'s schemas; return its reply when the service may
    start, raise :class:`SchemaBlocked`, :class:`SchemaRejected`, :class:`SchemaFailed` or
    :class:`BootGateTimeout` otherwise.

    ``kafka_auth`` reaches a secured Kafka (TLS, SASL/SCRAM); ``kafka_options`` are passed on to
    aiokafka as they are."""
    reply = await request_schema(
        manifest,
        bootstrap_servers=bootstrap_servers,
        instance=instance,
        timeout_s=timeout_s,
        trace_headers=trace_headers,
        kafka_auth=kafka_auth,
        kafka_options=kafka_options,
        fetch_max_wait_ms=fetch_max_wait_ms,
        signing_key=signing_key,
        key_id=key_id,
    )
    if not reply.may_start:
        raise _ERRORS[reply.outcome](reply)
    return reply


async def request_schema(
    manifest: Manifest | Mapping[str, Any] | bytes | str,
    *,
    bootstrap_servers: str,
    instance: str | None = None,
    timeout_s: float = 120.0,
    trace_headers: Mapping[str, str] | None = None,
    kafka_auth: KafkaAuth | None = None,
    kafka_options: Mapping[str, Any] | None = None,
    fetch_max_wait_ms: int = 100,
    signing_key: Ed25519PrivateKey | None = None,
    key_id: str | None = None,
) -> SchemaHealed:
    """Like :func:`ensure_schema`, but return any reply instead of raising for its outcome.

    The boot is one trace: an ``ensure_schema`` span, a child of the caller's current span (or
    of the context ``trace_headers`` carries, e.g. a pod's ``TRACEPARENT``), else a new root;
    under it the request's send span and the wait for the reply."""
    loaded = manifest if isinstance(manifest, Manifest) else load_manifest(manifest)  # fail fast
    attributes = {"schemaheal.service": loaded.service, "schemaheal.database": loaded.database}
    with _tracer.start_as_current_span(
        "ensure_schema", context=_parent(trace_headers), attributes=attributes
    ) as span:
        reply = await _request(
            loaded,
            bootstrap_servers=bootstrap_servers,
            instance=instance,
            timeout_s=timeout_s,
            trace_headers=trace_headers,
            options={**(kafka_auth or KafkaAuth()).aiokafka_options(), **(kafka_options or {})},
            fetch_max_wait_ms=fetch_max_wait_ms,
            signer=(signing_key, key_id or "default") if signing_key is not None else None,
        )
        span.set_attribute("schemaheal.outcome", reply.outcome)
        if not reply.may_start:
            span.set_status(Status(StatusCode.ERROR, f"the worker answered {reply.outcome}"))
        return reply


def _parent(trace_headers: Mapping[str, str] | None) -> Context | None:
    """The context ``trace_headers`` carries, when they carry one; else None (the current)."""
    if not trace_headers:
        return None
    context = propagate.extract(dict(trace_headers))
    return context if trace.get_current_span(context).get_span_context().is_valid else None


async def _request(
    loaded: Manifest,
    *,
    bootstrap_servers: str,
    instance: str | None,
    timeout_s: float,
    trace_headers: Mapping[str, str] | None,
    options: dict[str, Any],
    fetch_max_wait_ms: int,
    signer: tuple[Ed25519PrivateKey, str] | None,
) -> SchemaHealed:
    request_id = str(uuid.uuid4())
    body = ServiceStarting(
        service=loaded.service,
        instance=instance or socket.gethostname(),
        database=loaded.database,
        manifest=loaded.model_dump(mode="json", by_alias=True),
    )
    replies = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        # Kafka answers a fetch as soon as data arrives; some brokers (Tansu) wait this out
        # every time, so it bounds the reply latency there.
        fetch_max_wait_ms=fetch_max_wait_ms,
        **_consumer(options),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False, **options
    )
    try:
        await asyncio.gather(replies.start(), producer.start())
    except KafkaError as exc:
        await asyncio.gather(replies.stop(), producer.stop())
        why = await connection_problem(bootstrap_servers, options)
        raise BrokerUnavailable(
            f"cannot use Kafka ({options.get('security_protocol', 'PLAINTEXT')}): {why or exc}"
        ) from None
    try:
        reader = await _position_at_end(replies, loaded.database.encode("utf-8"))
        attributes = {"messaging.system": "kafka", "messaging.message.id": request_id,
                      "messaging.kafka.message.key": loaded.database}  # fmt: skip
        with _tracer.start_as_current_span(
            f"send {REQUEST_TOPIC}", kind=SpanKind.PRODUCER,
            attributes={**attributes, "messaging.operation.name": "send",
                        "messaging.operation.type": "send",
                        "messaging.destination.name": REQUEST_TOPIC},
        ):  # fmt: skip
            carrier: dict[str, str] = {**(trace_headers or {})}  # kept when tracing is off
            propagate.inject(carrier)  # the boot's trace → the worker
            value = body.model_dump_json().encode("utf-8")
            headers = event_headers(
                event_type=REQUEST_TYPE,
                source=service_source(loaded.service, body.instance),
                subject=loaded.database,
                event_id=request_id,
                extra={"correlation_id": request_id, **carrier},
            )
            key = loaded.database.encode("utf-8")
            if signer is not None:  # over the exact headers, key and bytes sent
                headers += sign(signer[0], signer[1], headers, key, value)
            await producer.send_and_wait(REQUEST_TOPIC, value, key=key, headers=headers)
        return await _receive(reader, request_id, timeout_s, attributes)
    except TimeoutError:
        raise BootGateTimeout(
            f"no {REPLY_TOPIC} reply to request {request_id} within {timeout_s:.0f} s: is the "
            f"schemaheal worker running and consuming {REQUEST_TOPIC}?"
        ) from None
    finally:
        await asyncio.gather(replies.stop(), producer.stop())


async def _receive(
    reader: _ReplyReader, request_id: str, timeout_s: float, attributes: dict[str, str]
) -> SchemaHealed:
    """Wait for the reply to ``request_id`` in a ``receive`` span linked to its sender."""
    with _tracer.start_as_current_span(
        f"receive {REPLY_TOPIC}", kind=SpanKind.CONSUMER,
        attributes={**attributes, "messaging.operation.name": "receive",
                    "messaging.operation.type": "receive",
                    "messaging.destination.name": REPLY_TOPIC},
    ) as waiting:  # fmt: skip
        try:
            reply, reply_headers = await asyncio.wait_for(_reply_for(reader, request_id), timeout_s)
        except TimeoutError:
            waiting.set_attribute("error.type", "timeout")
            raise
        _link_to_sender(waiting, reply_headers)
        waiting.set_attribute("schemaheal.outcome", reply.outcome)
        return reply


def _link_to_sender(span: trace.Span, reply_headers: Mapping[str, str]) -> None:
    """Link the wait to the worker's ``send schema.healed`` span, whose context the reply
    carries: the reply is a message from that span, not a child of the wait."""
    sender = trace.get_current_span(propagate.extract(dict(reply_headers))).get_span_context()
    if sender.is_valid:
        span.add_link(sender)


def _consumer(options: dict[str, Any]) -> dict[str, Any]:
    """The options a consumer takes too: security, client id, API version."""
    shared = {
        k: v
        for k, v in options.items()
        if k.startswith(("security_", "sasl_", "ssl_")) or k in ("client_id", "api_version")
    }
    return shared


def reply_partition(key: bytes, partitions: int) -> int:
    """The partition of the reply topic a reply keyed ``key`` lands on: the producers'
    default partitioner (murmur2, as the Java client's), which the worker's producer uses."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@dataclass(slots=True)
class _ReplyReader:
    """Where the client reads: only the partition its key hashes to, from the end offsets of
    *every* partition taken before the request went out, so that if the topic's partition count
    changes while it waits it can read them all from there without missing a reply."""

    consumer: AIOKafkaConsumer
    starts: dict[TopicPartition, int]
    mine: TopicPartition
    widened: bool = False
    records_read: int = 0
    checked: float = field(default_factory=time.monotonic)
    unread: dict[TopicPartition, int] = field(default_factory=dict)  # the first offset not read
    holes: dict[TopicPartition, tuple[int, float]] = field(default_factory=dict)  # since when

    def first_unread(self, tp: TopicPartition) -> int:
        return self.unread.get(tp, self.starts.get(tp, 0))


async def _position_at_end(
    consumer: AIOKafkaConsumer, key: bytes, topic: str = REPLY_TOPIC
) -> _ReplyReader:
    """Where to read the reply keyed ``key`` on ``topic``, its end offsets resolved. A consumer
    knows no topic when it starts on some brokers (Apache Kafka): one metadata request, then a
    pause only while the topic is still missing (it is being created)."""
    partitions = consumer.partitions_for_topic(topic)
    for _ in range(50):
        if partitions:
            break
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.sleep(0.1)
    if not partitions:
        raise BootGateTimeout(f"topic {topic} does not exist: start the schemaheal worker")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    # resolved now, before the request goes out: a reply that comes back fast is never missed
    starts = await consumer.end_offsets(tps)
    mine = TopicPartition(topic, reply_partition(key, len(tps)))
    consumer.assign([mine])
    consumer.seek(mine, starts[mine])
    return _ReplyReader(consumer=consumer, starts=starts, mine=mine)


async def _widen_if_repartitioned(reader: _ReplyReader) -> None:
    """Every few seconds of waiting, look at the topic's partitions again; when their number
    changed, the reply may land elsewhere: read every partition from the remembered offsets
    (new partitions from their beginning: they did not exist when the request went out)."""
    if reader.widened or time.monotonic() - reader.checked < REPARTITION_CHECK_S:
        return
    reader.checked = time.monotonic()
    consumer = reader.consumer
    await consumer._client.force_metadata_update()
    partitions = consumer.partitions_for_topic(reader.mine.topic) or set()
    if len(partitions) == len(reader.starts):
        return
    tps = [
        TopicPartition(reader.mine.topic, p) for p in sorted(partitions | {reader.mine.partition})
    ]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, reader.first_unread(tp))
    reader.widened = True


async def _reply_for(reader: _ReplyReader, request_id: str) -> tuple[SchemaHealed, dict[str, str]]:
    """The reply that names ``request_id``, and its headers."""
    while True:
        batches = await reader.consumer.getmany(timeout_ms=1000)
        for tp, records in batches.items():
            await _back_to_first_unread(reader, tp, [r.offset for r in records])
            for record in records:
                reader.records_read += 1
                headers = decode_headers(record.headers)
                if headers.get("correlation_id") != request_id:
                    continue
                if headers.get("ce_type") != REPLY_TYPE:
                    continue
                try:
                    return SchemaHealed.model_validate(json.loads(record.value)), headers
                except (ValueError, TypeError):
                    continue  # not a reply we can read; keep waiting for one we can
        await _widen_if_repartitioned(reader)


async def _back_to_first_unread(
    reader: _ReplyReader, tp: TopicPartition, offsets: list[int]
) -> None:
    """Never move past an offset not read yet. Replies written at once by several workers (a
    rebalance, or a reply topic with fewer partitions than the request topic) can be written out
    of offset order on a broker that hands out offsets before it writes (Tansu): a fetch then
    returns the later batch while the earlier one, perhaps this client's reply, is unwritten.
    Fetch again from the first offset not read, until it is written; after ``HOLE_WAIT_S`` the
    offsets are taken as never written (a failed write, a transaction marker)."""
    unread = reader.first_unread(tp)
    for offset in sorted(offsets):
        if offset > unread:
            break
        unread = max(unread, offset + 1)
    position = await reader.consumer.position(tp)
    hole, since = reader.holes.get(tp, (unread, time.monotonic()))
    if position <= unread or (hole == unread and time.monotonic() - since >= HOLE_WAIT_S):
        reader.unread[tp] = max(unread, position)
        reader.holes.pop(tp, None)
        return
    reader.holes[tp] = (unread, since if hole == unread else time.monotonic())
    reader.unread[tp] = unread
    reader.consumer.seek(tp, unread)
