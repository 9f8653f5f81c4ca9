"""The fingerprint and schemas: another service's schema never costs a full inspection, while
every schema whose name the inspected texts print, or that the manifest names, is watched.

Connections pin ``search_path = pg_catalog``, so inspection prints every object outside
``pg_catalog`` with its schema's name: renaming the schema of a function a default calls, of a
type a column uses, of a table a foreign key points at, of a sequence a default uses (...)
changes what inspection returns, and the next boot must inspect in full; renaming a schema
nothing names must not. Here those objects live outside the manifest's schema, used by columns,
a check and a foreign key the manifest does not declare (kept: informational drift, so the heal
is verified with them in place). Partitions of a declared table may live in another schema too:
attaching, detaching or renaming one at any depth, or renaming its schema, is noticed.
"""

from __future__ import annotations

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.engine.test_boot_check import check
from tests.engine.test_fingerprint import fast, heal_once, healed_and_verified
from worker.engine import fingerprint
from worker.engine.connection import connect
from worker.engine.heal import Outcome
from worker.engine.inspect import inspect

pytestmark = pytest.mark.postgres

#: another service, in a schema of its own
BILLING = {
    "service": "billing",
    "database": "main",
    "schemas": ["billing"],
    "tables": [{"schema": "billing", "name": "invoices", "primary_key": {"columns": ["id"]},
                "columns": [{"name": "id", "type": "bigint", "nullable": False}]}],
}  # fmt: skip

#: objects in other schemas that shop.items names through columns, a check and a key it does
#: not declare
NAMED_ELSEWHERE = """
    CREATE SCHEMA x_function; CREATE SCHEMA x_enum; CREATE SCHEMA x_domain;
    CREATE SCHEMA x_table; CREATE SCHEMA x_sequence; CREATE SCHEMA x_search;
    CREATE SCHEMA x_checked; CREATE SCHEMA x_extension; CREATE SCHEMA x_nothing;
    CREATE FUNCTION x_function.one() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1';
    CREATE TYPE x_enum.tone AS ENUM ('low', 'high');
    CREATE DOMAIN x_domain.positive AS integer CHECK (VALUE > 0);
    CREATE TABLE x_table.parents (id integer PRIMARY KEY);
    CREATE SEQUENCE x_sequence.numbers;
    CREATE TEXT SEARCH CONFIGURATION x_search.plain (COPY = simple);
    CREATE TABLE x_checked.other (id integer);
    CREATE EXTENSION hstore SCHEMA x_extension;
    CREATE TABLE x_nothing.unrelated (id integer);
    ALTER TABLE shop.items ADD COLUMN called integer DEFAULT x_function.one(),
        ADD COLUMN tone x_enum.tone, ADD COLUMN amount x_domain.positive,
        ADD COLUMN parent_id integer REFERENCES x_table.parents,
        ADD COLUMN numbered bigint DEFAULT nextval('x_sequence.numbers'),
        ADD COLUMN words tsvector DEFAULT to_tsvector('x_search.plain'::regconfig, ''),
        ADD CONSTRAINT items_not_other CHECK (tableoid <> 'x_checked.other'::regclass);
"""

#: each rename, and whether inspection's answer changes with it
RENAMED = {
    "schema of a function a default calls": ("x_function", True),
    "schema of an enum a column uses": ("x_enum", True),
    "schema of a domain a column uses": ("x_domain", True),
    "schema of a table a foreign key points at": ("x_table", True),
    "schema of a sequence a default uses": ("x_sequence", True),
    "schema of a text search configuration a default uses": ("x_search", True),
    "schema of a table a check names": ("x_checked", True),
    "schema of an extension (inspection lists them all)": ("x_extension", True),
    "schema nothing of the manifest's names": ("x_nothing", False),
}


