"""How many rows the backfill's next batch takes. Pure.

A batch holds the row locks of what it updated until it commits, so its duration is what a
writer of one of those rows may wait; its size is what it costs per round trip and per commit.
So batches are sized for a target duration: each next batch is the last one's size scaled by
``target / took``, changing by at most half or double per batch (one slow batch on a busy
machine does not swing it), within ``[min_rows, max_rows]``. A batch that found fewer rows than
it asked for (the end of the table) says nothing about the rate and keeps the size; so does a
batch that was retried (its time is mostly the waits between attempts: it shrinks, as a batch
slower than the target does).

A batch is followed by a rest in proportion to its duration (:func:`rest_s`), so that the
runner works a ``duty`` share of the time at most, and writes its WAL at that share of its full
rate: the WAL is what the writers feel, as their commits flush it with their own
(``bench.backfill`` samples their wait events: the WAL flush, hardly ever a row a batch holds).
A rest in proportion, not a fixed pause, keeps that share on a slow and a fast machine alike. On
the 2-core machine of the README's benchmark 0.7 did not measurably lower the writers' p99, so
the default is 1 (no rest).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Pace", "next_rows", "rest_s"]

_MOST = 2.0  # the largest change of one step, either way


@dataclass(frozen=True, slots=True, kw_only=True)
class Pace:
    """The target duration of a batch (0: every batch takes the first size), the bounds, and
    the share of the time the runner spends in batches (1: no rest)."""

    target_s: float
    min_rows: int
    max_rows: int
    duty: float = 1.0


def next_rows(pace: Pace, rows: int, found: int, took_s: float) -> int:
    """The next batch's size, after a batch that asked for ``rows``, found ``found`` and took
    ``took_s`` seconds."""
    if pace.target_s <= 0 or found < rows:
        return rows
    scale = pace.target_s / took_s if took_s > 0 else _MOST
    scaled = round(rows * min(_MOST, max(1 / _MOST, scale)))
    return min(pace.max_rows, max(pace.min_rows, scaled))


def rest_s(pace: Pace, took_s: float) -> float:
    """The rest after a batch that took ``took_s`` seconds: batches then fill ``duty`` of the
    time."""
    if pace.duty >= 1 or took_s <= 0:
        return 0.0
    return took_s * (1 - pace.duty) / pace.duty
