"""What the backends of ``bench.backfill`` wait for: ``pg_stat_activity`` sampled every
``INTERVAL_S`` seconds from its own connection, each active backend's wait event counted by who
it is — the writers of ``bench.backfill_load`` (``application_name`` ``bench-writer``) or the
migration (any other client backend of the database: schemaheal's runner, pgroll's connection;
not autovacuum). A backend that is active and waits for nothing is on the CPU (or queued for it):
``CPU``.

Shares are of the samples in one window, so the writers' waits before the migration and during
its backfill can be set side by side (:func:`shares`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

from worker.engine.connection import connect

INTERVAL_S = 0.02
WRITER = "bench-writer"

_SAMPLE = """SELECT application_name = $1 AS writer, wait_event_type, wait_event
               FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'active'
                AND backend_type = 'client backend'
                AND pid <> pg_backend_pid()"""

#: (when, "writers" or "migration", wait event)
Sample = tuple[float, str, str]


async def sample(dsn: str, out: list[Sample], stop: asyncio.Event) -> None:
    """Append samples to ``out`` until ``stop`` is set."""
    conn = await connect(dsn, application_name="bench-sampler")
    try:
        while not stop.is_set():
            at = time.time()
            for row in await conn.fetch(_SAMPLE, WRITER):
                event = f"{row['wait_event_type']}:{row['wait_event']}"
                who = "writers" if row["writer"] else "migration"
                out.append((at, who, "CPU" if row["wait_event_type"] is None else event))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), INTERVAL_S)
    finally:
        await conn.close()


def shares(samples: list[Sample], who: str, since: float, until: float) -> Counter[str]:
    """How many of ``who``'s active samples in [since, until) waited on each event."""
    return Counter(event for at, w, event in samples if w == who and since <= at < until)


def describe(counts: Counter[str], top: int = 5) -> str:
    """The ``top`` events with their share of the samples, e.g. ``IO:WALSync 41% (205)``."""
    total = sum(counts.values())
    if not total:
        return "none active"
    return (
        ", ".join(f"{event} {n / total:.0%} ({n})" for event, n in counts.most_common(top))
        + f"; {total} samples"
    )
