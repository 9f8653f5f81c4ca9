"""Inspect: read the live catalog of the schemas a manifest owns into a :class:`Realm`.

Two parts, as the style guide asks: :func:`fetch_catalog` is the I/O — a fixed set of queries
(``catalog.sql``), whatever the number of tables — and :func:`build_realm` is pure, turning the
rows into the model (tests feed it plain dicts). Two more reads happen only when needed:
:func:`probe_rows` (does a table have a row, before adding a NOT NULL column without default)
and :func:`table_sizes` (the measured size of a table a statement would rewrite; the catalog's
estimate is 0 until the table is first vacuumed or analysed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from operator import attrgetter
from pathlib import Path
from typing import Any

from contracts.identifiers import qualified
from worker.engine import model as m
from worker.engine.connection import Connection

CATALOG_SQL = (Path(__file__).parent / "catalog.sql").read_text(encoding="utf-8")
QUERIES = {
    chunk.split("\n", 1)[0].strip(): chunk.split("\n", 1)[1].strip().rstrip(";")
    for chunk in CATALOG_SQL.split("-- name: ")[1:]
}
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


async def inspect(conn: Connection, schemas: Iterable[str]) -> m.Realm:
    """The current realm of ``schemas`` (a fixed number of catalog queries)."""
    return build_realm(await fetch_catalog(conn, schemas))


async def fetch_catalog(conn: Connection, schemas: Iterable[str]) -> dict[str, list[Any]]:
    """The catalog rows, by query name (see catalog.sql): the I/O half of inspection."""
    wanted = sorted(schemas)
    rows: dict[str, list[Any]] = {}
    for name, sql in QUERIES.items():
        rows[name] = await (conn.fetch(sql, wanted) if "$1" in sql else conn.fetch(sql))
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


class _Parts:
    """One table's constraints and indexes, gathered in the single pass over each query."""

    __slots__ = ("checks", "foreign_keys", "indexes", "primary_key", "unique")

    def __init__(self) -> None:
        self.primary_key: m.PrimaryKey | None = None
        self.unique: list[m.UniqueConstraint] = []
        self.foreign_keys: list[m.ForeignKey] = []
        self.checks: list[m.CheckConstraint] = []
        self.indexes: list[m.Index] = []


def build_realm(rows: Mapping[str, Any]) -> m.Realm:
    """The pure half of inspection: catalog rows (sequences of values in :data:`FIELDS` order,
    as asyncpg records are) → :class:`Realm`, in one pass over each query's rows."""
    [(server_version, block_size, schemas)] = rows["server"]
    names: dict[int, dict[int, str]] = {}  # rel → attnum → column name
    columns: dict[int, list[m.Column]] = {}
    # Columns repeat across tables (id, created_at, ...): one frozen value per distinct column
    # (the row minus rel and attnum is its key) instead of one per row.
    distinct: dict[tuple[Any, ...], m.Column] = {}
    last_rel, by_number, in_table = None, {}, []
    for row in rows["columns"]:
        rel = row[0]
        if rel != last_rel:  # rows come by table: look the table up once, not per column
            last_rel = rel
            by_number, in_table = names.setdefault(rel, {}), columns.setdefault(rel, [])
        by_number[row[1]] = row[2]
        key = tuple(row[2:])
        column = distinct.get(key)
        if column is None:
            column = distinct[key] = m.interned(_column(*key))
        in_table.append(column)
    parts: dict[int, _Parts] = {}
    backing: dict[tuple[int, str], str] = {}  # (rel, index) → the key constraint it backs
    for con in rows["constraints"]:
        _constraint(con, names, parts, backing)
    opclasses: dict[int, str] = dict(rows["opclasses"])
    elements: dict[tuple[Any, ...], m.IndexElement] = {}
    for idx in rows["indexes"]:
        rel = idx[0]
        index = _index(idx, names[rel], opclasses, backing.get((rel, idx[1])), elements)
        parts.setdefault(rel, _Parts()).indexes.append(index)
    empty = _Parts()
    tables = [
        _table(t, block_size, columns.get(t[0], []), parts.get(t[0], empty)) for t in rows["tables"]
    ]
    tables.sort(key=_SCHEMA_NAME)
    if any(t.partitioned for t in tables):
        tables = _with_invalid_partition_indexes(tables)
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


def _column(
    name: str,
    type_: str,
    not_null: bool,
    expr: str | None,
    identity: str | None,
    generated: str | None,
    comment: str | None,
) -> m.Column:
    is_generated = generated == "s"
    return m.Column(
        name=name,
        type=type_,
        nullable=not not_null,
        default=None if is_generated else expr,
        generated=expr if is_generated else None,
        identity=m.Identity(always=identity == "a") if identity in ("a", "d") else None,
        comment=comment,
    )


