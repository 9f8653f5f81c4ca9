"""A rolling deploy through the gate (issue 19): old and new replicas of a service boot in turn
while both versions write, as a rename and an ``integer`` → ``bigint`` key change go through
expand, backfill and enforcement. Every boot may start; every row ends converted and in step.

The worker's own background runner backfills and enforces, throttled so that the boots and the
writes happen while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from contracts import ensure_schema, load_manifest
from contracts.events import SchemaHealed
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings
from worker.engine import backfill_store as store
from worker.engine.connection import connect

pytestmark = pytest.mark.postgres
ID = column("id", "integer", nullable=False)
ROWS = 2000


def shape(*, new: bool) -> dict[str, Any]:
    name = (
        column("full_name", nullable=False, renamed_from="name")
        if new
        else column("name", nullable=False)
    )
    key = column("id", "bigint", nullable=False, using="id") if new else ID
    return manifest(
        table("users", ID, name, primary_key=pk("id")),
        table("accounts", key, column("label"), primary_key=pk("id")),
        table("payments", ID, column("account_id", "integer"), primary_key=pk("id"),
              foreign_keys=[fk(["account_id"], "accounts", ["id"])]),
        service="accounts",
    )  # fmt: skip


OLD, NEW = load_manifest(shape(new=False)), load_manifest(shape(new=True))
BEFORE = f"""
CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts (id integer PRIMARY KEY, label text);
CREATE TABLE payments (id integer PRIMARY KEY, account_id integer REFERENCES accounts (id));
INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, {ROWS}) AS i;
INSERT INTO accounts SELECT i, 'account ' || i FROM generate_series(1, {ROWS}) AS i;
INSERT INTO payments SELECT i, i FROM generate_series(1, {ROWS}) AS i;
"""
Write = Callable[[asyncpg.Connection, int], Awaitable[None]]


async def old_write(db: asyncpg.Connection, n: int) -> None:
    """The old version: knows ``name`` and an integer account key."""
    await db.execute("INSERT INTO users (id, name) VALUES ($1, $2)", 100_000 + n, f"old {n}")
    await db.execute("UPDATE users SET name = $2 WHERE id = $1", 1 + n % ROWS, f"old edit {n}")
    await db.execute("INSERT INTO accounts (id, label) VALUES ($1, 'old')", 100_000 + n)


async def new_write(db: asyncpg.Connection, n: int) -> None:
    """The new version: knows ``full_name``."""
    await db.execute("INSERT INTO users (id, full_name) VALUES ($1, $2)", 200_000 + n, f"new {n}")
    await db.execute(
        "UPDATE users SET full_name = $2 WHERE id = $1", 1 + (n * 7) % ROWS, f"new edit {n}"
    )
    await db.execute("INSERT INTO accounts (id, label) VALUES ($1, 'new')", 200_000 + n)


@contextlib.asynccontextmanager
async def traffic(dsn: str, write: Write, counts: dict[str, int], who: str) -> AsyncIterator[None]:
    """``write`` in a loop on its own connection until the block ends; every error is kept."""
    db = await asyncpg.connect(dsn)
    stop = asyncio.Event()

    async def loop() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            await write(db, n)
            counts[who] = n + 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task  # raises the writer's error, if any
        await db.close()


async def boot(kafka: KafkaServer, wanted: Any, instance: str) -> SchemaHealed:
    reply = await ensure_schema(
        wanted, bootstrap_servers=kafka.bootstrap_servers, instance=instance, timeout_s=90
    )
    assert reply.may_start, reply
    return reply


async def expanded(dsn: str, ids: set[str]) -> None:
    """Wait for the worker's background runner to finish the migrations' backfill and enforce."""
    conn = await connect(dsn)
    try:
        for _ in range(600):
            states = {i: await store.progress(conn, i) for i in ids}
            if all(p is not None and p.state == store.EXPANDED for p in states.values()):
                return
            assert all(p is None or p.error is None for p in states.values()), states
            await asyncio.sleep(0.1)
        raise AssertionError(f"not expanded: {states}")
    finally:
        await conn.close()


async def test_a_rolling_deploy_of_a_rename_and_a_key_widening(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute(BEFORE)
    counts: dict[str, int] = {}
    # ~20 batches with a pause each: the backfill outlasts the boots around it
    settings = worker_settings(kafka, database, backfill_batch_rows=100, backfill_pause_s=0.05,
                               backfill_batch_target_ms=0)  # fmt: skip
    async with running_worker(settings):
        assert (await boot(kafka, OLD, "old-1")).outcome == "unchanged"
        async with traffic(database.dsn, old_write, counts, "old"):
            first = await boot(kafka, NEW, "new-1")
            assert first.outcome == "healed"
            assert {m.state for m in first.migrations} == {store.BACKFILLING}
            async with traffic(database.dsn, new_write, counts, "new"):
                # a second old replica and a second new one boot while nothing is backfilled
                assert (await boot(kafka, OLD, "old-2")).outcome == "unchanged"
                assert (await boot(kafka, NEW, "new-2")).outcome == "unchanged"
                await expanded(database.dsn, {m.id for m in first.migrations})
                # after enforcement and the swap, both versions still boot and write
                assert (await boot(kafka, OLD, "old-3")).outcome == "unchanged"
                last = await boot(kafka, NEW, "new-3")
                assert {(m.state, m.running) for m in last.migrations} == {(store.EXPANDED, False)}
                await asyncio.sleep(0.2)
    # what the new version may now rely on: keys beyond integer
    await database.execute("INSERT INTO accounts (id, label) VALUES (3000000000, 'wide')")
    assert counts["old"] > 0 and counts["new"] > 0
    left = await database.fetch(
        "SELECT (SELECT count(*) FROM users WHERE full_name IS DISTINCT FROM name) AS apart,"
        " (SELECT count(*) FROM users) AS users,"
        " (SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        "   WHERE attrelid = 'accounts'::regclass AND attname = 'id') AS key_type,"
        " (SELECT attnotnull FROM pg_attribute"
        "   WHERE attrelid = 'users'::regclass AND attname = 'full_name') AS not_null"
    )
    assert dict(left[0]) == {
        "apart": 0, "users": ROWS + counts["old"] + counts["new"], "key_type": "bigint",
        "not_null": True,
    }  # fmt: skip
