"""Reading the gate's topics, every record, without disturbing anyone.

Two kinds of broker (``replay_trust_offsets``, see :mod:`worker.replay.reading`):

- **trusted** (Apache Kafka): its offset lookup by time finds the first record at or after
  ``since`` and its high watermark covers written records only, so each partition is read from
  that lookup's answer to the high watermark.
- **untrusted** (the default; Tansu): Tansu answers every offset lookup (by time, earliest,
  latest) from the time a batch was *written*, and concurrent producers get batches written out
  of offset order; a fetch can return batch 5 while batch 0 is still unwritten. Every partition is
  then read from offset 0, keeping only records without a hole before them, until the high
  watermark its own fetches report. That high watermark can lag behind acknowledged writes for
  up to 5 s after concurrent writes (Tansu 0.6 caches it; measured: 2 offsets acknowledged and
  not served for 5.0 s), so it finishes a partition only when it was reported ``settle_ms``
  after the read began, unless the window ended that long before (records are timestamped when
  sent, so those were written before the broker's end could lag).

Either way there is no early stop on a timestamp (producer clocks are not ordered within a
partition): every record up to the high watermark is read and filtered by its own timestamp. The
reader takes partitions by assignment under its own group id and never commits: the worker's
consumer group and its offsets are never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError

from contracts.events import decode_headers
from worker.errors import ConfigurationError
from worker.replay import reading
from worker.replay.reading import Gap
from worker.settings import ReplaySettings

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


@dataclass(frozen=True, slots=True)
class History:
    """Every record read (in (topic, partition, offset) order), and what could not be read."""

    records: tuple[HistoryRecord, ...] = ()
    gaps: tuple[Gap, ...] = ()


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadOptions:
    trusted: bool = False  # the broker's offsets are in order (Apache Kafka)
    gap_wait_ms: int = 30_000  # how long a hole may stay unwritten before it is reported
    settle_ms: int = 6_000  # untrusted: how long the broker's end may lag behind its writes
    fetch_timeout_ms: int = 1000
    clock: Callable[[], int] = _monotonic_ms  # the reader's clock, in ms (tests drive their own)


class Consumer(Protocol):
    """The part of AIOKafkaConsumer the reader uses (the seam the fake broker of the tests
    fills)."""

    def partitions_for_topic(self, topic: str) -> Any: ...
    def assign(self, partitions: Any) -> None: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def highwater(self, partition: TopicPartition) -> int | None: ...
    async def position(self, partition: TopicPartition) -> int: ...
    async def offsets_for_times(self, timestamps: Any) -> Any: ...
    async def end_offsets(self, partitions: Any) -> Any: ...
    async def beginning_offsets(self, partitions: Any) -> Any: ...
    async def getmany(self, *partitions: TopicPartition, timeout_ms: int = ...,
                      max_records: int | None = ...) -> Any: ...  # fmt: skip


async def read_history(
    settings: ReplaySettings,
    windows: Mapping[str, Window],
    progress: Progress | None = None,
) -> History:
    """Every record of each topic in ``windows`` whose timestamp is inside its window, and the
    offsets that could not be read. A missing topic has no records."""
    auth = settings.kafka_auth().aiokafka_options()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.replay_group_id,  # its own; partitions are assigned, never committed
        enable_auto_commit=False,
        auto_offset_reset="none",  # an offset out of range is handled by _fetch, not hidden
        fetch_max_wait_ms=settings.replay_fetch_max_wait_ms,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **auth,
    )
    await settings.start_client(consumer)
    options = ReadOptions(trusted=settings.replay_trust_offsets,
                          gap_wait_ms=int(settings.replay_gap_wait_s * 1000),
                          settle_ms=int(settings.replay_settle_s * 1000))  # fmt: skip
    try:
        await consumer._client.force_metadata_update()  # topics may be new
        return await read(consumer, windows, options, progress)
    finally:
        await consumer.stop()


async def read(
    consumer: Consumer,
    windows: Mapping[str, Window],
    options: ReadOptions,
    progress: Progress | None = None,
) -> History:
    """The reading loop: fetch, let :func:`reading.advance` decide, until every partition is
    done."""
    tps = [TopicPartition(topic, p) for topic in windows
           for p in sorted(consumer.partitions_for_topic(topic) or ())]  # fmt: skip
    if not tps:
        return History()
    consumer.assign(tps)
    cursors = await _starts(consumer, tps, windows, options)
    records: list[HistoryRecord] = []
    gaps: list[Gap] = []
    while pending := [tp for tp, c in cursors.items() if not c.done]:
        batches = await _fetch(consumer, pending, cursors, options)
        for tp in pending:
            got = batches.get(tp, [])
            step = await _advance(consumer, tp, cursors[tp], got, options)
            window = windows[tp.topic]
            records += [_record(r) for r in got if r.offset in step.keep and r.timestamp in window]
            if step.gap is not None:
                gaps.append(Gap(topic=tp.topic, partition=tp.partition, first=step.gap[0],
                                end=step.gap[1]))  # fmt: skip
            cursors[tp] = step.cursor
        _report(progress, cursors.values())
        await asyncio.sleep(0)
    records.sort(key=lambda r: (r.topic, r.partition, r.offset))
    return History(records=tuple(records), gaps=tuple(gaps))


def _report(progress: Progress | None, cursors: Iterable[reading.Cursor]) -> None:
    if progress is not None:
        values = list(cursors)
        progress(sum(c.read for c in values), sum(c.to_read for c in values))


async def _fetch(
    consumer: Consumer,
    pending: list[TopicPartition],
    cursors: dict[TopicPartition, reading.Cursor],
    options: ReadOptions,
) -> Any:
    """One fetch of the pending partitions. A broker that says an offset is out of range has
    removed it (retention, ``kafka-delete-records``): those records are gone for everyone, so the
    partition starts again where the broker's log starts now (Tansu never says so)."""
    try:
        return await consumer.getmany(*pending, timeout_ms=options.fetch_timeout_ms,
                                      max_records=5000)  # fmt: skip
    except OffsetOutOfRangeError as exc:
        removed = list(exc.args[0]) if exc.args and isinstance(exc.args[0], dict) else pending
        for tp, start in (await consumer.beginning_offsets(removed)).items():
            consumer.seek(tp, start)
            cursors[tp] = reading.start(start, settles_at_ms=cursors[tp].settles_at_ms)
        return {}


