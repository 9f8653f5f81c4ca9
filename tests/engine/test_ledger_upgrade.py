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
from worker.engine.heal import heal


async def test_a_ledger_from_before_the_intent_rows_is_upgraded_in_place(
    database: FreshDatabase,
) -> None:
    old = ledger._ddl(ledger.DEFAULT_SCHEMA).split("ALTER TABLE")[0]  # the layout before
    await database.execute(old)
    await database.execute(
        "INSERT INTO schemaheal.heals (manifest_hash, schemas, outcome, started_at) "
        "VALUES ('old', '{public}', 'healed', now())"
    )
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(json.dumps(manifest(TENANTS))))
    finally:
        await conn.close()
    assert result.outcome.value == "healed", result.error_message
    rows = await database.fetch("SELECT manifest_hash, outcome, planned FROM schemaheal.heals "
                                "ORDER BY id")  # fmt: skip
    assert (rows[0]["manifest_hash"], rows[0]["outcome"]) == ("old", "healed")
    assert rows[1]["outcome"] == "healed" and rows[1]["planned"] == len(result.applied) > 0
    index = await database.fetch("SELECT 1 FROM pg_indexes WHERE indexname = 'heals_running_idx'")
    assert index
