"""The request subscriber's batches reach the gate without FastStream's per-message pipeline
(``worker.service.direct``), acknowledged and rewound as FastStream's message would be. That
real boots skip it: ``test_arguments``."""

from __future__ import annotations

import inspect
from contextlib import nullcontext

from aiokafka import TopicPartition

from worker.service.app import build_app
from worker.service.direct import Batch, serve_directly
from worker.settings import WorkerSettings


class Record:
    def __init__(self, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = "service.starting", partition, offset


class Consumer:
    def __init__(self) -> None:
        self.commits = 0
        self.seeks: dict[TopicPartition, int] = {}

    async def commit(self) -> None:
        self.commits += 1

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset


BATCH = (Record(0, 7), Record(2, 3), Record(0, 5), Record(2, 4))


async def test_ack_commits_once() -> None:
    consumer = Consumer()
    batch = Batch(consumer, BATCH)
    await batch.ack()
    await batch.ack()
    await batch.nack()  # settled already: no rewind
    assert (consumer.commits, consumer.seeks) == (1, {})


async def test_nack_rewinds_each_partition_to_its_earliest_record_and_commits_nothing() -> None:
    consumer = Consumer()
    batch = Batch(consumer, BATCH)
    await batch.nack()
    await batch.ack()  # settled already
    assert consumer.commits == 0
    assert consumer.seeks == {
        TopicPartition("service.starting", 0): 5,
        TopicPartition("service.starting", 2): 3,
    }


def test_faststream_still_calls_consume_one_and_the_request_subscriber_is_replaced() -> None:
    """If FastStream stops calling ``self.consume_one`` the override would silently do nothing
    (the pipeline would serve instead: correct, only slower)."""
    _, broker = build_app(WorkerSettings(bootstrap_servers="127.0.0.1:9", health_port=0))
    replaced = {s.topics[0].name: "consume_one" in vars(s) for s in broker.subscribers}  # type: ignore[attr-defined]
    assert replaced == {"service.starting": True, "service.heartbeat": False}
    for subscriber in broker.subscribers:
        assert "self.consume_one(msg)" in inspect.getsource(type(subscriber)._run_consume_loop)  # type: ignore[attr-defined]


class Subscriber:
    def __init__(self) -> None:
        self.running, self.lock, self.consumer = True, nullcontext(), Consumer()


async def test_a_batch_whose_serving_raises_is_rewound_and_the_loop_goes_on() -> None:
    """FastStream's consume loop ends on an exception from ``consume_one``: nothing would be
    served after it. A commit refused in a rebalance raises from ``ack``, for example."""
    subscriber, served = Subscriber(), []

    async def serve(batch: Batch) -> None:
        served.append(batch.raw_message)
        raise RuntimeError("commit refused")

    serve_directly(subscriber, serve)
    await subscriber.consume_one(BATCH)  # type: ignore[attr-defined]
    assert served == [BATCH]
    assert subscriber.consumer.seeks == {
        TopicPartition("service.starting", 0): 5,
        TopicPartition("service.starting", 2): 3,
    }


async def test_a_stopping_subscriber_serves_nothing() -> None:
    subscriber, served = Subscriber(), []
    subscriber.running = False

    async def serve(batch: Batch) -> None:
        served.append(batch)

    serve_directly(subscriber, serve)
    await subscriber.consume_one(BATCH)  # type: ignore[attr-defined]
    assert served == []
