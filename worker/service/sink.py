"""Replies and dead letters: one aiokafka producer publishes both, so the original records'
headers are copied byte for byte, and a batch is acknowledged only once the broker confirmed
every record sent for it (:meth:`KafkaSink.flush`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordListTooLargeError
from opentelemetry.trace import SpanKind

from contracts.events import REPLY_TYPE, SchemaHealed, event_headers
from worker.errors import KafkaUnavailable
from worker.observability.tracing import headers_from_context, messaging_attributes, tracer
from worker.service.replies import dead_letter
from worker.service.requests import TRACE_HEADERS, Rejection
from worker.service.routing import Destination, Route, refused_headers
from worker.service.topics import record_limit
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.worker")
METADATA_WAIT_S = 10.0  # for a reply topic a request names
SMALL_DEAD_LETTER = 512 * 1024  # fits a topic left at a broker's default (1 MB)
TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)


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
