"""The fault suite's servers: Apache Kafka (tier 2) with a log directory of its own, shared by a
module's tests (each has its own topics and group), and one PostgreSQL server — the first of
``SCHEMAHEAL_TEST_PG`` only, to keep the suite's CI time down."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.apache_kafka import ApacheKafka
from tests.conftest import BROKERS, SERVERS
from tests.faults.cluster import Stream
from worker.embedded.postgres import LocalPostgres


@pytest.fixture(scope="module")
def apache() -> Iterator[ApacheKafka]:
    if "apache" not in BROKERS:
        pytest.skip("the fault suite runs on Apache Kafka: SCHEMAHEAL_TEST_KAFKA=apache")
    log_dir = Path(tempfile.mkdtemp(prefix="schemaheal-kafka-logs-"))
    broker = ApacheKafka(log_dir=log_dir).start()
    yield broker
    broker.remove()
    shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    server = LocalPostgres(SERVERS[0]).start()
    yield server
    server.stop()


async def make_stream(
    broker: ApacheKafka, server: LocalPostgres, directory: Path, count: int
) -> Stream:
    name = f"f{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server.dsn)
    try:
        for i in range(count):
            await admin.execute(f"CREATE DATABASE {name}_db{i}")
    finally:
        await admin.close()
    databases = {f"db{i}": server.dsn_for(f"{name}_db{i}") for i in range(count)}
    path = directory / "databases"
    path.write_text("".join(f"{alias}={dsn}\n" for alias, dsn in databases.items()))
    return Stream(bootstrap=broker.bootstrap_servers, name=name, databases=databases,
                  databases_file=path)  # fmt: skip


@pytest.fixture
async def stream(apache: ApacheKafka, postgres: LocalPostgres, tmp_path: Path) -> Stream:
    """Five fresh databases, fresh topics and a fresh group."""
    return await make_stream(apache, postgres, tmp_path, 5)
