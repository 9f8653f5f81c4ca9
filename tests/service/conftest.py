"""A real Kafka-protocol broker per test (Tansu: starts in milliseconds, memory only) and the
worker running in-process against it and a fresh database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from worker.embedded.broker import LocalBroker
from worker.service.app import build_app
from worker.settings import WorkerSettings


def worker_settings(kafka: KafkaServer, database: FreshDatabase, **extra: Any) -> WorkerSettings:
    """Small timeouts so group joins and fetches are quick on Tansu and on Apache Kafka."""
    values: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "databases": {"nexus": database.dsn},
        "session_timeout_ms": 6000,
        "heartbeat_interval_ms": 1000,
        "fetch_max_wait_ms": 50,
        "topic_partitions": 3,
        "max_heal_s": 60,
        "health_port": 0,
        "offset_guard": isinstance(kafka, LocalBroker),  # as `schemaheal dev` runs on Tansu
        **extra,
    }
    return WorkerSettings(**values)


@asynccontextmanager
async def running_worker(settings: WorkerSettings) -> AsyncIterator[None]:
    app, _ = build_app(settings)
    await app.start()
    try:
        yield
    finally:
        await app.stop()


async def produce(
    kafka: KafkaServer,
    topic: str,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
    key: bytes = b"nexus",
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(
    kafka: KafkaServer, topic: str, count: int, timeout_s: float = 30
) -> list[Any]:
    """The first ``count`` records of ``topic`` (from the beginning)."""
    return await read_until(kafka, topic, lambda records: len(records) >= count, timeout_s)


async def read_until(
    kafka: KafkaServer, topic: str, done: Callable[[list[Any]], bool], timeout_s: float = 30
) -> list[Any]:
    """Every record of ``topic`` from the beginning, once ``done(records)`` holds."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=50, group_id=None)  # fmt: skip
    await consumer.start()
    records: list[Any] = []
    try:

        async def collect() -> None:
            while not done(records):
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)

        await asyncio.wait_for(collect(), timeout_s)
    finally:
        await consumer.stop()
    return records
