"""Inspect: read the live catalog of the schemas a manifest owns into a :class:`Realm`.

Two parts, as the style guide asks: the I/O — a fixed set of queries (``catalog.sql``),
whatever the number of tables — and :class:`RealmRows`, pure, turning the rows into the model
query by query (:func:`build_realm` feeds it a whole dict; tests give it plain tuples).
:func:`inspect` hands it each query's rows once the next query is sent, so the client's work
overlaps the server's; :func:`fetch_catalog` is the I/O alone, one query after the other (the
benchmark's floor). Two more reads happen only when needed:
:func:`probe_rows` (does a table have a row, before adding a NOT NULL column without default)
and :func:`table_sizes` (the measured size of a table a statement would rewrite; the catalog's
estimate is 0 until the table is first vacuumed or analysed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Any

from contracts.identifiers import qualified
from worker.engine import model as m
from worker.engine.connection import Connection
from worker.engine.inspect_tables import STEPS, TABLES, TableCache, TableRows

CATALOG_SQL = (Path(__file__).parent / "catalog.sql").read_text(encoding="utf-8")
QUERIES = {
    chunk.split("\n", 1)[0].strip(): chunk.split("\n", 1)[1].strip().rstrip(";")
    for chunk in CATALOG_SQL.split("-- name: ")[1:]
}


async def inspect(
    conn: Connection, schemas: Iterable[str], *, cache: TableCache | None = TABLES
) -> m.Realm:
    """The current realm of ``schemas`` (a fixed number of catalog queries). Each query's rows
    are taken in (:class:`RealmRows`, pure) once the next query is sent: the client's work on
    them runs while the server answers it."""
    gathered = RealmRows(cache)
    wanted = sorted(schemas)
    pending: asyncio.Future[list[Any]] | None = None
    tables: list[Any] = []
    try:
        pending = _send(conn, "server", wanted)
        await asyncio.sleep(0)  # the task runs until the query is written
        for name, following in zip(QUERIES, [*list(QUERIES)[1:], None], strict=True):
            rows = await pending if pending is not None else []
            pending = None
            if name == "tables":
                tables = rows
            if following is not None and _needed(following, tables):
                pending = _send(conn, following, wanted)
                await asyncio.sleep(0)
            gathered.take(name, rows)
    finally:
        if pending is not None:  # the connection is free once its query ends
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: the error that stopped us is the one raised
    return gathered.realm()


def _send(conn: Connection, name: str, wanted: list[str]) -> asyncio.Future[list[Any]]:
    return asyncio.ensure_future(_fetch(conn, name, wanted))


def _fetch(conn: Connection, name: str, wanted: list[str]) -> Coroutine[Any, Any, list[Any]]:
    """Catalog query ``name``'s rows (``wanted``: the schemas, for the queries that take them)."""
    sql = QUERIES[name]
    return conn.fetch(sql, wanted) if "$1" in sql else conn.fetch(sql)


def _needed(name: str, tables: list[Any]) -> bool:
    """False for the partitions query when no table is partitioned (it is planned each time)."""
    return name != "partitions" or any(t[5] for t in tables)


async def fetch_catalog(conn: Connection, schemas: Iterable[str]) -> dict[str, list[Any]]:
    """The catalog rows, by query name (see catalog.sql), one query after the other: the I/O
    half of inspection alone (benchmarks and tests)."""
    wanted = sorted(schemas)
    rows: dict[str, list[Any]] = {}
    for name in QUERIES:
        if not _needed(name, rows.get("tables", [])):
            rows[name] = []
            continue
        rows[name] = await _fetch(conn, name, wanted)
    return rows


async def probe_rows(
    conn: Connection, realm: m.Realm, tables: Iterable[tuple[str, str]]
) -> m.Realm:
    """``realm`` with ``has_rows`` filled in for ``tables`` (one query for all of them)."""
    wanted = sorted(t for t in set(tables) if realm.table(*t) is not None)
    if not wanted:
        return realm
    probes = " UNION ALL ".join(
        f"SELECT {i} AS i WHERE EXISTS (SELECT 1 FROM {qualified(*t)})"
        for i, t in enumerate(wanted)
    )
    found = {row["i"] for row in await conn.fetch(probes)}
    filled = {t: i in found for i, t in enumerate(wanted)}
    return replace(
        realm,
        tables=tuple(
            replace(t, has_rows=filled.get((t.schema, t.name), t.has_rows)) for t in realm.tables
        ),
        _by_name={},
    )


