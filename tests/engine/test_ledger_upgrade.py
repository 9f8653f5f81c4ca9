"""The ledger's layout grows in place: a ledger written by a worker from before the intent
rows (no ``planned`` column, no index of running heals) is upgraded by the next heal, its rows
kept, and the heal records its intent in it."""

from __future__ import annotations

import json

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import TENANTS, manifest
from worker.engine import ledger
from worker.engine.connection import connect
from worker.engine.heal import HealResult, heal


async def _heal_over(database: FreshDatabase, layout: str, rows: str) -> HealResult:
    """A heal of TENANTS over a ledger of an older ``layout`` holding ``rows``."""
    await database.execute(layout)
    await database.execute(rows)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(json.dumps(manifest(TENANTS))))
    finally:
        await conn.close()
    assert result.outcome.value == "healed", result.error_message
    return result


async def test_a_ledger_from_before_the_intent_rows_is_upgraded_in_place(
    database: FreshDatabase,
) -> None:
    old = ledger._ddl(ledger.DEFAULT_SCHEMA).split("ALTER TABLE")[0]  # the layout before
    result = await _heal_over(database, old, "INSERT INTO schemaheal.heals (manifest_hash, "
                              "schemas, outcome, started_at) VALUES ('old', '{public}', 'healed', now())")  # fmt: skip
    rows = await database.fetch("SELECT manifest_hash, outcome, planned FROM schemaheal.heals "
                                "ORDER BY id")  # fmt: skip
    assert (rows[0]["manifest_hash"], rows[0]["outcome"]) == ("old", "healed")
    assert rows[1]["outcome"] == "healed" and rows[1]["planned"] == len(result.applied) > 0
    index = await database.fetch("SELECT 1 FROM pg_indexes WHERE indexname = 'heals_running_idx'")
    assert index


async def test_a_ledger_from_before_the_statement_states_is_upgraded_in_place(
    database: FreshDatabase,
) -> None:
    """Layout 2 (intent rows, no statement states): its statement rows read as applied, and the
    next heal writes its planned statements into it."""
    old = ledger._ddl(ledger.DEFAULT_SCHEMA).split("-- layout 3")[0]
    assert "catalog_check" not in old and "planned integer" in old
    result = await _heal_over(
        database,
        old,
        "INSERT INTO schemaheal.heals (manifest_hash, schemas, outcome, started_at, planned) "
        "VALUES ('old', '{public}', 'healed', now(), 1);"
        "INSERT INTO schemaheal.statements (heal_id, ordinal, change, sql, hazards, started_at, "
        "duration_ms, retries) VALUES (1, 1, 'AddSchema public', 'CREATE SCHEMA x', '{}', now(), "
        "1.5, 0)",
    )
    rows = await database.fetch(
        "SELECT heal_id, sql, state, duration_ms, catalog_check FROM schemaheal.statements "
        "ORDER BY heal_id, ordinal"
    )
    assert (rows[0]["sql"], rows[0]["state"], rows[0]["duration_ms"]) == ("CREATE SCHEMA x",
                                                                          "applied", 1.5)  # fmt: skip
    new = [r for r in rows if r["heal_id"] == result.ledger_id]
    assert [r["state"] for r in new] == ["applied"] * len(result.applied)
    assert [r["sql"] for r in new] == [a.sql for a in result.applied]
    nullable = await database.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'schemaheal.statements'::regclass "
        "AND attname IN ('started_at', 'duration_ms') AND NOT attnotnull ORDER BY 1"
    )
    assert [r["attname"] for r in nullable] == ["duration_ms", "started_at"]  # planned: not yet


async def test_a_ledger_from_before_the_migrations_column_is_upgraded_in_place(
    database: FreshDatabase,
) -> None:
    """Layout 3 (statement states, no ``heals.migrations``): its rows read as having started no
    migration, and the next heal writes its own list."""
    old = ledger._ddl(ledger.DEFAULT_SCHEMA).split("-- layout 4")[0]
    assert "catalog_check" in old and "migrations jsonb" not in old
    result = await _heal_over(database, old, "INSERT INTO schemaheal.heals (manifest_hash, "
                              "schemas, outcome, started_at) VALUES ('old', '{public}', 'healed', now())")  # fmt: skip
    rows = await database.fetch("SELECT id, manifest_hash, migrations::text FROM schemaheal.heals "
                                "ORDER BY id")  # fmt: skip
    assert [(r["manifest_hash"], r["migrations"]) for r in rows] == [
        ("old", "[]"), (result.manifest_hash, "[]"),
    ]  # fmt: skip
