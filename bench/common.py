"""Shared parts of the benchmarks: synthetic schemas of any size, servers, timing.

A manifest holds at most 5000 tables (``contracts``' limit), so 10,000 tables are 10 manifests
of 1000, one schema each -- ten services of one database -- and the engine's inspection and
plan of all of them at once run on their desired realms merged into one (:func:`merged`)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import Manifest
from contracts.from_sqlalchemy import manifest_from_metadata
from worker.engine.model import Realm


def synthetic_metadata(tables: int = 1000, schema: str | None = None) -> sa.MetaData:
    """``tables`` tables like a real application's: a key, text, a timestamp default, JSONB, a
    foreign key to the previous table, an index and a unique constraint; in ``schema``."""
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
            parent = f"{schema}.t{i - 1:04d}.id" if schema else f"t{i - 1:04d}.id"
            columns.append(sa.Column("parent_id", sa.Integer, sa.ForeignKey(parent)))
        sa.Table(f"t{i:04d}", md, *columns, schema=schema)
    return md


def synthetic_manifest(metadata: sa.MetaData, service: str = "bench") -> Manifest:
    return manifest_from_metadata(metadata, service=service, database="bench")


def synthetic_manifests(tables: int, schemas: int) -> list[tuple[sa.MetaData, Manifest]]:
    """``tables`` tables in ``schemas`` schemas: ``public`` alone, or ``s0``, ``s1``, ... with
    one manifest (service) each."""
    if schemas == 1:
        metadata = synthetic_metadata(tables)
        return [(metadata, synthetic_manifest(metadata))]
    out = []
    for k in range(schemas):
        metadata = synthetic_metadata(tables // schemas, f"s{k}")
        out.append((metadata, synthetic_manifest(metadata, f"bench-s{k}")))
    return out


def merged(realms: list[Realm]) -> Realm:
    """One realm of several manifests' disjoint schemas (the engine is given all at once)."""
    return Realm(
        schemas=frozenset().union(*(r.schemas for r in realms)),
        extensions=tuple(e for r in realms for e in r.extensions),
        enums=tuple(e for r in realms for e in r.enums),
        sequences=tuple(s for r in realms for s in r.sequences),
        tables=tuple(t for r in realms for t in r.tables),
    )


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


async def interleaved(
    runs: list[Callable[[], Awaitable[object]]], repeat: int
) -> list[list[float]]:
    """Like :func:`timed` for several peers, run in turn in each round: a burst of load on this
    shared machine then slows all of them instead of one."""
    for run in runs:
        await run()
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, out in zip(runs, samples, strict=True):
            started = time.perf_counter()
            await run()
            out.append(time.perf_counter() - started)
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


async def every_partition(consumer: Any, topic: str, timeout_s: float = 60) -> list[Any]:
    """Every partition of ``topic``, once ``consumer`` (an aiokafka consumer) knows the topic: a
    consumer knows no topic when it starts on some brokers (Apache Kafka), and guessing
    partition 0 then reads one partition of several."""
    from aiokafka import TopicPartition

    deadline = time.perf_counter() + timeout_s
    while not (partitions := consumer.partitions_for_topic(topic)):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"topic {topic} unknown to the consumer after {timeout_s} s")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)
    return [TopicPartition(topic, p) for p in sorted(partitions)]