async def table_sizes(conn: Connection, tables: Iterable[str]) -> dict[str, int]:
    """The size on disk of each (qualified) table, measured: one query for all of them."""
    wanted = sorted(tables)
    if not wanted:
        return {}
    rows = await conn.fetch(
        "SELECT t, pg_table_size(t::regclass) AS size FROM unnest($1::text[]) t", wanted
    )
    return {row["t"]: int(row["size"] or 0) for row in rows}


#: The columns of each query in catalog.sql, in order: build_realm reads rows by position (a
#: record's fields by name cost three times as much), and tests build rows from these names.
FIELDS: dict[str, tuple[str, ...]] = {
    "server": ("server_version", "block_size", "schemas"),
    "extensions": ("name", "schema"),
    "enums": ("schema", "name", "labels"),
    "sequences": ("schema", "name", "data_type", "start", "increment", "min_value", "max_value",
                  "cycle", "cache", "owner_table", "owner_column"),
    "tables": ("oid", "schema", "name", "comment", "pages", "partitioned", "part_schemas",
               "part_names", "parent"),
    "partitions": ("root", "schema", "name", "parent_schema", "parent_name", "partitioned",
                   "foreign_table", "key", "constraints", "unvalidated", "invalid"),
    "columns": ("rel", "num", "name", "type", "not_null", "expr", "identity", "generated",
                "comment"),
    "constraints": ("rel", "name", "type", "valid", "keys", "ref_rel", "ref_schema", "ref_table",
                    "ref_keys", "on_delete", "on_update", "deferrable", "deferred", "expr",
                    "index", "nulls_not_distinct"),
    "indexes": ("rel", "name", "unique", "valid", "method", "key_count", "keys", "options",
                "opclasses", "predicate", "storage", "key_texts"),
    "opclasses": ("oid", "name"),
}  # fmt: skip
_NAME = attrgetter("name")
_SCHEMA_NAME = attrgetter("schema", "name")


def build_realm(rows: Mapping[str, Any], *, cache: TableCache | None = TABLES) -> m.Realm:
    """The pure half of inspection: catalog rows (sequences of values in :data:`FIELDS` order,
    as asyncpg records are) → :class:`Realm`. A table whose rows are those of an earlier
    inspection is that inspection's value, from ``cache``
    (:mod:`~worker.engine.inspect_tables`; None builds every table)."""
    gathered = RealmRows(cache)
    for name in QUERIES:
        gathered.take(name, rows[name])
    return gathered.realm()


class RealmRows:
    """One inspection's rows, taken query by query in catalog.sql's order; the tables' queries
    go to :class:`~worker.engine.inspect_tables.TableRows` as they come. Pure."""

    def __init__(self, cache: TableCache | None) -> None:
        self.cache = cache
        self.rows: dict[str, Any] = {}
        self.tables: TableRows | None = None

    def take(self, name: str, rows: Any) -> None:
        self.rows[name] = rows
        if name == "tables":
            [(_, block_size, _)] = self.rows["server"]
            self.tables = TableRows(block_size, dict(self.rows["opclasses"]), self.cache)
        if name in STEPS:
            if self.tables is None:
                raise ValueError(f"catalog rows out of order: {name} before tables")
            self.tables.take(name, rows)

    def realm(self) -> m.Realm:
        rows = self.rows
        missing = [q for q in QUERIES if q not in rows]
        if missing or self.tables is None:
            raise ValueError(f"catalog rows missing: {', '.join(missing)}")
        [(server_version, _, schemas)] = rows["server"]
        tables = self.tables.built()
        tables.sort(key=_SCHEMA_NAME)
        return m.Realm(
            schemas=frozenset(schemas),
            extensions=tuple(
                sorted((m.Extension(name=n, schema=s) for n, s in rows["extensions"]), key=_NAME)
            ),
            enums=tuple(
                sorted(
                    (m.EnumType(schema=s, name=n, labels=tuple(ls)) for s, n, ls in rows["enums"]),
                    key=_SCHEMA_NAME,
                )
            ),
            sequences=tuple(sorted((_sequence(*s) for s in rows["sequences"]), key=_SCHEMA_NAME)),
            tables=tuple(tables),
            server_version=int(server_version),
        )


def _sequence(
    schema: str,
    name: str,
    data_type: str,
    start: int | None,
    increment: int,
    min_value: int | None,
    max_value: int | None,
    cycle: bool,
    cache: int,
    owner_table: str | None,
    owner_column: str,  # set whenever owner_table is
) -> m.Sequence:
    return m.Sequence(
        schema=schema,
        name=name,
        data_type=data_type,
        start=start,
        increment=increment,
        min_value=min_value,
        max_value=max_value,
        cycle=cycle,
        cache=cache,
        owned_by=(owner_table, owner_column) if owner_table else None,
    )
