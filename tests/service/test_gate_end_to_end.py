"""The boot gate end to end: real broker, real PostgreSQL, the worker, the boot client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from contracts import SchemaRejected, ensure_schema, load_manifest, request_schema
from contracts.events import REQUEST_TYPE, decode_headers, event_headers
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import produce, read_topic, running_worker, worker_settings
from tests.service.records import request_body

NEXUS = Path(__file__).parents[2] / "examples" / "nexus"
MANIFEST = (NEXUS / "manifest.json").read_bytes()


async def columns_of(db: FreshDatabase, table: str) -> set[str]:
    rows = await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = $1", table,
    )  # fmt: skip
    return {r["column_name"] for r in rows}


async def test_a_drifted_database_is_healed_through_kafka(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with running_worker(worker_settings(kafka, database)):
        reply = await ensure_schema(
            MANIFEST, bootstrap_servers=kafka.bootstrap_servers, instance="pod-a", timeout_s=60
        )
    assert reply.outcome == "healed"
    assert reply.service == "orchestrator"
    assert reply.instance == "pod-a"
    assert len(reply.statements) == 10
    assert {"scope", "category"} <= await columns_of(database, "credentials")
    assert "openai_api_key" in await columns_of(database, "tenants")
    assert "customer_id" in await columns_of(database, "chat_conversations")


async def test_fifty_replicas_at_once_get_fifty_replies_and_the_ddl_runs_once(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with running_worker(worker_settings(kafka, database)):
        replies = await asyncio.gather(*(
            ensure_schema(MANIFEST, bootstrap_servers=kafka.bootstrap_servers, instance=f"pod-{i}", timeout_s=90)
            for i in range(50)
        ))  # fmt: skip
    assert len({r.request_id for r in replies}) == 50
    assert all(r.may_start for r in replies)
    assert sorted({r.instance for r in replies}) == sorted(f"pod-{i}" for i in range(50))
    heals = await database.fetch(
        "SELECT id FROM schemaheal.heals WHERE served_by IS NULL AND outcome = 'healed'"
    )
    assert len(heals) == 1
    statements = await database.fetch("SELECT sql FROM schemaheal.statements")
    assert len(statements) == 10 == len({s["sql"] for s in statements})
    rows = await database.fetch("SELECT count(DISTINCT request_id) AS n FROM schemaheal.heals")
    assert rows[0]["n"] == 50  # every reply has its ledger row


async def test_poison_records_are_answered_dead_lettered_and_the_next_request_is_healed(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    async with running_worker(worker_settings(kafka, database)):
        # 1. not even a CloudEvent (nobody to answer), with binary and null header values
        await produce(
            kafka,
            "service.starting",
            b"\x00\xffgarbage",
            [("x-bin", b"\xff\xfe"), ("x-null", None)],
        )
        # 2. identifiable but unparseable: must be answered `rejected`
        headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="poison-2")
        await produce(kafka, "service.starting", b"{not json", headers)
        # 3. a hostile manifest
        hostile = request_body()
        hostile["manifest"]["tables"][0]["columns"][1]["type"] = "text; DROP TABLE tenants"
        headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="poison-3")
        await produce(kafka, "service.starting", json.dumps(hostile).encode(), headers)
        # 4. then a good request, from the boot client
        reply = await ensure_schema(
            MANIFEST, bootstrap_servers=kafka.bootstrap_servers, timeout_s=60
        )
        rejected = await read_topic(kafka, "schema.healed", 3)
        dead = await read_topic(kafka, "service.starting.dlq", 3)
    assert reply.outcome == "healed"
    answers = {decode_headers(r.headers)["correlation_id"]: json.loads(r.value) for r in rejected}
    assert answers["poison-2"]["outcome"] == "rejected"
    assert answers["poison-2"]["error"]["code"] == "not-json"
    assert answers["poison-3"]["error"]["code"] == "invalid-manifest"
    assert "columns[1].type" in answers["poison-3"]["error"]["message"]
    assert [r.value for r in dead] == [
        b"\x00\xffgarbage",
        b"{not json",
        json.dumps(hostile).encode(),
    ]
    first = dict(dead[0].headers)
    assert first["x-bin"] == b"\xff\xfe"  # original headers copied byte for byte
    assert first["x-null"] is None
    assert first["x-schemaheal-error-code"] == b"not-a-cloudevent"
    assert (
        await database.fetch("SELECT * FROM schemaheal.heals WHERE request_id LIKE 'poison%'") == []
    )
    assert "tenants" in {
        r["tablename"] for r in await database.fetch("SELECT tablename FROM pg_tables")
    }


async def test_a_redelivered_request_is_answered_from_the_ledger_without_ddl(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    body = request_body()
    headers = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="same-id",
                            extra={"correlation_id": "same-id"})  # fmt: skip
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    async with running_worker(worker_settings(kafka, database)):
        await produce(kafka, "service.starting", json.dumps(body).encode(), headers)
        [first] = await read_topic(kafka, "schema.healed", 1)
        await produce(kafka, "service.starting", json.dumps(body).encode(), headers)
        _, second = await read_topic(kafka, "schema.healed", 2)
    one, two = json.loads(first.value), json.loads(second.value)
    assert (one["outcome"], one["from_ledger"]) == ("healed", False)
    assert (two["outcome"], two["from_ledger"]) == ("healed", True)
    assert [s["sql"] for s in two["statements"]] == [s["sql"] for s in one["statements"]]
    heals = await database.fetch("SELECT count(*) AS n FROM schemaheal.heals")
    assert heals[0]["n"] == 1


async def test_an_unknown_database_alias_is_rejected_and_nothing_is_touched(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    manifest = load_manifest({**json.loads(MANIFEST), "database": "billing"})
    async with running_worker(worker_settings(kafka, database)):
        with pytest.raises(SchemaRejected, match=r"not configured"):
            await ensure_schema(manifest, bootstrap_servers=kafka.bootstrap_servers, timeout_s=60)
        reply = await request_schema(
            manifest, bootstrap_servers=kafka.bootstrap_servers, timeout_s=60
        )
    assert reply.error is not None
    assert reply.error.code == "unknown-database"
    assert await database.fetch("SELECT 1 FROM pg_namespace WHERE nspname = 'schemaheal'") == []
