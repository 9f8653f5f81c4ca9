"""The one fake of the replay tests: a consumer that answers like the embedded broker (Tansu
0.6, ``memory://``), so that the reader can be driven through every order in which concurrent
batches get written.

What Tansu does (tansu-storage/src/dynostore.rs, ``produce``, ``fetch``, ``list_offsets``):

- ``produce`` first takes the batch's offsets from the partition's high watermark, *then* writes
  the batch object. Two producers can therefore have batches 0 and 5 assigned and batch 5
  written first.
- ``fetch`` answers the high watermark (assigned offsets, written or not) and every *written*
  batch at or after the fetch offset (plus a written batch that covers it): a fetch at 0 while
  batch 0 is unwritten returns batch 5, and a client's position jumps to 10.
- ``list_offsets`` picks batches by *write time*: earliest = the first batch written, latest =
  the last batch written + 1, by timestamp = the first batch written after that time (with its
  write time, not the record's); offset 0 when nothing qualifies.
- its high watermark can be *stale*: after concurrent writes it may answer, and serve only below,
  an end short of batches it has acknowledged, until its cached end expires (5 s; ``OptiCon``
  and the metadata ``Cache`` of ``dynostore``). :attr:`TansuLikeConsumer.stale` says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndTimestamp


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Batch:
    base: int
    timestamps: tuple[int, ...]  # the records' own (producer) timestamps
    written_ms: int | None = None  # the broker's clock when the object was written
    values: tuple[bytes, ...] = ()  # the records' values (else each its offset)
    headers: tuple[tuple[tuple[str, bytes], ...], ...] = ()  # the records' headers

    def record(self, tp: TopicPartition, i: int) -> FakeRecord:
        offset = self.base + i
        value = self.values[i] if self.values else f"{offset}".encode()
        headers = self.headers[i] if self.headers else ()
        return FakeRecord(tp.topic, tp.partition, offset, self.timestamps[i], b"k", value, headers)

    @property
    def end(self) -> int:
        return self.base + len(self.timestamps)


@dataclass
class FakeLog:
    """One partition: batches with assigned offsets, written in ``order`` one per tick."""

    tp: TopicPartition
    batches: list[Batch]
    order: Sequence[int]  # indexes into batches, in write order
    clock_ms: int
    written: int = 0

    @property
    def highwater(self) -> int:
        return max((b.end for b in self.batches), default=0)

    def tick(self) -> None:
        if self.written < len(self.order):
            self.clock_ms += 1
            self.batches[self.order[self.written]].written_ms = self.clock_ms
            self.written += 1

    def by_write_time(self) -> list[Batch]:
        done = [b for b in self.batches if b.written_ms is not None]
        return sorted(done, key=lambda b: b.written_ms or 0)

    def fetch(self, offset: int, end: int | None = None) -> list[FakeRecord]:
        """The written batches at or after ``offset`` that start below ``end``."""
        limit = self.highwater if end is None else end
        written = sorted(
            (b for b in self.batches if b.written_ms is not None and b.base < limit),
            key=lambda b: b.base,
        )
        wanted = [b for b in written if b.end > offset]
        return [
            b.record(self.tp, i)
            for b in wanted
            for i in range(len(b.timestamps))
            if b.base + i >= offset
        ]


class _Client:
    async def force_metadata_update(self) -> bool:
        return True


@dataclass
class TansuLikeConsumer:
    """The subset of AIOKafkaConsumer the reader uses, answering as Tansu would. Every call
    that reaches the broker first lets one more batch be written (``ticks_per_call``) and moves
    the reader's clock (``clock``) on by ``ms_per_call``."""

    logs: dict[TopicPartition, FakeLog]
    ticks_per_call: int = 1
    ms_per_call: int = 1
    now_ms: int = 0
    stale: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)  # (end, until)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    highwaters: dict[TopicPartition, int] = field(default_factory=dict)
    paused: set[TopicPartition] = field(default_factory=set)
    commits: dict[TopicPartition, int] = field(default_factory=dict)
    _client: _Client = field(default_factory=_Client)

    def clock(self) -> int:
        return self.now_ms

    def _end(self, tp: TopicPartition) -> int:
        """The end the broker answers now: a stale one until it expires."""
        end, until_ms = self.stale.get(tp, (0, -1))
        return end if self.now_ms < until_ms else self.logs[tp].highwater

    def _tick(self) -> None:
        self.now_ms += self.ms_per_call
        for _ in range(self.ticks_per_call):
            for log in self.logs.values():
                log.tick()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.logs if tp.topic == topic}

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        for tp in tps:
            self.positions.setdefault(tp, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.commits.get(tp)

    async def commit(self) -> None:
        """As aiokafka commits after a served batch: every assigned partition's position."""
        self.commits.update(self.positions)

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.highwaters.get(tp)

    async def beginning_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        self._tick()
        return {tp: self._first_written(tp, None)[0] for tp in tps}

    async def end_offsets(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        self._tick()
        out = {}
        for tp in tps:
            written = self.logs[tp].by_write_time()
            out[tp] = written[-1].base + 1 if written else 0
        return out

    async def offsets_for_times(
        self, times: dict[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        self._tick()
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for tp, at in times.items():
            offset, written_ms = self._first_written(tp, at)
            out[tp] = OffsetAndTimestamp(offset, written_ms if written_ms is not None else -1)
        return out

    def _first_written(self, tp: TopicPartition, after_ms: int | None) -> tuple[int, int | None]:
        for batch in self.logs[tp].by_write_time():
            if after_ms is None or (batch.written_ms or 0) > after_ms:
                return batch.base, batch.written_ms
        return 0, None

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        await asyncio.sleep(0)  # a fetch suspends, as a real one does
        self._tick()
        out: dict[TopicPartition, list[FakeRecord]] = {}
        for tp in tps or tuple(self.positions):
            if tp in self.paused:
                continue
            log = self.logs[tp]
            self.highwaters[tp] = self._end(tp)
            records = log.fetch(self.positions[tp], self.highwaters[tp])
            if records:
                out[tp] = records
                self.positions[tp] = records[-1].offset + 1
        return out
