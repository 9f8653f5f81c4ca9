"""The boot gate's batches, served straight from FastStream's consume loop.

FastStream hands each polled batch to its per-message pipeline: an exit stack, context scopes,
middlewares, its parser and decoder, fast_depends resolving the handler's arguments in an anyio
task group, a response and the publishers of the handler's return value. The gate uses none of
it: it reads the raw records, answers through its own producer and acknowledges by hand. In a
CPU-clock profile of no-drift boots on Apache Kafka (``bench.boot_gate``) that pipeline was a
third of the worker's Python work outside aiokafka. Here the request subscriber's consume loop
calls the gate's function directly; the subscriber keeps its consumer, its polling, its
graceful shutdown (its lock: an in-flight batch is finished) and the AsyncAPI document.
FastStream's test broker still goes through the pipeline, to the same function.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition

__all__ = ["Batch", "serve_directly"]

log = logging.getLogger("schemaheal.worker")


class Batch:
    """What the gate uses of FastStream's ``KafkaAckableMessage``, with the same meaning:
    ``ack`` commits the consumer's positions once; ``nack`` rewinds each partition of the batch
    to its earliest record, so none is committed past a record not served."""

    def __init__(self, consumer: Any, records: tuple[Any, ...]) -> None:
        self.consumer = consumer
        self.raw_message = records
        self.committed = False

    async def ack(self) -> None:
        if not self.committed:
            await self.consumer.commit()
            self.committed = True

    async def nack(self) -> None:
        if self.committed:
            return
        earliest: dict[TopicPartition, int] = {}
        for record in self.raw_message:
            tp = TopicPartition(record.topic, record.partition)
            earliest[tp] = min(record.offset, earliest.get(tp, record.offset))
        for tp, offset in earliest.items():
            self.consumer.seek(tp, offset)
        self.committed = True


def serve_directly(subscriber: Any, serve: Callable[[Batch], Awaitable[None]]) -> None:
    """Make ``subscriber`` (a FastStream Kafka batch subscriber) give each polled batch to
    ``serve`` instead of its pipeline. Should ``serve`` raise (a commit refused in a rebalance,
    the offset guard's broker call failing), the batch is rewound and the loop goes on: FastStream
    would have logged and dropped it, and its consume loop stops on an exception from here."""

    async def consume_one(records: tuple[Any, ...]) -> None:
        if not subscriber.running:  # stopping: the batch is not committed, it comes back
            return
        with subscriber.lock:  # a graceful shutdown waits for it
            batch = Batch(subscriber.consumer, records)
            try:
                await serve(batch)
            except Exception:
                log.exception("serving a batch of requests failed; it is fetched again")
                await _rewind(batch)

    subscriber.consume_one = consume_one  # the consume loop calls self.consume_one(msg)


async def _rewind(batch: Batch) -> None:
    try:
        await batch.nack()
    except Exception:  # its partitions were taken away: their new owner reads them again
        log.exception("rewinding a batch failed; the group's committed offsets stand")
