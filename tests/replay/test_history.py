"""Reading a window of a topic by time, on both broker tiers: exactly the records inside it.
By default every partition is read from offset 0 to the high watermark of the reader's own
fetches, filtering each record by its timestamp; Apache Kafka is also read from its time index
(``replay_trust_offsets``), and with records removed from the start of a partition (retention)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from tests.apache_kafka import ApacheKafka
from tests.kafka import KafkaServer
from tests.replay.builders import HOUR_MS
from worker.replay.history import Window, read_history
from worker.service.app import ensure_topics
from worker.settings import ReplaySettings, WorkerSettings


async def test_a_window_holds_exactly_the_records_inside_it(kafka: KafkaServer) -> None:
    await ensure_topics(WorkerSettings(bootstrap_servers=kafka.bootstrap_servers,
                                       topic_partitions=2))  # fmt: skip
    base = int(time.time() * 1000) // HOUR_MS * HOUR_MS - 10 * HOUR_MS
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers,
                                enable_idempotence=False, linger_ms=200)  # fmt: skip
    await producer.start()
    try:
        sent = [
            await producer.send("service.starting", f"{hour}".encode(), key=key,
                                timestamp_ms=base + hour * HOUR_MS)
            for hour in range(8)
            for key in (b"a", b"b")  # both partitions
        ]  # fmt: skip
        await asyncio.gather(*sent)  # a few batches of several records each
    finally:
        await producer.stop()
    # Apache Kafka is read both ways: from the time index (trusted) and from offset 0
    for trusted in (False, True) if isinstance(kafka, ApacheKafka) else (False,):
        settings = ReplaySettings(bootstrap_servers=kafka.bootstrap_servers,
                                  replay_fetch_max_wait_ms=50, replay_trust_offsets=trusted)  # fmt: skip
        await _read_windows(settings, base)
    if isinstance(kafka, ApacheKafka):
        await _records_removed_by_retention(kafka, base)


async def _read_windows(settings: ReplaySettings, base: int) -> None:
    seen: list[tuple[int, int]] = []
    history = await read_history(
        settings,
        {"service.starting": Window(base + 2 * HOUR_MS, base + 5 * HOUR_MS)},
        progress=lambda done, total: seen.append((done, total)),
    )
    assert sorted(int(r.value or b"") for r in history.records) == [2, 2, 3, 3, 4, 4]
    assert all(base + 2 * HOUR_MS <= r.timestamp_ms < base + 5 * HOUR_MS for r in history.records)
    assert history.gaps == ()
    assert seen and seen[-1][0] == seen[-1][1]  # the progress reached its total
    empty = await read_history(settings, {"service.starting": Window(base - HOUR_MS, base)})
    assert empty.records == () and empty.gaps == ()
    missing = await read_history(settings, {"no.such.topic": Window(base, base + HOUR_MS)})
    assert missing.records == () and missing.gaps == ()


async def _records_removed_by_retention(kafka: KafkaServer, base: int) -> None:
    """Offsets the broker removed are out of range: the reader starts where the log starts now,
    with no gap to report (those records are gone for everyone)."""
    settings = ReplaySettings(bootstrap_servers=kafka.bootstrap_servers,
                              replay_fetch_max_wait_ms=50, replay_gap_wait_s=60)  # fmt: skip
    everything = {"service.starting": Window(base, base + 9 * HOUR_MS)}
    before = [(r.partition, r.offset) for r in (await read_history(settings, everything)).records]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition("service.starting", 0): RecordsToDelete(3)})
    finally:
        await admin.close()
    history = await read_history(settings, everything)
    assert history.gaps == ()
    assert len(before) == 16 and (0, 0) in before
    kept = [(p, o) for p, o in before if (p, o) >= (0, 3)]
    assert [(r.partition, r.offset) for r in history.records] == kept
