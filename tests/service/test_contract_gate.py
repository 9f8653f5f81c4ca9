"""Contract through the gate (issue 19): boots make leases, heartbeats keep them, service.stopped
ends them; the worker's background runner then contracts the migration — the trigger without
approval, the old column only once the access policy approves column-drop — and an old replica
booting after contract is blocked with the reason. Short TTL and grace; no long sleeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from contracts import keep_alive, load_manifest, request_schema
from contracts.events import SchemaHealed
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import trigger_and_columns
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings
from worker.engine import backfill_store, lease_store
from worker.engine.connection import connect

pytestmark = pytest.mark.postgres
ID = column("id", "integer", nullable=False)
OLD = load_manifest(manifest(table("users", ID, column("name", nullable=False),
                                   primary_key=pk("id"))))  # fmt: skip
NEW = load_manifest(manifest(table("users", ID, column("full_name", nullable=False,
                                   renamed_from="name"), primary_key=pk("id"))))  # fmt: skip
TTL_S, GRACE_S = 2.0, 1.0


def policy(path: Path, *hazards: str) -> None:
    grant = {"schemas": ["public"], "hazards": list(hazards)}
    path.write_text(json.dumps({"services": {"orchestrator": {"databases": {"nexus": grant}}}}))


async def boot(kafka: KafkaServer, wanted: Any, instance: str) -> SchemaHealed:
    return await request_schema(
        wanted, bootstrap_servers=kafka.bootstrap_servers, instance=instance, timeout_s=90
    )


async def until(database: FreshDatabase, check: Callable[[Any], Awaitable[bool]]) -> None:
    """Poll ``check(conn)`` every 0.1 s, at most 30 s."""
    conn = await connect(database.dsn)
    try:
        for _ in range(300):
            if await check(conn):
                return
            await asyncio.sleep(0.1)
        raise AssertionError("timed out")
    finally:
        await conn.close()


async def test_leases_heartbeats_stop_and_contract_through_the_gate(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute(
        "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO users SELECT i, 'user ' || i FROM generate_series(1, 200) AS i"
    )
    access = tmp_path / "policy.json"
    policy(access)  # column-drop not approved
    settings = worker_settings(kafka, database, access_policy=access, lease_ttl_s=TTL_S,
                               contract_grace_s=GRACE_S, backfill_poll_s=0.2)  # fmt: skip
    async with running_worker(settings):
        assert (await boot(kafka, OLD, "old-1")).outcome == "unchanged"
        healed = await boot(kafka, NEW, "new-1")
        assert healed.outcome == "healed"
        (migration_id,) = [m.id for m in healed.migrations]

        async def expanded(conn: Any) -> bool:
            record = await backfill_store.progress(conn, migration_id)
            return record is not None and record.state == backfill_store.EXPANDED

        await until(database, expanded)
        # old-1 keeps its lease by heartbeats well past its TTL and the grace
        async with keep_alive(
            service="orchestrator",
            instance="old-1",
            database="nexus",
            bootstrap_servers=kafka.bootstrap_servers,
            interval_s=0.5,
        ):
            await asyncio.sleep(TTL_S + GRACE_S + 1.0)
            assert (await trigger_and_columns(database))[0], "contracted while old-1 runs"

        # leaving keep_alive sent service.stopped: the lease ends, contract runs after the grace
        async def stopped(conn: Any) -> bool:
            leases = {lease.instance: lease for lease in await lease_store.leases(conn)}
            return leases["old-1"].ended_at is not None

        await until(database, stopped)

        async def contracted(conn: Any) -> bool:
            record = (await lease_store.contract_records(conn)).get(migration_id)
            return record is not None and record.column_kept is not None

        await until(database, contracted)
        trigger, columns = await trigger_and_columns(database)
        assert not trigger and {"name", "full_name"} <= columns  # kept: not approved
        again = await boot(kafka, NEW, "new-2")
        assert again.outcome == "unchanged", again
        assert "retired, unused, kept: approve column-drop to remove" in (
            again.migrations[0].relies_on
        )
        # an old replica booting after contract is blocked, with the reason
        late = await boot(kafka, OLD, "old-2")
        assert late.outcome == "blocked" and late.error is not None
        assert late.error.code == "version-retired"
        assert "this version is retired" in late.error.message
        # approved: the next rounds drop the old column (after old-2's lease, ended, and grace)
        policy(access, "column-drop")

        async def dropped(conn: Any) -> bool:
            record = (await lease_store.contract_records(conn)).get(migration_id)
            return record is not None and record.column_dropped_at is not None

        await until(database, dropped)
        assert (await trigger_and_columns(database))[1] == {"id", "full_name"}
        assert (await boot(kafka, NEW, "new-3")).outcome == "unchanged"