async def _starts(
    consumer: Consumer,
    tps: list[TopicPartition],
    windows: Mapping[str, Window],
    options: ReadOptions,
) -> dict[TopicPartition, reading.Cursor]:
    """Offset 0 everywhere, unless the broker is trusted: then its lookup by time (or its end,
    when no record is at or after ``since``)."""
    starts = dict.fromkeys(tps, 0)
    if options.trusted:
        found = await consumer.offsets_for_times({tp: windows[tp.topic].since_ms for tp in tps})
        ends = await consumer.end_offsets(tps)
        starts = {tp: found[tp].offset if found[tp] is not None else ends[tp] for tp in tps}
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    began, wall = options.clock(), int(time.time() * 1000)
    settles = {tp: began + _settling(windows[tp.topic], wall, options) for tp in tps}
    return {tp: reading.start(offset, settles_at_ms=settles[tp]) for tp, offset in starts.items()}


def _settling(window: Window, wall_ms: int, options: ReadOptions) -> int:
    """How long after the start of the read a high watermark may still lag behind records of
    ``window``: none on a trusted broker, nor when the window ended ``settle_ms`` ago."""
    if options.trusted:
        return 0
    return min(max(window.until_ms + options.settle_ms - wall_ms, 0), options.settle_ms)


async def _advance(
    consumer: Consumer,
    tp: TopicPartition,
    cursor: reading.Cursor,
    got: list[Any],
    options: ReadOptions,
) -> reading.Step:
    fetched = reading.Fetched(
        offsets=tuple(r.offset for r in got),
        highwater=consumer.highwater(tp),
        position=await consumer.position(tp),
        now_ms=options.clock(),
    )
    step = reading.advance(cursor, fetched, trusted=options.trusted,
                           gap_wait_ms=options.gap_wait_ms)  # fmt: skip
    if step.seek is not None:
        consumer.seek(tp, step.seek)
    if step.cursor.done:
        consumer.pause(tp)  # its fetches would only fill memory
    return step


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
