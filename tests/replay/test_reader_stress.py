"""The reader on the real embedded broker, with concurrent producers: every record, every round.

Tansu hands out a batch's offsets before it writes the batch, so producers at once can get their
batches written out of offset order (measured: 1 to 3 rounds in 100 with eight producers), and
its offset answers follow the write order. Each round, eight producers send a batch each at once
while a reader reads along (what it reads must have no hole), then a reader reads the round's
topic and must find every record. The reader before issue 13 lost offset 0 here."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from worker.embedded.broker import LocalBroker
from worker.replay.history import History, Window, read_history
from worker.settings import ReplaySettings

ROUNDS = 200
PRODUCERS = 8
PER_BATCH = 1
EVERYTHING = Window(0, 2**62)


async def _produce(producers: list[AIOKafkaProducer], topic: str) -> set[bytes]:
    async def batch(i: int, producer: AIOKafkaProducer) -> list[bytes]:
        values = [f"{topic}/{i}/{k}".encode() for k in range(PER_BATCH)]
        sent = [await producer.send(topic, v, partition=0) for v in values]
        await asyncio.gather(*sent)
        return values

    batches = await asyncio.gather(*(batch(i, p) for i, p in enumerate(producers)))
    return {v for values in batches for v in values}


def _offsets(history: History) -> list[int]:
    return [r.offset for r in history.records]


async def test_every_record_with_concurrent_producers_on_the_embedded_broker() -> None:
    with LocalBroker() as broker:
        settings = ReplaySettings(bootstrap_servers=broker.bootstrap_servers,
                                  replay_fetch_max_wait_ms=20, replay_gap_wait_s=60)  # fmt: skip
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        await admin.create_topics([NewTopic(f"stress-{n}", 1, 1) for n in range(ROUNDS)])
        await admin.close()
        producers = [AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers,
                                      enable_idempotence=False, linger_ms=0)
                     for _ in range(PRODUCERS)]  # fmt: skip
        for producer in producers:
            await producer.start()
        missed: list[str] = []
        try:
            for n in range(ROUNDS):
                topic = f"stress-{n}"
                along, sent = await asyncio.gather(
                    read_history(settings, {topic: EVERYTHING}), _produce(producers, topic)
                )
                offsets = _offsets(along)
                assert offsets == list(range(len(offsets))) and along.gaps == (), offsets
                after = await read_history(settings, {topic: EVERYTHING})
                if {r.value for r in after.records} != sent or after.gaps:
                    missed.append(f"{topic}: read {_offsets(after)}, gaps {after.gaps}")
        finally:
            for producer in producers:
                await producer.stop()
    assert missed == [], missed