def _constraint(
    row: Sequence[Any],
    names: dict[int, dict[int, str]],
    parts: dict[int, _Parts],
    backing: dict[tuple[int, str], str],
) -> None:
    """One constraint row into its table's parts (and, for keys, the index backing it)."""
    (rel, name, kind, valid, keys, ref_rel, ref_schema, ref_table, ref_keys, on_delete,
     on_update, deferrable, deferred, expr, index, nulls_not_distinct) = row  # fmt: skip
    into = parts.get(rel)
    if into is None:
        into = parts[rel] = _Parts()
    if kind == "c":
        into.checks.append(m.CheckConstraint(name=name, expression=expr, valid=valid))
        return
    by_number = names[rel]
    columns = tuple([by_number[k] for k in keys or ()])
    if kind == "p":
        into.primary_key = m.PrimaryKey(name=name, columns=columns)
        backing[(rel, index)] = name
    elif kind == "u":
        into.unique.append(
            m.UniqueConstraint(
                name=name, columns=columns, nulls_not_distinct=bool(nulls_not_distinct)
            )
        )
        backing[(rel, index)] = name
    else:
        referenced = names[ref_rel]
        into.foreign_keys.append(
            m.ForeignKey(
                name=name,
                columns=columns,
                ref_schema=ref_schema,
                ref_table=ref_table,
                ref_columns=tuple([referenced[k] for k in ref_keys or ()]),
                on_delete=_ACTIONS[on_delete],
                on_update=_ACTIONS[on_update],
                deferrable=deferrable,
                initially_deferred=deferred,
                valid=valid,
            )
        )


def _table(row: Sequence[Any], block_size: int, columns: list[m.Column], parts: _Parts) -> m.Table:
    _, schema, name, comment, pages, partitioned, part_schemas, part_names, parent = row
    return m.Table(
        schema=schema,
        name=name,
        columns=tuple(columns),
        comment=comment,
        size_bytes=int(pages or 0) * block_size,
        primary_key=parts.primary_key,
        unique=_by_name(parts.unique),
        foreign_keys=_by_name(parts.foreign_keys),
        checks=_by_name(parts.checks),
        indexes=_by_name(parts.indexes),
        partitioned=bool(partitioned),
        partitions=tuple(zip(part_schemas or (), part_names or (), strict=True)),
        partition_of=tuple(parent) if parent else None,
    )


def _with_invalid_partition_indexes(tables: list[m.Table]) -> list[m.Table]:
    """A partitioned table knows which of its partitions' indexes are invalid (a build that
    stopped half-way), so the plan that continues it drops those first."""
    invalid = {
        (t.schema, t.name): frozenset(qualified(t.schema, i.name) for i in t.indexes if not i.valid)
        for t in tables
        if t.partition_of is not None
    }
    return [
        replace(t, invalid_partition_indexes=frozenset().union(
            *(invalid.get(p, frozenset()) for p in t.partitions)))
        if t.partitioned else t
        for t in tables
    ]  # fmt: skip


def _by_name(items: list[Any]) -> tuple[Any, ...]:
    if len(items) > 1:
        items.sort(key=_NAME)
    return tuple(items)


def _index(
    row: Sequence[Any],
    by_number: dict[int, str],
    opclasses: dict[int, str],
    constraint: str | None,
    elements: dict[tuple[Any, ...], m.IndexElement],
) -> m.Index:
    (_, name, unique, valid, method, count, keys, options, classes, predicate, storage,
     texts) = row  # fmt: skip
    texts = texts or [None] * count
    out = []
    for k in range(count):  # options and operator classes: one entry per key column
        number = keys[k]
        key = (number and by_number[number], None if number else texts[k], classes[k], options[k])
        element = elements.get(key)
        if element is None:
            element = elements[key] = m.interned(
                m.IndexElement(
                    column=key[0] or None,
                    expression=key[1],
                    opclass=opclasses.get(key[2]),
                    descending=bool(key[3] & 1),
                    nulls_first=bool(key[3] & 2),
                )
            )
        out.append(element)
    return m.Index(
        name=name,
        elements=tuple(out),
        unique=unique,
        method=method,
        include=tuple([by_number[k] for k in keys[count:]]),
        where=predicate,
        storage=tuple(tuple(o.split("=", 1)) for o in storage or ()),
        valid=valid,
        constraint=constraint,
    )
