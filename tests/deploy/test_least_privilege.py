"""The worker runs under exactly the role deploy/least-privilege.sql creates: no superuser."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import ensure_schema, load_manifest
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings
from worker.engine.connection import connect
from worker.engine.heal import Outcome, heal

ROOT = Path(__file__).parents[2]


@pytest.fixture
async def least_privilege(database: FreshDatabase) -> str:
    """The seed's database in its old shape, owned by ``nexus_owner``, and the DSN of the
    ``schemaheal`` role that deploy/least-privilege.sql creates."""
    sql = (ROOT / "deploy" / "least-privilege.sql").read_text().replace("nexus", database.name)
    sql = sql.replace(f"{database.name}_owner", "nexus_owner").replace(
        f"{database.name}_app", "nexus_app"
    )
    await database.execute((ROOT / "examples" / "nexus" / "old_shape.sql").read_text())
    await database.execute(
        "DO $$ BEGIN "
        "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nexus_owner') THEN CREATE ROLE nexus_owner NOLOGIN; END IF; "
        "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nexus_app') THEN CREATE ROLE nexus_app NOLOGIN; END IF; "
        "END $$;"
        + "".join(f"ALTER TABLE {t} OWNER TO nexus_owner;" for t in
                  ("tenants", "tools", "credentials", "chat_media", "chat_conversations", "chat_messages"))
    )  # fmt: skip
    exists = await database.fetch("SELECT 1 FROM pg_roles WHERE rolname = 'schemaheal'")
    if exists:  # roles are per cluster: another test on this server made it already
        sql = sql.replace(
            "CREATE ROLE schemaheal LOGIN PASSWORD 'change-me' NOSUPERUSER NOCREATEDB NOCREATEROLE;",
            "",
        )
    await database.execute(sql)
    role = await database.fetch(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'schemaheal'"
    )
    assert tuple(role[0]) == (False, False, False)

    return database.server.dsn_for(database.name, user="schemaheal")


async def test_heal_runs_as_the_least_privilege_role(
    database: FreshDatabase, least_privilege: str
) -> None:
    conn = await connect(least_privilege)
    try:
        assert await conn.fetchval("SELECT current_user") == "schemaheal"
        result = await heal(
            conn, load_manifest((ROOT / "examples" / "nexus" / "manifest.json").read_bytes())
        )
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    owner = await database.fetch(
        "SELECT tableowner FROM pg_tables WHERE tablename = 'business_assets'"
    )
    assert owner[0]["tableowner"] == "schemaheal"
    grants = await database.fetch(
        "SELECT privilege_type FROM information_schema.role_table_grants "
        "WHERE table_name = 'business_assets' AND grantee = 'nexus_app' ORDER BY 1"
    )
    assert [g["privilege_type"] for g in grants] == ["DELETE", "INSERT", "SELECT", "UPDATE"]


async def test_the_worker_serves_a_boot_as_the_least_privilege_role(
    kafka: KafkaServer, database: FreshDatabase, least_privilege: str
) -> None:
    """The whole worker, not only the engine: its start-up checks (proxy detection, readiness),
    its ledger, its advisory locks and a heal through Kafka, all as ``schemaheal``."""
    settings = worker_settings(kafka, database, databases={"nexus": least_privilege})
    async with running_worker(settings):
        reply = await ensure_schema(
            (ROOT / "examples" / "nexus" / "manifest.json").read_bytes(),
            bootstrap_servers=kafka.bootstrap_servers,
            timeout_s=60,
        )
    assert reply.outcome == "healed" and len(reply.statements) == 10
    rows = await database.fetch(
        "SELECT h.outcome, t.tableowner FROM schemaheal.heals h, pg_tables t "
        "WHERE t.tablename = 'business_assets' AND h.request_id = $1",
        reply.request_id,
    )
    assert [tuple(r) for r in rows] == [("healed", "schemaheal")]


async def test_comments_on_existing_tables_as_the_least_privilege_role(
    database: FreshDatabase, least_privilege: str
) -> None:
    """Issue 15.2: a table comment on an existing table crashed the heal; here on a table
    another role owns, which ``schemaheal`` may comment on through its membership."""
    import json

    document = json.loads((ROOT / "examples" / "nexus" / "manifest.json").read_text())
    [tenants] = [t for t in document["tables"] if t["name"] == "tenants"]
    tenants["comment"] = "one row per customer"
    tenants["columns"][0]["comment"] = "the tenant's key"
    conn = await connect(least_privilege)
    try:
        result = await heal(conn, load_manifest(json.dumps(document)))
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    comments = await database.fetch(
        "SELECT obj_description('public.tenants'::regclass, 'pg_class') AS t, "
        "col_description('public.tenants'::regclass, 1) AS c"
    )
    assert tuple(comments[0]) == ("one row per customer", "the tenant's key")
    assert "SetComment public.tenants" in [s.change for s in result.applied]
