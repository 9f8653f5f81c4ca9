"""The no-drift fast path: taken when nothing changed, never when anyone changed the schema.

Each case heals a manifest covering every kind of object, heals again (the fast path answers),
then changes one object behind the worker's back with plain SQL and heals a third time: the
full inspection must run and see the change (it heals it back, or reports the drift).
"""

from __future__ import annotations

import pytest

from contracts import Manifest, load_manifest
from tests.conftest import FreshDatabase
from worker.engine import fingerprint
from worker.engine.connection import connect
from worker.engine.heal import HealResult, Outcome, heal

MANIFEST = {
    "service": "shop",
    "database": "main",
    "schemas": ["shop"],
    "extensions": [{"name": "citext", "schema": "shop"}],
    "enums": [{"schema": "shop", "name": "mood", "labels": ["happy", "sad"]}],
    "sequences": [{"schema": "shop", "name": "counter", "start": 10}],
    "tables": [
        {"schema": "shop", "name": "owners", "comment": "people",
         "columns": [{"name": "id", "type": "bigint", "nullable": False}],
         "primary_key": {"columns": ["id"]}},
        {"schema": "shop", "name": "items",
         "columns": [
             {"name": "id", "type": "bigint", "nullable": False},
             {"name": "name", "type": "text", "nullable": False, "comment": "shown to people"},
             {"name": "email", "type": "shop.citext"},
             {"name": "mood", "type": "shop.mood", "default": "'happy'"},
             {"name": "number", "type": "bigint", "default": "nextval('shop.counter')"},
             {"name": "owner_id", "type": "bigint"},
             {"name": "price", "type": "numeric(10,2)", "default": "0"}],
         "primary_key": {"columns": ["id"]},
         "unique": [{"name": "items_name_key", "columns": ["name"]}],
         "checks": [{"name": "items_price_check", "expression": "price >= 0"}],
         "foreign_keys": [{"name": "items_owner_fk", "columns": ["owner_id"],
                           "references": {"schema": "shop", "table": "owners",
                                          "columns": ["id"]}}],
         "indexes": [{"name": "items_mood_idx", "elements": [{"column": "mood"}]}]},
    ],
}  # fmt: skip

BEHIND_THE_BACK = {
    "column dropped": "ALTER TABLE shop.items DROP COLUMN price",
    "column added": "ALTER TABLE shop.items ADD COLUMN extra int",
    "column type": "ALTER TABLE shop.items ALTER COLUMN owner_id TYPE integer",
    "default dropped": "ALTER TABLE shop.items ALTER COLUMN price DROP DEFAULT",
    "default changed": "ALTER TABLE shop.items ALTER COLUMN price SET DEFAULT 1",
    "not null dropped": "ALTER TABLE shop.items ALTER COLUMN name DROP NOT NULL",
    "index dropped": "DROP INDEX shop.items_mood_idx",
    "index added": "CREATE INDEX other_idx ON shop.items (owner_id)",
    "unique constraint dropped": "ALTER TABLE shop.items DROP CONSTRAINT items_name_key",
    "check constraint dropped": "ALTER TABLE shop.items DROP CONSTRAINT items_price_check",
    "foreign key dropped": "ALTER TABLE shop.items DROP CONSTRAINT items_owner_fk",
    "column comment changed": "COMMENT ON COLUMN shop.items.name IS 'something else'",
    "table comment dropped": "COMMENT ON TABLE shop.owners IS NULL",
    "enum label added": "ALTER TYPE shop.mood ADD VALUE 'angry'",
    "enum label renamed": "ALTER TYPE shop.mood RENAME VALUE 'sad' TO 'blue'",
    "sequence altered": "ALTER SEQUENCE shop.counter INCREMENT BY 5",
    "sequence owner set": "ALTER SEQUENCE shop.counter OWNED BY shop.items.number",
    "sequence dropped": "ALTER TABLE shop.items ALTER COLUMN number DROP DEFAULT; "
    "DROP SEQUENCE shop.counter",
    "extension moved": "CREATE SCHEMA elsewhere; ALTER EXTENSION citext SET SCHEMA elsewhere",
    "table dropped": "DROP TABLE shop.items",
    "schema renamed": "ALTER SCHEMA shop RENAME TO shop_old",
}
#: changes the engine tolerates (a label appended to an enum, an owner it was not told about):
#: the fast path must still step aside, but the full inspection finds nothing to say
TOLERATED = {"enum label added", "sequence owner set"}


