"""The reader's decisions, one partition at a time. Pure: no client, no clock.

A partition is finished only when every offset below the high watermark its own fetches
reported has been read, or declared a gap. How far a fetch may be trusted depends on the broker:

- **trusted** (Apache Kafka): the high watermark only covers written records, so the consumer's
  position after a fetch is where the next record is; records are kept as they come.
- **untrusted** (Tansu, and any broker not said to be trusted): offsets are handed out before
  their batch is written, and a fetch returns written batches past an unwritten one. Only records
  that follow the last kept one without a hole are kept; at a hole the reader fetches again from
  its start until it fills, and after ``gap_wait_ms`` without progress the hole is declared a
  :class:`Gap` (which the audit reports: nothing is dropped silently). Its high watermark can
  also be *stale*: after concurrent writes Tansu 0.6 may report, and serve up to, an end offset
  below records it has acknowledged, for as long as it caches that end (5 s). So a high watermark
  finishes a partition only when a fetch at or after the cursor's ``settles_at_ms`` reported it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    """Offsets ``[first, end)`` of a partition that could not be read."""

    topic: str
    partition: int
    first: int
    end: int

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.first}-{self.end - 1}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Fetched:
    """What one fetch returned for a partition."""

    offsets: tuple[int, ...]  # of the records returned, ascending
    highwater: int | None  # as the fetch response reported it (None: no response yet)
    position: int  # the consumer's position after the fetch
    now_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Cursor:
    """How far one partition has been read: every offset below ``next_offset`` was kept or
    declared a gap."""

    start: int
    next_offset: int
    highwater: int | None = None  # the highest a fetch reported
    waiting_since_ms: int | None = None  # a hole, and no progress since then
    settles_at_ms: int = 0  # a high watermark reported before this time may be stale
    fetched_at_ms: int | None = None  # the time of the last fetch

    @property
    def done(self) -> bool:
        settled = self.fetched_at_ms is not None and self.fetched_at_ms >= self.settles_at_ms
        return settled and self.highwater is not None and self.next_offset >= self.highwater

    @property
    def read(self) -> int:
        return self.next_offset - self.start

    @property
    def to_read(self) -> int:
        return max((self.highwater or self.start) - self.start, self.read)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    cursor: Cursor
    keep: frozenset[int]  # offsets of the fetched records to keep
    seek: int | None = None  # fetch next from here (the consumer's position is wrong)
    gap: tuple[int, int] | None = None  # [first, end) declared unreadable


def start(offset: int, *, settles_at_ms: int = 0) -> Cursor:
    return Cursor(start=offset, next_offset=offset, settles_at_ms=settles_at_ms)


def advance(cursor: Cursor, fetched: Fetched, *, trusted: bool, gap_wait_ms: int) -> Step:
    """The next state of a partition after one fetch."""
    known = [h for h in (cursor.highwater, fetched.highwater) if h is not None]
    cursor = replace(cursor, highwater=max(known) if known else None, fetched_at_ms=fetched.now_ms)
    if trusted:
        return _trusted(cursor, fetched)
    return _untrusted(cursor, fetched, gap_wait_ms)


def _trusted(cursor: Cursor, fetched: Fetched) -> Step:
    keep = frozenset(o for o in fetched.offsets if o >= cursor.next_offset)
    after = max(cursor.next_offset, fetched.position, *(o + 1 for o in keep))
    return Step(cursor=replace(cursor, next_offset=after), keep=keep)


def _untrusted(cursor: Cursor, fetched: Fetched, gap_wait_ms: int) -> Step:
    kept, after = contiguous(fetched.offsets, cursor.next_offset)
    beyond = [o for o in fetched.offsets if o > after]
    hole_end = beyond[0] if beyond else max(cursor.highwater or after, after)
    since = cursor.waiting_since_ms
    stuck = after == cursor.next_offset and hole_end > after  # a hole, and no progress
    waiting = (since if since is not None else fetched.now_ms) if stuck else None
    moved = replace(cursor, next_offset=after, waiting_since_ms=waiting)
    if moved.done:
        return Step(cursor=moved, keep=kept)
    if waiting is not None and fetched.now_ms - waiting >= gap_wait_ms:
        skipped = replace(moved, next_offset=hole_end, waiting_since_ms=None)
        return Step(cursor=skipped, keep=kept, seek=hole_end, gap=(after, hole_end))
    seek = after if fetched.position != after else None
    return Step(cursor=moved, keep=kept, seek=seek)


def contiguous(offsets: tuple[int, ...], next_offset: int) -> tuple[frozenset[int], int]:
    """The offsets that follow ``next_offset`` without a hole, and the offset after them."""
    kept: set[int] = set()
    for offset in sorted(offsets):
        if offset < next_offset:
            continue
        if offset > next_offset:
            break
        kept.add(offset)
        next_offset += 1
    return frozenset(kept), next_offset
