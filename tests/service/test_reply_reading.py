"""The boot client reads only the reply partition its key hashes to, and widens when the topic's
partitions change while it waits (a real broker; replies written by a plain producer whose
default partitioner is the worker's)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import client
from contracts.events import REPLY_TOPIC, REPLY_TYPE, SchemaHealed, event_headers
from tests.kafka import KafkaServer


def key_on(partition: int, partitions: int, avoid: bytes = b"") -> bytes:
    """A database alias whose replies land on ``partition``."""
    for i in range(10_000):
        key = f"db{i}".encode()
        if key != avoid and client.reply_partition(key, partitions) == partition:
            return key
    raise AssertionError("no key found")


def reply(request_id: str, database: str) -> bytes:
    return SchemaHealed(request_id=request_id, outcome="unchanged", service="s", instance="i",
                        database=database, manifest_hash="0" * 64).model_dump_json().encode()  # fmt: skip


async def send(producer: AIOKafkaProducer, key: bytes, request_id: str) -> None:
    headers = event_headers(event_type=REPLY_TYPE, source="/test", subject=request_id,
                            extra={"correlation_id": request_id})  # fmt: skip
    await producer.send_and_wait(REPLY_TOPIC, reply(request_id, key.decode()), key=key,
                                 headers=headers)  # fmt: skip


async def topic(bootstrap: str, partitions: int) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(REPLY_TOPIC, partitions, 1)])
    return admin


async def test_a_client_reads_only_the_replies_of_its_partition(kafka: KafkaServer) -> None:
    admin = await topic(kafka.bootstrap_servers, 3)
    await admin.close()
    mine = key_on(1, 3)
    others = [key_on(0, 3), key_on(2, 3)]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await asyncio.gather(consumer.start(), producer.start())
    try:
        await send(producer, mine, "before")  # written before the client positioned: not read
        reader = await client._position_at_end(consumer, mine)
        assert reader.mine.partition == 1
        for i in range(20):
            await send(producer, others[i % 2], f"other-{i}")
        await send(producer, key_on(1, 3, avoid=mine), "same-partition")
        request_id = str(uuid.uuid4())
        await send(producer, mine, request_id)
        found, _ = await asyncio.wait_for(client._reply_for(reader, request_id), 30)
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    assert found.request_id == request_id
    assert reader.records_read == 2  # the other database's reply on its partition, and its own


async def test_a_client_still_finds_its_reply_when_the_partitions_change(
    kafka: KafkaServer,
) -> None:
    """The client positioned when the topic had one partition (its offsets say so); the topic
    now has two and the reply lands on the other one: it widens and finds it. (Simulated by the
    remembered offsets: Tansu cannot add partitions to a topic.)"""
    admin = await topic(kafka.bootstrap_servers, 2)
    await admin.close()
    key = key_on(1, 2)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await asyncio.gather(consumer.start(), producer.start())
    try:
        await client._position_at_end(consumer, key)  # metadata and offsets, then narrow:
        first = TopicPartition(REPLY_TOPIC, 0)
        starts = await consumer.end_offsets([first])
        consumer.assign([first])
        consumer.seek(first, starts[first])
        reader = client._ReplyReader(consumer=consumer, starts=starts, mine=first)
        request_id = str(uuid.uuid4())
        await send(producer, key, request_id)  # on partition 1, which "did not exist"
        found, _ = await asyncio.wait_for(client._reply_for(reader, request_id), 60)
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())
    assert found.request_id == request_id
    assert reader.widened
