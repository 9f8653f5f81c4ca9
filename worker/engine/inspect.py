"""Inspect: read the live catalog of the schemas a manifest owns into a :class:`Realm`.

Two parts, as the style guide asks: :func:`fetch_catalog` is the I/O — a fixed set of queries
(``catalog.sql``), whatever the number of tables — and :func:`build_realm` is pure, turning the
rows into the model (tests feed it plain dicts). Two more reads happen only when needed:
:func:`probe_rows` (does a table have a row, before adding a NOT NULL column without default)
and :func:`table_sizes` (the measured size of a table a statement would rewrite; the catalog's
estimate is 0 until the table is first vacuumed or analysed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
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
_COLUMN_FIELDS = ("name", "type", "not_null", "expr", "identity", "generated", "comment")
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


def build_realm(rows: Mapping[str, Any]) -> m.Realm:
    """The pure half of inspection: catalog rows → :class:`Realm`."""
    [server] = rows["server"]
    names: dict[int, dict[int, str]] = {}
    for c in rows["columns"]:
        names.setdefault(c["rel"], {})[c["num"]] = c["name"]
    opclasses = {o["oid"]: o["name"] for o in rows["opclasses"]}
    columns: dict[int, list[m.Column]] = {}
    # Columns repeat across tables (id, created_at, ...): one frozen value per distinct column
    # instead of one per row halves the cost of building a large realm's columns.
    distinct: dict[tuple[Any, ...], m.Column] = {}
    for col in rows["columns"]:
        key = tuple([col[f] for f in _COLUMN_FIELDS])
        column = distinct.get(key)
        if column is None:
            column = distinct[key] = _column(col)
        columns.setdefault(col["rel"], []).append(column)
    constraints: dict[int, list[Any]] = {}
    for con in rows["constraints"]:
        constraints.setdefault(con["rel"], []).append(con)
    indexes: dict[int, list[m.Index]] = {}
    backing = {(c["rel"], c["index"]): c["name"] for c in rows["constraints"] if c["type"] in "pu"}
    nulls_not_distinct = {}
    for idx in rows["indexes"]:
        index = _index(idx, names, opclasses, backing.get((idx["rel"], idx["name"])))
        indexes.setdefault(idx["rel"], []).append(index)
        nulls_not_distinct[(idx["rel"], idx["name"])] = bool(idx["nulls_not_distinct"])
    block = server["block_size"]
    tables = sorted(
        (
            _table(
                t,
                block,
                columns.get(t["oid"], []),
                constraints.get(t["oid"], []),
                indexes.get(t["oid"], []),
                names,
                nulls_not_distinct,
            )
            for t in rows["tables"]
        ),
        key=lambda t: (t.schema, t.name),
    )
    return m.Realm(
        schemas=frozenset(server["schemas"]),
        extensions=tuple(
            sorted(
                (m.Extension(name=e["name"], schema=e["schema"]) for e in rows["extensions"]),
                key=lambda e: e.name,
            )
        ),
        enums=tuple(
            sorted(
                (
                    m.EnumType(schema=e["schema"], name=e["name"], labels=tuple(e["labels"]))
                    for e in rows["enums"]
                ),
                key=lambda e: (e.schema, e.name),
            )
        ),
        sequences=tuple(
            sorted((_sequence(s) for s in rows["sequences"]), key=lambda s: (s.schema, s.name))
        ),
        tables=tuple(tables),
        server_version=int(server["server_version"]),
    )


def _sequence(row: Mapping[str, Any]) -> m.Sequence:
    owner = row["owner_table"]
    return m.Sequence(
        schema=row["schema"],
        name=row["name"],
        data_type=row["data_type"],
        start=row["start"],
        increment=row["increment"],
        min_value=row["min_value"],
        max_value=row["max_value"],
        cycle=row["cycle"],
        cache=row["cache"],
        owned_by=(owner, row["owner_column"]) if owner else None,
    )


def _column(row: Mapping[str, Any]) -> m.Column:
    generated = row["generated"] == "s"
    identity = None
    if row["identity"] in ("a", "d"):
        identity = m.Identity(always=row["identity"] == "a")
    return m.Column(
        name=row["name"],
        type=row["type"],
        nullable=not row["not_null"],
        default=None if generated else row["expr"],
        generated=row["expr"] if generated else None,
        identity=identity,
        comment=row["comment"],
    )


def _table(
    row: Mapping[str, Any],
    block_size: int,
    columns: list[m.Column],
    constraints: list[Any],
    indexes: list[m.Index],
    names: dict[int, dict[int, str]],
    nulls_not_distinct: dict[tuple[int, str], bool],
) -> m.Table:
    rel = row["oid"]

    def cols(rel_id: int, keys: list[int] | None) -> tuple[str, ...]:
        by_number = names[rel_id]
        return tuple([by_number[k] for k in keys or ()])

    pk = next((c for c in constraints if c["type"] == "p"), None)
    return m.Table(
        schema=row["schema"],
        name=row["name"],
        columns=tuple(columns),
        comment=row["comment"],
        size_bytes=int(row["pages"] or 0) * block_size,
        primary_key=m.PrimaryKey(name=pk["name"], columns=cols(rel, pk["keys"])) if pk else None,
        unique=_by_name(
            m.UniqueConstraint(
                name=c["name"],
                columns=cols(rel, c["keys"]),
                nulls_not_distinct=nulls_not_distinct.get((rel, c["index"]), False),
            )
            for c in constraints
            if c["type"] == "u"
        ),
        foreign_keys=_by_name(
            m.ForeignKey(
                name=c["name"],
                columns=cols(rel, c["keys"]),
                ref_schema=c["ref_schema"],
                ref_table=c["ref_table"],
                ref_columns=cols(c["ref_rel"], c["ref_keys"]),
                on_delete=_ACTIONS[c["on_delete"]],
                on_update=_ACTIONS[c["on_update"]],
                deferrable=c["deferrable"],
                initially_deferred=c["deferred"],
                valid=c["valid"],
            )
            for c in constraints
            if c["type"] == "f"
        ),
        checks=_by_name(
            m.CheckConstraint(name=c["name"], expression=c["expr"], valid=c["valid"])
            for c in constraints
            if c["type"] == "c"
        ),
        indexes=_by_name(indexes),
    )


def _by_name(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(items, key=lambda item: item.name))


def _index(
    row: Mapping[str, Any],
    names: dict[int, dict[int, str]],
    opclasses: dict[int, str],
    constraint: str | None,
) -> m.Index:
    by_number, keys, count = names[row["rel"]], row["keys"], row["key_count"]
    texts = row["key_texts"] or [None] * count
    options, classes = row["options"], row["opclasses"]  # one entry per key column
    elements = tuple(
        [
            m.IndexElement(
                column=by_number[keys[k]] if keys[k] else None,
                expression=None if keys[k] else texts[k],
                opclass=opclasses.get(classes[k]),
                descending=bool(options[k] & 1),
                nulls_first=bool(options[k] & 2),
            )
            for k in range(count)
        ]
    )
    return m.Index(
        name=row["name"],
        elements=elements,
        unique=row["unique"],
        method=row["method"],
        include=tuple([by_number[k] for k in keys[count:]]),
        where=row["predicate"],
        storage=tuple(tuple(o.split("=", 1)) for o in row["storage"] or ()),
        valid=row["valid"],
        constraint=constraint,
    )
