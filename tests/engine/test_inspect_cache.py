"""Tables reused between inspections (inspect_tables.TableCache): an inspection through the cache
equals one that builds every table, on a real catalog changed between inspections, and a table
whose rows changed in any way is built afresh while the others are reused."""

from __future__ import annotations

from tests.conftest import FreshDatabase
from worker.engine import model as m
from worker.engine.connection import connect
from worker.engine.inspect import build_realm, fetch_catalog, inspect
from worker.engine.inspect_tables import TableCache

SETUP = """
    CREATE SCHEMA app;
    CREATE TABLE app.tenants (id integer PRIMARY KEY, name text);
    CREATE TABLE app.users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id integer REFERENCES app.tenants ON DELETE CASCADE,
        email varchar(100) NOT NULL UNIQUE,
        score integer DEFAULT 0 CHECK (score >= 0),
        doubled integer GENERATED ALWAYS AS (score * 2) STORED);
    CREATE INDEX users_lower_email ON app.users (lower(email)) WITH (fillfactor = 70);
    CREATE INDEX users_score ON app.users (score DESC NULLS LAST) INCLUDE (email)
        WHERE score > 0;
    CREATE TABLE app.audit (at timestamptz NOT NULL DEFAULT now(), what text);
    CREATE SCHEMA other;  -- not inspected: its partition is only in the partitioned table's rows
    CREATE TABLE app.metrics (at date NOT NULL, v integer) PARTITION BY RANGE (at);
    CREATE TABLE other.metrics_2026 PARTITION OF app.metrics
        FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
"""

#: Each change behind the worker's back, and the tables whose value it changes.
CHANGES = [
    ("ALTER TABLE app.audit ADD COLUMN who text", {"audit"}),
    ("ALTER TABLE app.users ALTER COLUMN email TYPE varchar(200)", {"users"}),
    ("DROP INDEX app.users_score", {"users"}),
    ("COMMENT ON TABLE app.audit IS 'who did what'", {"audit"}),
    ("COMMENT ON COLUMN app.users.score IS 'points'", {"users"}),
    ("ALTER TABLE app.audit ALTER COLUMN what SET DEFAULT 'nothing'", {"audit"}),
    # a referenced column renamed: the foreign key's value names it, in the other table
    ("ALTER TABLE app.tenants RENAME COLUMN id TO tenant_key", {"tenants", "users"}),
    ("ALTER TABLE app.users ALTER CONSTRAINT users_tenant_id_fkey DEFERRABLE", {"users"}),
    ("ALTER INDEX app.users_lower_email SET (fillfactor = 80)", {"users"}),
    ("ALTER TABLE app.users DROP CONSTRAINT users_score_check", {"users"}),
    ("ALTER TABLE app.audit RENAME TO events", {"events"}),
    # only the partitions query's rows change: a constraint of a partition in another schema
    ("ALTER TABLE other.metrics_2026 ADD CONSTRAINT positive CHECK (v > 0)", {"metrics"}),
]


async def test_a_cached_inspection_equals_a_built_one_across_changes(
    database: FreshDatabase,
) -> None:
    await database.execute(SETUP)
    cache = TableCache()
    conn = await connect(database.dsn)
    try:
        before = build_realm(await fetch_catalog(conn, ["app"]), cache=cache)
        assert len(cache.values) == 4
        through_inspect = TableCache()  # the same, with each query's rows taken as they come
        await inspect(conn, ["app"], cache=through_inspect)
        for sql, changed in CHANGES:
            await database.execute(sql)
            rows = await fetch_catalog(conn, ["app"])
            built, cached = build_realm(rows, cache=None), build_realm(rows, cache=cache)
            assert cached == built, sql
            assert await inspect(conn, ["app"], cache=through_inspect) == built, sql
            assert _tables(cached) == _tables(built), sql  # field by field, not only as a whole
            reused = {t.name for t in cached.tables if t is _same_name(before, t)}
            assert reused == {t.name for t in cached.tables} - changed, sql
            before = cached
    finally:
        await conn.close()


def _tables(realm: m.Realm) -> list[tuple[object, ...]]:
    return [
        (t.name, t.columns, t.primary_key, t.unique, t.foreign_keys, t.checks, t.indexes,
         t.comment, t.size_bytes)
        for t in realm.tables
    ]  # fmt: skip


def _same_name(realm: m.Realm, table: m.Table) -> m.Table | None:
    return realm.table(table.schema, table.name)
