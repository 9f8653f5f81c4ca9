"""How many rows the backfill's next batch takes. Pure.

A batch holds the row locks of what it updated until it commits, so its duration is what a
writer of one of those rows may wait; its size is what it costs per round trip and per commit.
So batches are sized for a target duration: each next batch is the last one's size scaled by
``target / took``, changing by at most half or double per batch (one slow batch on a busy
machine does not swing it), within ``[min_rows, max_rows]``. A batch that found fewer rows than
it asked for (the end of the table) says nothing about the rate and keeps the size; so does a
batch that was retried (its time is mostly the waits between attempts: it shrinks, as a batch
slower than the target does).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pace", "next_rows"]

_MOST = 2.0  # the largest change of one step, either way


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    """The target duration of a batch (0: every batch takes the first size) and the bounds."""

    target_s: float
    min_rows: int
    max_rows: int


def next_rows(pace: Pace, rows: int, found: int, took_s: float) -> int:
    """The next batch's size, after a batch that asked for ``rows``, found ``found`` and took
    ``took_s`` seconds."""
    if pace.target_s <= 0 or found < rows:
        return rows
    scale = pace.target_s / took_s if took_s > 0 else _MOST
    scaled = round(rows * min(_MOST, max(1 / _MOST, scale)))
    return min(pace.max_rows, max(pace.min_rows, scaled))
