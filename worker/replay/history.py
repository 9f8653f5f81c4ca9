"""Reading the gate's topics by time, without disturbing anyone.

Start offsets come from the broker's offset lookup by timestamp; every record is then filtered by
its own timestamp, so the window is exact even when producers' clocks disagree. A broker whose
lookup ignores the timestamp (Tansu answers offset 0, with an older record's time) is read from
the beginning instead: slower, still exact. The reader takes partitions by assignment under its
own group id and never commits: the worker's consumer group and its offsets are never touched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from contracts.events import decode_headers
from worker.errors import ConfigurationError
from worker.settings import ReplaySettings

CLOCK_SKEW_MS = 5 * 60 * 1000
Progress = Callable[[int, int], None]  # (records read so far, records to read)


_UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time(text: str, now_ms: int) -> int:
    """``--since``/``--until``: ISO 8601 (a time without an offset is UTC; a date alone is its
    midnight), ``now``, or an age such as ``90m``, ``12h``, ``7d``, ``2w`` → epoch ms."""
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    unit = _UNITS_MS.get(value[-1:].lower())
    if unit is not None and value[:-1].isdigit():
        return now_ms - int(value[:-1]) * unit
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"time {text!r}: write ISO 8601 (2026-11-24T08:00Z), a date, 'now', or an age "
            "such as 90m, 12h, 7d, 2w"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Window:
    """Record timestamps in ``[since_ms, until_ms)``."""

    since_ms: int
    until_ms: int

    def __contains__(self, timestamp_ms: object) -> bool:
        return isinstance(timestamp_ms, int) and self.since_ms <= timestamp_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One record of a gate topic, as read."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


async def read_history(
    settings: ReplaySettings,
    windows: Mapping[str, Window],
    progress: Progress | None = None,
) -> list[HistoryRecord]:
    """Every record of each topic in ``windows`` whose timestamp is inside its window, in
    (topic, partition, offset) order. A missing topic has no records."""
    auth = settings.kafka_auth().aiokafka_options()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.replay_group_id,  # its own; partitions are assigned, never committed
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.replay_fetch_max_wait_ms,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **auth,
    )
    await settings.start_client(consumer)
    try:
        return await _read(consumer, windows, progress)
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer, windows: Mapping[str, Window], progress: Progress | None
) -> list[HistoryRecord]:
    await consumer._client.force_metadata_update()  # topics may be new
    tps = [
        TopicPartition(topic, p)
        for topic in windows
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    if not tps:
        return []
    consumer.assign(tps)
    starts = await consumer.offsets_for_times({tp: windows[tp.topic].since_ms for tp in tps})
    beginnings = await consumer.beginning_offsets(tps)
    # Only a lower bound: Tansu's end offset counts record batches, not records. A partition is
    # done when it catches up with the high watermark of its own fetches, which is exact.
    ends = await consumer.end_offsets(tps)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        found = starts[tp]
        if found is None:  # no record at or after `since`
            continue
        # A broker that ignores the timestamp answers with an older record: start at the
        # beginning then (Tansu answers offset 0 anyway); the exact filter below decides.
        start = found.offset if found.timestamp >= windows[tp.topic].since_ms else beginnings[tp]
        if start < ends[tp]:
            ranges[tp] = (start, ends[tp])
            consumer.seek(tp, start)
    out: list[HistoryRecord] = []
    counts = {tp: (0, stop - start) for tp, (start, stop) in ranges.items()}  # (read, to read)
    pending = set(ranges)
    past_until: set[TopicPartition] = set()
    consumer.pause(*(tp for tp in tps if tp not in pending))
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
        for tp, records in batches.items():
            window = windows[tp.topic]
            for record in records:
                # Timestamps are producers' clocks: the first record CLOCK_SKEW_MS past `until`
                # ends the partition (what an offset lookup of that time would answer, computed
                # here so that brokers which ignore timestamps work too).
                if record.timestamp >= window.until_ms + CLOCK_SKEW_MS:
                    past_until.add(tp)
                    break
                if record.timestamp in window:
                    out.append(_record(record))
        for tp in list(pending):
            start, stop = ranges[tp]
            end = max(stop, consumer.highwater(tp) or 0)
            position = await consumer.position(tp)
            if tp in past_until or position >= end:
                pending.discard(tp)
                consumer.pause(tp)
                position = end
            counts[tp] = (position - start, end - start)
        if progress is not None:
            progress(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
        await asyncio.sleep(0)
    out.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return out


def _record(record: ConsumerRecord[bytes, bytes]) -> HistoryRecord:
    return HistoryRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp,
        key=record.key,
        value=record.value,
        headers=decode_headers(record.headers),
    )
