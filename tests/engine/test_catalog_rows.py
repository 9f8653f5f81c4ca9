"""build_realm reads catalog rows by position: each query's columns must be FIELDS, in order."""

from __future__ import annotations

from tests.conftest import FreshDatabase
from worker.engine.connection import connect
from worker.engine.inspect import FIELDS, QUERIES, build_realm, fetch_catalog


async def test_every_catalog_query_returns_the_fields_build_realm_reads(
    database: FreshDatabase,
) -> None:
    await database.execute("""
        CREATE TYPE mood AS ENUM ('sad', 'ok');
        CREATE SEQUENCE s;
        CREATE TABLE p (id integer PRIMARY KEY);
        CREATE TABLE t (id integer PRIMARY KEY, p_id integer REFERENCES p, m mood,
                        n integer CHECK (n > 0), UNIQUE NULLS NOT DISTINCT (n));
        CREATE INDEX t_expr_idx ON t ((n + 1)) WHERE n > 1;
        CREATE TABLE e (id integer) PARTITION BY RANGE (id);
        CREATE TABLE e_1 PARTITION OF e FOR VALUES FROM (0) TO (10);
    """)  # fmt: skip
    conn = await connect(database.dsn)
    try:
        rows = await fetch_catalog(conn, ["public"])
    finally:
        await conn.close()
    assert set(QUERIES) == set(FIELDS)
    for name, fields in FIELDS.items():
        assert rows[name], f"{name}: the setup above should give it a row"
        assert tuple(rows[name][0].keys()) == fields, name
    t = build_realm(rows).table("public", "t")
    assert t is not None and [u.nulls_not_distinct for u in t.unique] == [True]
    assert [(f.ref_table, f.ref_columns) for f in t.foreign_keys] == [("p", ("id",))]
    e = build_realm(rows).table("public", "e")
    assert e is not None and e.partition_key == ("id",)
    assert [(p.name, p.parent, p.partitioned) for p in e.partition_tree] == [
        ("e_1", ("public", "e"), False)
    ]
