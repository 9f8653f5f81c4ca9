"""What ``bench.backfill`` measured, and how it prints it.

**Writer impact** of a tool in one run: the writers' p99 latency during the tool's *backfill
phase* over their p99 alone — ``--baseline-s`` before the migration and as long again after it
(so that a change of the machine's load in between weighs on both sides) — the same windows
for both tools:

- schemaheal's backfill phase runs from the start of expand to the commit of the last batch;
- pgroll's from the start of ``pgroll start`` (its expand and backfill) to its end.

(Neither includes NOT NULL: pgroll's writers stop before ``complete``, which drops the schema they
write through; so its "after" window is between ``start`` and ``complete``, schemaheal's after NOT
NULL. The triggers that keep both versions written are in place in both.) A ratio per run takes out
what the machine's load does to both windows alike; the p50 ratio and the p99's rise in ms are
printed too. Across runs the median of each is taken, and schemaheal's is set against pgroll's of
the same run: the *rate ratio* (the target is at least 2x) beside the *impact ratio* (schemaheal's
p99 ratio over pgroll's: 1.00 is equal impact, above it schemaheal slows the writers more).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.backfill_waits import Sample, describe, shares

#: the writers' windows: alone; the backfill phase; until NOT NULL (pgroll: its start); alone
WHEN = ("before", "backfill", "during", "after")
PGROLL = {100_000: (21_000, 26_000), 300_000: (9_000, 10_000)}  # rows/s, the figures


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    tool: str  # "schemaheal" (or "schemaheal@DUTY") or "pgroll"
    rows: int
    expand_s: float
    backfill_s: float  # backfill, final check and enforcement
    before: list[float]  # writers' latencies, ms
    backfill: list[float]  # the backfill phase (see the module's docstring)
    during: list[float]  # from the start to NOT NULL (pgroll: its start; complete has no writers)
    after: list[float]  # writers alone again (pgroll: before its complete)
    errors: dict[str, int]  # writes that failed (from the start of the load to its end)
    batches: str  # how many, of how many rows
    #: epoch s: before, start, backfill end, NOT NULL (pgroll: the end of start), after
    windows: tuple[float, ...] = (0.0,) * 5
    waits: list[Sample] = field(default_factory=list)
    wal_bytes: int = 0  # WAL the server wrote from the start to NOT NULL (pgroll: its start)
    load: tuple[float, ...] = (math.nan, math.nan)  # 1-minute load average at both ends

    @property
    def rate(self) -> float:
        return self.rows / (self.expand_s + self.backfill_s)

    @property
    def alone(self) -> list[float]:
        """The writers' latencies without a migration running: before it and after it."""
        return self.before + self.after

    def impact(self, quantile: Callable[[list[float]], float]) -> float:
        """The writers' latency at ``quantile`` in the backfill phase over alone."""
        return quantile(self.backfill) / quantile(self.alone)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else math.nan


def p50(samples: list[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def show(m: Measured, writers: str, throttle: str) -> None:
    print(f"{m.tool}: {m.rows:,} rows, {m.batches}, {throttle}, {writers}")
    if m.tool == "pgroll":
        print(f"  pgroll start + complete {m.backfill_s:.1f} s (two processes, startup included)")
    else:
        print(f"  expand {m.expand_s * 1000:.0f} ms, backfill + check + NOT NULL "
              f"{m.backfill_s:.1f} s")  # fmt: skip
    print(f"  rate {m.rate:,.0f} rows/s (expand to NOT NULL); load average "
          f"{m.load[0]:.1f} -> {m.load[-1]:.1f}")  # fmt: skip
    if m.wal_bytes:
        print(f"  WAL {m.wal_bytes / 1e6:,.0f} MB from the start to NOT NULL (pgroll: its "
              f"start), {m.wal_bytes / m.rows:.0f} bytes a row, the writers' included")  # fmt: skip
    for name, values in zip(WHEN, (m.before, m.backfill, m.during, m.after), strict=True):
        if values:
            print(f"  writers {name}: {len(values)} writes, p50 {p50(values):.2f} ms, "
                  f"p99 {p99(values):.2f} ms")  # fmt: skip
    if m.alone and m.backfill:
        print(f"  writer impact (backfill phase / before and after): p99 {m.impact(p99):.2f}x "
              f"({p99(m.backfill) - p99(m.alone):+.1f} ms), p50 {m.impact(p50):.2f}x")  # fmt: skip
    _show_waits(m)
    for error, count in m.errors.items():
        print(f"  WRITES FAILED: {count} x {error}")
    for size, (low, high) in PGROLL.items():
        if m.tool.startswith("schemaheal") and (size == m.rows or size == max(PGROLL) < m.rows):
            print(f"  vs pgroll's published figure at {size:,} rows ({low:,}-{high:,} rows/s): "
                  f"{m.rate / high:.1f}x-{m.rate / low:.1f}x (target: 2x)")  # fmt: skip


def _show_waits(m: Measured) -> None:
    if not m.waits:
        return
    before, start, end, _, _ = m.windows
    print(f"  writers' waits before: {describe(shares(m.waits, 'writers', before, start))}")
    print(f"  writers' waits in the backfill: {describe(shares(m.waits, 'writers', start, end))}")
    print(f"  migration's waits in the backfill: "
          f"{describe(shares(m.waits, 'migration', start, end))}")  # fmt: skip


def _median(values: list[float]) -> float:
    found = [v for v in values if not math.isnan(v)]
    return statistics.median(found) if found else math.nan


def compare(runs: list[Measured]) -> None:
    """Medians per tool, and schemaheal's against pgroll's measured in the same run."""
    medians = {}
    for tool in dict.fromkeys(r.tool for r in runs):
        mine = [r for r in runs if r.tool == tool]
        rates = sorted(r.rate for r in mine)
        alone, backfill, during = (_median([p99(getattr(r, w)) for r in mine])
                                   for w in ("alone", "backfill", "during"))  # fmt: skip
        impact = _median([r.impact(p99) for r in mine if r.alone and r.backfill])
        medians[tool] = statistics.median(rates), impact
        print(f"  {tool}: median of {len(mine)} runs {medians[tool][0]:,.0f} rows/s (from "
              f"{rates[0]:,.0f} to {rates[-1]:,.0f}); writers' p99, median: alone "
              f"{alone:.2f} ms, backfill {backfill:.2f} ms, during {during:.2f} ms; "
              f"impact {impact:.2f}x")  # fmt: skip
    if "pgroll" not in medians:
        return
    theirs, their_impact = medians["pgroll"]
    for tool, (ours, our_impact) in medians.items():
        if tool != "pgroll":
            print(f"  {tool} / pgroll, same run: rate ratio {ours / theirs:.2f}x (target: >= 2x),"
                  f" impact ratio {our_impact / their_impact:.2f} (target: <= 1)")  # fmt: skip
