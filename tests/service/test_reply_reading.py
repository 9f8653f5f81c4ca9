"""The boot client reads only the reply partition its key hashes to, and widens when the topic's
partitions change while it waits (a real broker; replies written by a plain producer whose
default partitioner is the worker's); it never moves past a reply written late (the fake
consumer of the replay tests, which answers as the embedded broker does)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import client
from contracts.events import REPLY_TOPIC, REPLY_TYPE, SchemaHealed, event_headers
from tests.kafka import KafkaServer
from tests.replay.tansu_fake import Batch, FakeLog, TansuLikeConsumer


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


def _reply_batch(offset: int, request_id: str) -> Batch:
    headers = event_headers(event_type=REPLY_TYPE, source="/test", subject=request_id,
                            extra={"correlation_id": request_id})  # fmt: skip
    return Batch(base=offset, timestamps=(offset,), values=(reply(request_id, "nexus"),),
                 headers=(tuple(headers),))  # fmt: skip


async def test_a_client_does_not_jump_over_its_reply_written_late() -> None:
    """Several workers write replies to one partition (a rebalance, or a reply topic with
    fewer partitions than the request topic): on the embedded broker their batches can be
    written out of offset order, and a fetch then returns the later batch while the earlier is
    unwritten. The client before this fix moved past its own reply at offset 11 (batch 12 was
    written first) and waited until its timeout; now it fetches again from the first offset it
    has not read. (The fake consumer answers as Tansu does; one batch is written per call.)"""
    tp = TopicPartition(REPLY_TOPIC, 0)
    batches = [_reply_batch(o, f"earlier-{o}") for o in range(10)]
    batches += [
        _reply_batch(10, "other-10"),
        _reply_batch(11, "mine"),
        _reply_batch(12, "other-12"),
    ]
    log = FakeLog(tp=tp, batches=batches, order=[*range(10), 10, 12, 11], clock_ms=0)
    for _ in range(10):
        log.tick()  # written before the client positioned
    consumer = TansuLikeConsumer(logs={tp: log})
    consumer.assign([tp])
    consumer.seek(tp, 10)
    reader = client._ReplyReader(consumer=consumer, starts={tp: 10}, mine=tp)  # type: ignore[arg-type]
    found, _ = await asyncio.wait_for(client._reply_for(reader, "mine"), 5)
    assert found.request_id == "mine"


async def test_a_client_gives_up_on_offsets_never_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offset 11 is never written (a failed write): the client fetches again from it for
    ``HOLE_WAIT_S``, reading what follows meanwhile, then takes it as lost and reads on."""
    monkeypatch.setattr(client, "HOLE_WAIT_S", 0.05)
    tp = TopicPartition(REPLY_TOPIC, 0)
    batches = [_reply_batch(10, "other-10"), _reply_batch(11, "never-written"),
               _reply_batch(12, "other-12"), _reply_batch(13, "mine")]  # fmt: skip
    log = FakeLog(tp=tp, batches=batches, order=[0, 2], clock_ms=0)
    consumer = TansuLikeConsumer(logs={tp: log})
    consumer.assign([tp])
    consumer.seek(tp, 10)
    reader = client._ReplyReader(consumer=consumer, starts={tp: 10}, mine=tp)  # type: ignore[arg-type]

    async def read_past_the_hole() -> None:
        while reader.first_unread(tp) < 13:
            got = await consumer.getmany()
            await client._back_to_first_unread(reader, tp, [r.offset for r in got.get(tp, [])])

    await asyncio.wait_for(read_past_the_hole(), 5)
    log.order = [0, 2, 3]  # the reply is written now
    found, _ = await asyncio.wait_for(client._reply_for(reader, "mine"), 5)
    assert found.request_id == "mine"
    assert reader.first_unread(tp) == 14


class NewConsumer:
    """A consumer just started on Apache Kafka: it knows no topic until a metadata request
    (``missing`` more of them return without the topic: it is being created)."""

    def __init__(self, missing: int = 0) -> None:
        self.missing, self.known, self._client = missing, False, self
        self.assigned: list[TopicPartition] = []

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return {0, 1, 2} if self.known else None

    async def force_metadata_update(self) -> bool:
        self.known, self.missing = self.missing == 0, self.missing - 1
        return True

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 7)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = tps

    def seek(self, tp: TopicPartition, offset: int) -> None:
        assert (tp, offset) == (self.assigned[0], 7)


@pytest.mark.parametrize("missing", [0, 2])
async def test_a_client_pauses_only_while_its_topic_is_missing(
    monkeypatch: pytest.MonkeyPatch, missing: int
) -> None:
    """The client paused 100 ms after the metadata request that found the reply topic: every
    boot on Apache Kafka (where a new consumer knows no topic) took 100 ms more."""
    pauses: list[float] = []

    async def pause(delay: float) -> None:
        pauses.append(delay)

    monkeypatch.setattr(client.asyncio, "sleep", pause)
    consumer = NewConsumer(missing)
    reader = await client._position_at_end(consumer, b"nexus")  # type: ignore[arg-type]
    assert reader.mine == TopicPartition(REPLY_TOPIC, client.reply_partition(b"nexus", 3))
    assert pauses == [0.1] * missing