async def test_another_service_s_new_schema_keeps_the_fast_path(database: FreshDatabase) -> None:
    manifest, _ = await healed_and_verified(database)
    billing = await heal_once(database, load_manifest(BILLING))  # creates its schema and table
    assert billing.outcome is Outcome.HEALED, billing.error_message
    after = await heal_once(database, manifest)
    assert after.outcome is Outcome.UNCHANGED
    assert fast(after), "another service's schema made shop's manifest inspect again"
    conn = await connect(database.dsn)
    try:  # and so does the boot check, the gate's one-statement answer
        await database.execute("CREATE SCHEMA reports; CREATE TABLE reports.daily (day date)")
        answered = await check(conn, "after-reports")
        assert answered is not None and answered.outcome is Outcome.UNCHANGED
        await database.execute("DROP SCHEMA reports CASCADE; DROP SCHEMA billing CASCADE")
        assert await check(conn, "after-drops") is not None
    finally:
        await conn.close()


@pytest.mark.parametrize("change", sorted(RENAMED))
async def test_renaming_a_schema_whose_name_inspection_prints_is_noticed(
    database: FreshDatabase, change: str
) -> None:
    manifest, _ = await healed_and_verified(database)
    await database.execute(NAMED_ELSEWHERE)
    verified = await heal_once(database, manifest)  # the extra columns and key: drift, kept
    assert verified.outcome is Outcome.UNCHANGED and verified.satisfied, verified.error_message
    assert fast(await heal_once(database, manifest))
    conn = await connect(database.dsn)
    try:
        before = await inspect(conn, ["shop"])
        schema, printed = RENAMED[change]
        await database.execute(f"ALTER SCHEMA {schema} RENAME TO {schema}_renamed")
        assert (await inspect(conn, ["shop"]) != before) is printed
    finally:
        await conn.close()
    noticed = await heal_once(database, manifest)
    assert noticed.outcome is Outcome.UNCHANGED
    assert fast(noticed) is not printed, f"{change}: {'stale' if printed else 'inspected again'}"


async def test_a_schema_created_or_renamed_to_one_of_the_manifest_s_names_is_noticed(
    database: FreshDatabase,
) -> None:
    conn = await connect(database.dsn)
    try:
        await database.execute("CREATE SCHEMA shop; CREATE SCHEMA elsewhere")
        start = await fingerprint.read(conn, ["shop", "spare"])
        await database.execute("CREATE SCHEMA unrelated")
        assert (await fingerprint.read(conn, ["shop", "spare"])).value == start.value
        await database.execute("CREATE SCHEMA spare")
        created = await fingerprint.read(conn, ["shop", "spare"])
        assert created.value != start.value
        await database.execute("DROP SCHEMA spare")
        assert (await fingerprint.read(conn, ["shop", "spare"])).value == start.value
        await database.execute("ALTER SCHEMA elsewhere RENAME TO spare")
        renamed_to = await fingerprint.read(conn, ["shop", "spare"])
        assert renamed_to.value not in {start.value, created.value}
        await database.execute("ALTER SCHEMA shop RENAME TO shop_old")
        renamed_away = await fingerprint.read(conn, ["shop", "spare"])
        assert renamed_away.value not in {start.value, created.value, renamed_to.value}
    finally:
        await conn.close()


#: a partitioned table of the manifest whose partitions live in another schema
PARTITIONED = {
    "service": "shop",
    "database": "main",
    "schemas": ["shop"],
    "tables": [{"schema": "shop", "name": "events", "columns": [
        {"name": "id", "type": "bigint", "nullable": False},
        {"name": "at", "type": "date", "nullable": False}]}],
}  # fmt: skip
PARTITIONS_ELSEWHERE = """
    CREATE SCHEMA shop; CREATE SCHEMA x_part;
    CREATE TABLE shop.events (id bigint NOT NULL, at date NOT NULL) PARTITION BY RANGE (at);
    CREATE TABLE x_part.y2026 PARTITION OF shop.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')
        PARTITION BY RANGE (at);
    CREATE TABLE x_part.h1 PARTITION OF x_part.y2026 FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
"""
PARTITION_CHANGES = {
    "schema of a partition renamed": "ALTER SCHEMA x_part RENAME TO x_part_renamed",
    "partition attached from another schema": (
        "CREATE TABLE x_part.y2027 (id bigint NOT NULL, at date NOT NULL);"
        "ALTER TABLE shop.events ATTACH PARTITION x_part.y2027"
        "  FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')"
    ),
    "sub-partition attached": (
        "CREATE TABLE x_part.h2 (id bigint NOT NULL, at date NOT NULL);"
        "ALTER TABLE x_part.y2026 ATTACH PARTITION x_part.h2"
        "  FOR VALUES FROM ('2026-07-01') TO ('2027-01-01')"
    ),
    "sub-partition detached": "ALTER TABLE x_part.y2026 DETACH PARTITION x_part.h1",
    "sub-partition renamed": "ALTER TABLE x_part.h1 RENAME TO h1_old",
}


