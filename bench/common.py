"""Shared parts of the benchmarks: a synthetic 1000-table schema, servers, timing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import Manifest
from contracts.from_sqlalchemy import manifest_from_metadata


def synthetic_metadata(tables: int = 1000) -> sa.MetaData:
    """``tables`` tables like a real application's: a key, text, a timestamp default, JSONB, a
    foreign key to the previous table, an index and a unique constraint."""
    from sqlalchemy.dialects.postgresql import JSONB

    md = sa.MetaData()
    for i in range(tables):
        columns: list[sa.SchemaItem] = [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("code", sa.String(16), unique=True),
            sa.Column(
                "created_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            ),
            sa.Column("payload", JSONB),
            sa.Index(f"ix_t{i:04d}_name", "name"),
        ]
        if i:
            columns.append(sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"t{i - 1:04d}.id")))
        sa.Table(f"t{i:04d}", md, *columns)
    return md


def synthetic_manifest(metadata: sa.MetaData) -> Manifest:
    return manifest_from_metadata(metadata, service="bench", database="bench")


def async_engine(dsn: str) -> sa.ext.asyncio.AsyncEngine:
    return create_async_engine(dsn.replace("postgresql://", "postgresql+asyncpg://"))


async def timed(run: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Wall-clock seconds of each of ``repeat`` runs (after one warm-up run)."""
    await run()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - started)
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def report(title: str, rows: list[tuple[str, float]], ratios: list[tuple[str, float, str]]) -> None:
    """Print medians (ms) and ratios; on these noisy machines only the ratios mean much."""
    print(title)
    for name, ms in rows:
        print(f"  {name:<28}{ms:9.1f} ms")
    for name, value, target in ratios:
        print(f"  {name:<28}{value:9.2f}x   {target}")
