"""A transaction-pooling proxy breaks session advisory locks: the worker, the gate and ``heal``
refuse one, through a real PgBouncer, and say why; a direct connection passes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.pgbouncer import PgBouncer, binary
from worker.engine.connection import connect
from worker.engine.pooler import require_direct
from worker.errors import UnsafeConnectionError

ROOT = Path(__file__).parents[2]
needs_pgbouncer = pytest.mark.skipif(binary() is None, reason="pgbouncer is not installed")


@pytest.fixture(params=["transaction", "session"])
def bouncer(request: pytest.FixtureRequest, database: FreshDatabase) -> Iterator[PgBouncer]:
    if binary() is None:
        pytest.skip("pgbouncer is not installed")
    proxy = PgBouncer(database.server, request.param).start()
    yield proxy
    proxy.stop()


async def test_a_direct_connection_passes(database: FreshDatabase) -> None:
    conn = await connect(database.dsn)
    try:
        await require_direct(conn, "nexus")
    finally:
        await conn.close()


@needs_pgbouncer
async def test_a_proxy_is_refused_unless_declared_session_pooling(
    bouncer: PgBouncer, database: FreshDatabase
) -> None:
    conn = await connect(bouncer.dsn_for(database.name))
    try:
        with pytest.raises(UnsafeConnectionError, match="goes through a proxy") as refused:
            await require_direct(conn, "nexus")
        assert "SCHEMAHEAL_DATABASE_PROXY=session" in str(refused.value)
        if bouncer.pool_mode == "session":
            await require_direct(conn, "nexus", "session")  # the operator vouches for it
    finally:
        await conn.close()


@needs_pgbouncer
async def test_transaction_pooling_is_refused_even_when_declared_session(
    database: FreshDatabase,
) -> None:
    proxy = PgBouncer(database.server, "transaction").start()
    try:
        conns = [await connect(proxy.dsn_for(database.name))]
        conns += [  # other clients of the pool (no statement cache: they work through it)
            await asyncpg.connect(proxy.dsn_for(database.name), statement_cache_size=0)
            for _ in range(2)
        ]

        # keep the pool's server sessions busy in turn, so the probe's transactions move
        async def probe() -> None:
            await require_direct(conns[0], "nexus", "session")

        async def churn() -> None:
            for _ in range(50):
                await asyncio.gather(*(c.fetchval("SELECT pg_sleep(0.001)") for c in conns[1:]))

        refused = 0
        for _ in range(20):
            try:
                await asyncio.gather(probe(), churn())
            except UnsafeConnectionError as exc:
                assert "different server sessions" in str(exc)
                assert "transaction-pooling proxy" in str(exc)
                refused += 1
                break
        for c in conns:
            await c.close()
    finally:
        proxy.stop()
    assert refused, "transaction pooling was never seen moving between server sessions"


@needs_pgbouncer
async def test_the_worker_refuses_to_start_behind_a_transaction_pooler(
    database: FreshDatabase,
) -> None:
    proxy = PgBouncer(database.server, "transaction").start()
    try:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "worker", "--bootstrap-servers", "127.0.0.1:9",
            "--database", f"nexus={proxy.dsn_for(database.name)}", "--health-port", "0",
            cwd=ROOT, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(worker.communicate(), 60)
        heal = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "heal", "--dsn", proxy.dsn_for(database.name),
            str(ROOT / "examples" / "nexus" / "manifest.json"),
            cwd=ROOT, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, heal_err = await asyncio.wait_for(heal.communicate(), 60)
    finally:
        proxy.stop()
    for code, message in ((worker.returncode, err), (heal.returncode, heal_err)):
        assert code == 1, message.decode()
        assert b"proxy" in message and b"Point the DSN at PostgreSQL" in message
        assert b"Traceback" not in message
    tables = await database.fetch("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")
    assert tables[0]["n"] == 0  # nothing was healed through it
