"""Replies by the requester's convention on a real broker: where they may go, and where not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from contracts.events import REQUEST_TYPE, decode_headers, event_headers
from tests.conftest import BROKERS, FreshDatabase
from tests.interop.helpers import create_topic, records_in
from tests.kafka import KafkaServer, serving
from tests.service.conftest import produce, read_topic, running_worker, worker_settings
from tests.service.records import request_body


def request_headers(request_id: str, **extra: bytes) -> list[tuple[str, bytes | None]]:
    headers = event_headers(
        event_type=REQUEST_TYPE,
        source="/services/orchestrator/pod-a",
        subject="nexus",
        event_id=request_id,
    )
    return [*headers, *extra.items()]


async def test_a_reply_topic_the_operator_did_not_allow_gets_nothing_and_the_request_is_rejected(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    """Not even FastStream's own automatic reply (it answers any reply_to) reaches the topic."""
    await create_topic(kafka, "orders", 1)
    async with running_worker(worker_settings(kafka, database)):
        headers = request_headers("r-refused", correlation_id=b"mine", reply_to=b"orders")
        await produce(kafka, "service.starting", json.dumps(request_body()).encode(), headers)
        [reply] = await read_topic(kafka, "schema.healed", 1)
        [dead] = await read_topic(kafka, "service.starting.dlq", 1)
    answer, reply_headers = json.loads(reply.value), decode_headers(reply.headers)
    assert (answer["outcome"], answer["error"]["code"]) == ("rejected", "reply-refused")
    assert "--allowed-reply-topics" in answer["error"]["message"]
    assert reply_headers["correlation_id"] == "mine"
    assert "'orders' is not allowed" in reply_headers["x-schemaheal-reply-refused"]
    assert decode_headers(dead.headers)["x-schemaheal-error-code"] == "reply-refused"
    assert await records_in(kafka, "orders") == 0
    assert await database.fetch("SELECT 1 FROM pg_namespace WHERE nspname = 'schemaheal'") == []


async def test_a_partition_the_reply_topic_lacks_is_answered_on_the_standard_topic_saying_why(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await create_topic(kafka, "spring.replies", 1)
    settings = worker_settings(kafka, database, allowed_reply_topics="spring.replies")
    async with running_worker(settings):
        headers = request_headers(
            "r-partition", kafka_replyTopic=b"spring.replies",
            kafka_replyPartition=(7).to_bytes(4, "big"), kafka_correlationId=b"\x00\xff\x10",
        )  # fmt: skip
        await produce(kafka, "service.starting", json.dumps(request_body()).encode(), headers)
        [reply] = await read_topic(kafka, "schema.healed", 1)
    assert json.loads(reply.value)["outcome"] == "healed"
    assert dict(reply.headers)["kafka_correlationId"] == b"\x00\xff\x10"
    refused = decode_headers(reply.headers)["x-schemaheal-reply-refused"]
    assert refused == "reply topic spring.replies has no partition 7"
    assert await records_in(kafka, "spring.replies") == 0


@pytest.fixture(params=[b for b in BROKERS if b != "tansu"])
def strict_broker(request: pytest.FixtureRequest) -> Iterator[KafkaServer]:
    """A broker that does not create a topic when a client asks for its metadata (Tansu does)."""
    yield from serving(request.param)


async def test_an_allowed_reply_topic_that_does_not_exist_is_answered_on_the_standard_topic(
    strict_broker: KafkaServer, database: FreshDatabase
) -> None:
    kafka = strict_broker
    settings = worker_settings(kafka, database, allowed_reply_topics="nobody.made.this")
    async with running_worker(settings):
        headers = request_headers("r-missing", correlation_id=b"mine", reply_to=b"nobody.made.this")
        await produce(kafka, "service.starting", json.dumps(request_body()).encode(), headers)
        [reply] = await read_topic(kafka, "schema.healed", 1, timeout_s=60)
    assert json.loads(reply.value)["outcome"] == "healed"
    refused = decode_headers(reply.headers)["x-schemaheal-reply-refused"]
    assert refused.startswith("reply topic nobody.made.this does not exist")
