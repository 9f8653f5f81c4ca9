"""Shared fixtures: real PostgreSQL servers (18 from the wheel, 15 from Debian) and fresh databases.

Each server starts once per test session on a free 127.0.0.1 port. ``database`` gives every test
its own new database on that server, dropped afterwards, so tests never see each other's tables.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.kafka import KafkaServer, start_kafka
from tests.pg import selected_servers
from worker.embedded.postgres import LocalPostgres

SERVERS = selected_servers()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/cases/*/expected.sql from the planner's output",
    )


@pytest.fixture(scope="session", params=SERVERS, ids=[f"pg{s.version}" for s in SERVERS])
def pg_server(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    server = LocalPostgres(request.param).start()
    yield server
    server.stop()


class FreshDatabase:
    """A fresh database: its DSN, and the server it lives on."""

    def __init__(self, server: LocalPostgres, name: str) -> None:
        self.server = server
        self.name = name
        self.dsn = server.dsn_for(name)
        self.version = int(server.binaries.version)

    async def execute(self, sql: str) -> None:
        """Run setup SQL as the superuser, with the default search_path."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(server: LocalPostgres) -> AsyncIterator[FreshDatabase]:
    """A new database on ``server``, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    yield FreshDatabase(server, name)
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
async def database(pg_server: LocalPostgres) -> AsyncIterator[FreshDatabase]:
    async with fresh_database(pg_server) as fresh:
        yield fresh


BROKERS = os.environ.get("SCHEMAHEAL_TEST_KAFKA", "tansu").split(",")


@pytest.fixture(params=BROKERS)
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaServer]:
    """A fresh broker per test: Tansu (tier 1) and, where a JDK is present, Apache Kafka 4."""
    server = start_kafka(request.param)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


ROOT = Path(__file__).parent.parent
os.environ.setdefault("SCHEMAHEAL_ROOT", str(ROOT))