def fast(result: HealResult) -> bool:
    """Answered from the fingerprint: the catalog was not inspected."""
    return "fingerprint" in result.timings and "inspect_plan" not in result.timings


async def heal_once(database: FreshDatabase, manifest: Manifest) -> HealResult:
    conn = await connect(database.dsn)
    try:
        return await heal(conn, manifest)
    finally:
        await conn.close()


async def healed_and_verified(database: FreshDatabase) -> tuple[Manifest, HealResult]:
    manifest = load_manifest(MANIFEST)
    first = await heal_once(database, manifest)
    assert first.outcome is Outcome.HEALED, first.error_message
    assert not fast(first)
    second = await heal_once(database, manifest)
    assert second.outcome is Outcome.UNCHANGED, second.error_message
    return manifest, second


async def test_a_repeated_verified_manifest_is_answered_from_the_fingerprint(
    database: FreshDatabase,
) -> None:
    manifest, second = await healed_and_verified(database)
    # the first heal stored the fingerprint it took before its verifying inspection
    assert fast(second)
    third = await heal_once(database, manifest)
    assert third.outcome is Outcome.UNCHANGED
    assert fast(third)


async def test_data_statistics_and_freezing_do_not_defeat_the_fast_path(
    database: FreshDatabase,
) -> None:
    manifest, _ = await healed_and_verified(database)
    await heal_once(database, manifest)
    await database.execute(
        "INSERT INTO shop.owners SELECT g FROM generate_series(1, 500) g;"
        "INSERT INTO shop.items (id, name, owner_id) SELECT g, 'n' || g, g "
        "  FROM generate_series(1, 500) g;"
        "ANALYZE shop.items; ANALYZE shop.owners; SELECT nextval('shop.counter');"
    )
    await database.execute("VACUUM (FREEZE, ANALYZE) pg_class, pg_attribute, shop.items")
    result = await heal_once(database, manifest)
    assert result.outcome is Outcome.UNCHANGED
    assert fast(result)


@pytest.mark.parametrize("change", sorted(BEHIND_THE_BACK))
async def test_any_ddl_since_the_verification_is_noticed(
    database: FreshDatabase, change: str
) -> None:
    manifest, verified = await healed_and_verified(database)
    assert fast(await heal_once(database, manifest))
    await database.execute(BEHIND_THE_BACK[change])
    noticed = await heal_once(database, manifest)
    assert not fast(noticed), f"{change}: answered from a stale fingerprint"
    # the full inspection saw it: it healed it back or reports a difference it leaves alone
    if change not in TOLERATED:
        assert noticed.outcome is not Outcome.UNCHANGED or noticed.drift != verified.drift
    # verified again: fast again; blocked or failed: never cached, inspected every time
    assert fast(await heal_once(database, manifest)) is noticed.satisfied


async def test_a_rolled_back_ddl_changed_nothing_and_keeps_the_fast_path(
    database: FreshDatabase,
) -> None:
    manifest, _ = await healed_and_verified(database)
    await database.execute("BEGIN; ALTER TABLE shop.items DROP COLUMN price; ROLLBACK")
    assert fast(await heal_once(database, manifest))


def test_a_fingerprint_older_than_the_xid_wraparound_horizon_is_not_trusted() -> None:
    now = fingerprint.Fingerprint(value="18:10:42", horizon=5_000_000_000)
    same = fingerprint.Fingerprint(value="18:10:42", horizon=4_000_000_000)
    old = fingerprint.Fingerprint(value="18:10:42", horizon=5_000_000_000 - 2**31)
    other = fingerprint.Fingerprint(value="18:11:42", horizon=4_000_000_000)
    assert fingerprint.trusted(fingerprint.Known(current=now, verified=same))
    assert not fingerprint.trusted(fingerprint.Known(current=now, verified=old))
    assert not fingerprint.trusted(fingerprint.Known(current=now, verified=other))
    assert not fingerprint.trusted(fingerprint.Known(current=now))


def test_the_key_changes_with_the_manifest() -> None:
    assert fingerprint.engine_key("a") != fingerprint.engine_key("b")
