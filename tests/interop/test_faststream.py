"""FastStream's own request/reply over Kafka, against the gate on a real broker.

FastStream 0.7's ``KafkaBroker.request()`` needs its test client (on a real broker it raises
FeatureNotSupportedException), so a FastStream service does RPC the way its maintainers show:
``publish(..., correlation_id=..., reply_to=...)`` and a subscriber on the reply topic that
resolves the future waiting under the reply's ``message.correlation_id``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from contracts.events import decode_headers
from tests.conftest import FreshDatabase
from tests.interop.helpers import (
    assert_healed,
    binary_mode_headers,
    create_topic,
    drifted,
    records_in,
    request_body,
)
from tests.kafka import KafkaServer
from tests.service.conftest import read_topic, running_worker, worker_settings

REPLIES = "faststream.replies"


async def test_faststream_publisher_with_correlation_id_and_reply_to_gets_its_reply(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await drifted(database)
    await create_topic(kafka, REPLIES, 1)
    settings = worker_settings(kafka, database, allowed_reply_topics=REPLIES)
    client = KafkaBroker(kafka.bootstrap_servers)
    waiting: dict[str, asyncio.Future[KafkaMessage]] = {}

    @client.subscriber(REPLIES, auto_offset_reset="earliest")
    async def on_reply(body: dict[str, Any], message: KafkaMessage) -> None:
        future = waiting.get(message.correlation_id)
        if future is not None and not future.done():
            future.set_result(message)

    request_id, correlation = str(uuid.uuid4()), f"faststream-{uuid.uuid4()}"
    waiting[correlation] = asyncio.get_running_loop().create_future()
    async with running_worker(settings), client:
        await client.start()
        await client.publish(
            request_body("faststream-pod"),
            "service.starting",
            key=b"nexus",
            headers=binary_mode_headers(request_id, "faststream-pod"),
            correlation_id=correlation,
            reply_to=REPLIES,
        )
        reply = await asyncio.wait_for(waiting[correlation], 60)
    body = json.loads(reply.body)
    assert (body["request_id"], body["outcome"]) == (request_id, "healed")
    assert reply.correlation_id == correlation  # its own id, not the ce_id
    assert reply.headers["ce_subject"] == request_id
    await assert_healed(database, request_id)
    [copy] = await read_topic(kafka, "schema.healed", 1)  # the record of every answer
    assert decode_headers(copy.headers)["correlation_id"] == correlation
    assert await records_in(kafka, REPLIES) == 1  # no stray automatic reply beside it
