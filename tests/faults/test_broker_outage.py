"""A reply is confirmed only when the broker acknowledged it (issue 14: the send was never
awaited and ``flush()`` did not raise, so a reply lost in a broker outage was committed past)."""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.events import SchemaHealed
from tests.kafka import KafkaServer, start_kafka
from tests.service.conftest import read_topic
from tests.service.records import request_record
from worker.errors import KafkaUnavailable
from worker.service.app import KafkaSink, ensure_topics
from worker.service.requests import Rejection
from worker.service.routing import Destination, Route
from worker.settings import WorkerSettings


def standard_route(settings: WorkerSettings) -> Route:
    """The reply to a request that names no destination of its own."""
    return Route(destinations=(Destination(topic=settings.reply_topic),), correlation=())


async def test_a_reply_the_broker_never_acknowledged_fails_the_flush() -> None:
    broker = start_kafka("tansu")
    settings = WorkerSettings(bootstrap_servers=broker.bootstrap_servers)
    sink = KafkaSink(settings, request_timeout_ms=2000)
    try:
        await ensure_topics(settings)
        await sink.start()
        reply = SchemaHealed(request_id="r1", outcome="healed")
        await sink.reply(reply, {}, b"nexus", standard_route(settings))
        record = request_record(raw=b"x" * (5 * 1024 * 1024))  # over the client's 1 MiB default
        await sink.dead_letter(Rejection(code="not-json", message="m", record=record, headers={}))
        await sink.flush()  # both acknowledged
        broker.stop()
        r2 = SchemaHealed(request_id="r2", outcome="healed")
        await sink.reply(r2, {}, b"nexus", standard_route(settings))
        with pytest.raises(KafkaUnavailable, match="not acknowledged"):
            await sink.flush()
    finally:
        await sink.stop()
        broker.stop()


async def test_a_dead_letter_topic_with_a_smaller_limit_gets_the_record_cut_to_fit(
    kafka: KafkaServer,
) -> None:
    """Topics made by someone else, left at the broker's default limit (1 MB): the 5 MB dead
    letter it refuses is sent again cut to fit, so it never holds the batch back."""
    settings = WorkerSettings(bootstrap_servers=kafka.bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        config = {"max.message.bytes": str(1024 * 1024)}
        await admin.create_topics(
            [NewTopic(settings.dead_letter_topic, 1, 1, topic_configs=config)]
        )
    finally:
        await admin.close()
    await ensure_topics(settings)
    sink = KafkaSink(settings, request_timeout_ms=5000)
    value = b"x" * (5 * 1024 * 1024)
    await sink.start()
    try:
        record = request_record(raw=value)
        record.offset = 42
        await sink.dead_letter(Rejection(code="too-large", message="m", record=record, headers={}))
        await sink.flush()
    finally:
        await sink.stop()
    [letter] = await read_topic(kafka, settings.dead_letter_topic, 1)
    headers = dict(letter.headers)
    assert headers["x-schemaheal-original-offset"] == b"42"
    if "x-schemaheal-truncated" in headers:  # Apache Kafka enforces the topic's limit
        assert letter.value == value[: len(letter.value)] and len(letter.value) < 1024 * 1024
    else:  # Tansu does not
        assert letter.value == value
