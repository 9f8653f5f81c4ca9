"""PostgreSQL stopped with ``pg_ctl stop -m immediate`` mid-heal and started again: the request
is answered after the restart, not lost (issue 14: recording the heal on the dead connection
raised ``InterfaceError: connection is closed`` and the batch was skipped by a later commit)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from contracts.events import REQUEST_TYPE, event_headers
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import produce, read_until, running_worker, worker_settings
from tests.service.records import request_body
from worker.embedded.postgres import LocalPostgres


@pytest.fixture
def own_server(pg_server: LocalPostgres) -> Iterator[LocalPostgres]:
    """A server of the same version that this test alone may crash."""
    server = LocalPostgres(pg_server.binaries).start()
    yield server
    server.stop()


async def wait_for(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_a_request_healing_when_postgres_crashes_is_answered_after_the_restart(
    kafka: KafkaServer, own_server: LocalPostgres
) -> None:
    admin = await asyncpg.connect(own_server.dsn)
    await admin.execute("CREATE DATABASE nexus")
    await admin.close()
    database = FreshDatabase(own_server, "nexus")
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY); "
                           "INSERT INTO tenants SELECT generate_series(1, 1000)")  # fmt: skip
    settings = worker_settings(kafka, database, lock_timeout_ms=300)
    holder = await asyncpg.connect(database.dsn)
    await holder.execute("BEGIN; LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")

    async def mid_heal() -> bool:  # the worker holds its schema lock and waits for the table
        # (not on the holder: its transaction would see one snapshot of pg_stat_activity)
        rows = await database.fetch(
            "SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND a.application_name = 'schemaheal worker'"
        )
        return bool(rows)

    value = json.dumps(request_body()).encode()
    headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="during-crash")
    async with running_worker(settings):
        await produce(kafka, settings.request_topic, value, list(headers))
        await wait_for(mid_heal, 60)
        own_server.crash()
        holder.terminate()
        await asyncio.sleep(10)  # the worker finds the database gone, and keeps trying
        own_server.restart()
        restarted = time.monotonic()
        await read_until(kafka, settings.reply_topic, lambda r: len(r) >= 1, 120)
        answered_after = time.monotonic() - restarted
        await asyncio.sleep(2)  # a duplicate, if any, would come now
        replies = await read_until(kafka, settings.reply_topic, lambda r: len(r) >= 1, 10)
    outcomes = [json.loads(r.value)["outcome"] for r in replies]
    print(f"\ncrash mid-heal, down 10 s: replies {outcomes}, {answered_after:.1f} s after restart")
    assert set(outcomes) == {"healed"}
    rows = await database.fetch("SELECT outcome FROM schemaheal.heals WHERE request_id = $1 "
                                "ORDER BY id", "during-crash")  # fmt: skip
    finished = [r["outcome"] for r in rows if r["outcome"] != "interrupted"]
    assert finished == ["healed"]  # and a heal the crash cut mid-apply, if any, was closed
    columns = await database.fetch("SELECT count(*) AS n FROM tenants")
    assert columns[0]["n"] == 1000
