"""The worker's offset guard against every order in which three concurrent batches can be
written, on the fake consumer that answers like the embedded broker. Without the guard, a
consumer that fetches while batch 0 is unwritten and batch 5 is written jumps to 10 and never
serves batch 0 (the skip the experiment in test_embedded_skips.py measures on real Tansu)."""

from __future__ import annotations

import itertools

import pytest
from aiokafka import TopicPartition

from tests.replay.tansu_fake import Batch, FakeLog, TansuLikeConsumer
from worker.service.offsets import OffsetGuard

TP = TopicPartition("service.starting", 0)
ORDERS = list(itertools.permutations(range(3)))


def _consumer(order: tuple[int, ...]) -> TansuLikeConsumer:
    batches = [Batch(base=5 * i, timestamps=(1,) * 5) for i in range(3)]
    log = FakeLog(tp=TP, batches=batches, order=order, clock_ms=0)
    # each fetch lets one more batch be written first: the first fetch sees only order[0]
    consumer = TansuLikeConsumer(logs={TP: log})
    consumer.assign([TP])
    return consumer


async def _serve(consumer: TansuLikeConsumer, guard: OffsetGuard | None) -> list[int]:
    """The worker's loop: a batch, the records it may serve, then a commit if it served any."""
    served: list[int] = []
    for _ in range(12):
        batches = await consumer.getmany(TP)
        records = tuple(r for batch in batches.values() for r in batch)
        if guard is not None:
            records = await guard.admit(consumer, records)
        served += [r.offset for r in records]
        if records:
            await consumer.commit()
    return served


@pytest.mark.parametrize("order", ORDERS, ids=["".join(map(str, o)) for o in ORDERS])
async def test_the_guard_serves_every_request_once_in_order(order: tuple[int, ...]) -> None:
    consumer = _consumer(order)
    assert await _serve(consumer, OffsetGuard(gap_wait_s=60)) == list(range(15))
    assert consumer.commits[TP] == 15


@pytest.mark.parametrize("order", [(1, 0, 2), (2, 1, 0)], ids=["102", "210"])
async def test_without_the_guard_batch_0_is_skipped(order: tuple[int, ...]) -> None:
    served = await _serve(_consumer(order), None)
    assert 0 not in served  # what the guard exists for


async def test_a_batch_never_written_is_served_past_after_the_wait() -> None:
    batches = [Batch(base=5 * i, timestamps=(1,) * 5) for i in range(3)]
    log = FakeLog(tp=TP, batches=batches, order=(1, 2), clock_ms=0)  # batch 0 never written
    consumer = TansuLikeConsumer(logs={TP: log})
    consumer.assign([TP])
    served: list[int] = []
    guard = OffsetGuard(gap_wait_s=0.001)
    for _ in range(200):
        records = await guard.admit(
            consumer, [r for b in (await consumer.getmany(TP)).values() for r in b]
        )
        served += [r.offset for r in records]
        if records:
            await consumer.commit()
        if len(served) == 10:
            break
    assert served == list(range(5, 15))
