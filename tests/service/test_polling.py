"""The worker polls its request topic again at once after an empty poll (FastStream would nap)."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from worker.service import consuming, polling
from worker.service.app import build_app
from worker.settings import WorkerSettings

REAL_SLEEP = asyncio.sleep  # the fake consumer's wait, not counted among polling's naps


class Consumer:
    """Just ``getmany``: hands out the batches given, waiting ``wait_s`` when it has none."""

    def __init__(self, batches: list[dict[str, list[int]]], wait_s: float) -> None:
        self.batches, self.wait_s = batches, wait_s
        self.asked: list[tuple[int, int | None]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int | None) -> dict[str, list[int]]:
        self.asked.append((timeout_ms, max_records))
        if self.batches:
            return self.batches.pop(0)
        await REAL_SLEEP(self.wait_s)
        return {}


class Subscriber:
    batch_timeout_ms = 50
    max_records = 7

    async def get_msg(self, consumer: Any) -> tuple[Any, ...]:
        raise AssertionError("replaced")


def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds ``polling`` asks to sleep (the sleeps still happen)."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await REAL_SLEEP(seconds)

    monkeypatch.setattr(polling.asyncio, "sleep", sleep)
    return asked


async def test_records_of_every_partition_come_as_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscriber, slept = Subscriber(), naps(monkeypatch)
    polling.poll_without_idle_sleep(subscriber)
    consumer = Consumer([{"p0": [1, 2], "p1": [3]}], wait_s=0.05)
    assert await subscriber.get_msg(consumer) == (1, 2, 3)
    assert consumer.asked == [(50, 7)]
    assert slept == []


async def test_an_empty_poll_that_waited_is_followed_by_the_next_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscriber, slept = Subscriber(), naps(monkeypatch)
    polling.poll_without_idle_sleep(subscriber)
    assert await subscriber.get_msg(Consumer([], wait_s=0.05)) == ()
    assert slept == [0.0] or slept[0] < 0.002  # FastStream would sleep 50 ms more here


async def test_an_empty_poll_that_did_not_wait_sleeps_the_rest_so_nothing_spins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscriber, slept = Subscriber(), naps(monkeypatch)
    polling.poll_without_idle_sleep(subscriber)
    assert await subscriber.get_msg(Consumer([], wait_s=0)) == ()
    assert len(slept) == 1 and slept[0] > 0.025


def test_the_worker_subscriber_uses_it_and_faststream_still_calls_get_msg() -> None:
    """If FastStream stops calling ``self.get_msg`` the override would silently do nothing."""
    _, broker = build_app(WorkerSettings(bootstrap_servers="127.0.0.1:9", health_port=0))
    subscribers = list(broker.subscribers)  # the boot gate's and the heartbeats'
    assert len(subscribers) == 2
    for subscriber in subscribers:
        assert "get_msg" in vars(subscriber)
        assert "self.get_msg(consumer)" in inspect.getsource(type(subscriber)._run_consume_loop)
        assert type(subscriber).__name__ == "BatchSubscriber"


@pytest.mark.parametrize(
    ("request_wait_ms", "heartbeat_wait_ms"), [(10, 100), (100, 100), (250, 250)]
)
def test_the_heartbeat_topic_is_polled_no_more_often_than_every_100_ms(
    request_wait_ms: int, heartbeat_wait_ms: int
) -> None:
    """Nobody waits for a heartbeat: a short request wait (the bench's 10 ms) is not applied to
    the heartbeat topic, whose polls would cost the worker and broker as much as the requests'."""
    _, broker = build_app(WorkerSettings(fetch_max_wait_ms=request_wait_ms))
    waits = {s.topics[0].name: s.batch_timeout_ms for s in broker.subscribers}
    assert waits == {"service.starting": request_wait_ms, "service.heartbeat": heartbeat_wait_ms}
    options = consuming.heartbeat_consumer(WorkerSettings(fetch_max_wait_ms=request_wait_ms))
    assert (options["fetch_max_wait_ms"], options["group_id"]) == (
        heartbeat_wait_ms,
        "schemaheal.heartbeats",
    )