@pytest.mark.parametrize("change", sorted(PARTITION_CHANGES))
async def test_a_change_to_partitions_in_another_schema_is_noticed(
    database: FreshDatabase, change: str
) -> None:
    await database.execute(PARTITIONS_ELSEWHERE)
    manifest = load_manifest(PARTITIONED)
    first = await heal_once(database, manifest)
    assert first.satisfied, first.error_message
    assert fast(await heal_once(database, manifest))
    conn = await connect(database.dsn)
    try:
        before = await inspect(conn, ["shop"])
        await database.execute(PARTITION_CHANGES[change])
        assert await inspect(conn, ["shop"]) != before
    finally:
        await conn.close()
    assert not fast(await heal_once(database, manifest)), f"{change}: stale fingerprint"


#: an index on shop.items with an operator class of another schema (not its type's default)
OPCLASS_ELSEWHERE = """
    CREATE SCHEMA x_opclass;
    CREATE OPERATOR CLASS x_opclass.pattern FOR TYPE text USING btree AS
        OPERATOR 1 ~<~, OPERATOR 2 ~<=~, OPERATOR 3 =, OPERATOR 4 ~>=~, OPERATOR 5 ~>~,
        FUNCTION 1 bttext_pattern_cmp(text, text);
    CREATE INDEX items_name_pattern_idx ON shop.items (name x_opclass.pattern);
"""
#: changes to the objects of other schemas that shop's rows name, each noticed (the fingerprint
#: reads our relations, the tables our keys point at and what we name by different paths), and
#: whether inspection's answer changes with it (an operator class's schema is not in the model:
#: noticed all the same, as that of every object our rows name)
CHANGED_ELSEWHERE = {
    "table a foreign key points at renamed": (
        "ALTER TABLE x_table.parents RENAME TO ancestors", True),
    "column a foreign key points at renamed": (
        "ALTER TABLE x_table.parents RENAME id TO key", True),
    "sequence a default uses renamed": (
        "ALTER SEQUENCE x_sequence.numbers RENAME TO counted", True),
    "operator class an index uses renamed": (
        "ALTER OPERATOR CLASS x_opclass.pattern USING btree RENAME TO like_pattern", True),
    "schema of an operator class an index uses renamed": (
        "ALTER SCHEMA x_opclass RENAME TO x_op", False),
}  # fmt: skip


@pytest.mark.parametrize("change", sorted(CHANGED_ELSEWHERE))
async def test_a_change_to_what_our_rows_name_in_another_schema_is_noticed(
    database: FreshDatabase, change: str
) -> None:
    manifest, _ = await healed_and_verified(database)
    await database.execute(NAMED_ELSEWHERE + OPCLASS_ELSEWHERE)
    verified = await heal_once(database, manifest)  # the extra columns, key and index: kept
    assert verified.satisfied, verified.error_message
    assert fast(await heal_once(database, manifest))
    conn = await connect(database.dsn)
    try:
        before = await inspect(conn, ["shop"])
        statement, printed = CHANGED_ELSEWHERE[change]
        await database.execute(statement)
        assert (await inspect(conn, ["shop"]) != before) is printed
    finally:
        await conn.close()
    assert not fast(await heal_once(database, manifest)), f"{change}: stale fingerprint"
