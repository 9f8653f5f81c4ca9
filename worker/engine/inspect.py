"""Inspect: read the live catalog of the schemas a manifest owns into a :class:`Realm`.

Two parts, as the style guide asks: :func:`fetch_catalog` is the I/O — one query, one round trip,
whatever the number of tables — and :func:`build_realm` is pure, turning the rows into the model
(tests feed it plain dicts). :func:`probe_rows` is the only other read: whether given tables have
any row, asked only when a NOT NULL column without a default is about to be added.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from contracts.identifiers import qualified
from worker.engine import model as m
from worker.engine.connection import Connection

CATALOG_SQL = (Path(__file__).parent / "catalog.sql").read_text(encoding="utf-8")
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


async def inspect(conn: Connection, schemas: Iterable[str]) -> m.Realm:
    """The current realm of ``schemas`` (one catalog query)."""
    return build_realm(await fetch_catalog(conn, schemas))


async def fetch_catalog(conn: Connection, schemas: Iterable[str]) -> dict[str, Any]:
    """The catalog rows as plain data: {"tables": [...], "columns": [...], ...}."""
    row = await conn.fetchrow(CATALOG_SQL, sorted(schemas))
    return {
        key: json.loads(value) if isinstance(value, str) else value for key, value in row.items()
    }


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


def build_realm(rows: Mapping[str, Any]) -> m.Realm:
    """The pure half of inspection: catalog rows → :class:`Realm`."""
    columns: dict[int, list[m.Column]] = {}
    for col in rows["columns"]:
        columns.setdefault(col["rel"], []).append(_column(col))
    constraints: dict[int, list[dict[str, Any]]] = {}
    for con in rows["constraints"]:
        constraints.setdefault(con["rel"], []).append(con)
    indexes: dict[int, list[dict[str, Any]]] = {}
    for idx in rows["indexes"]:
        indexes.setdefault(idx["rel"], []).append(idx)
    tables = tuple(
        sorted(
            (
                _table(
                    t,
                    columns.get(t["oid"], []),
                    constraints.get(t["oid"], []),
                    indexes.get(t["oid"], []),
                )
                for t in rows["tables"]
            ),
            key=lambda t: (t.schema, t.name),
        )
    )
    return m.Realm(
        schemas=frozenset(rows["schemas"]),
        extensions=tuple(
            sorted((m.Extension(**e) for e in rows["extensions"]), key=lambda e: e.name)
        ),
        enums=tuple(
            sorted(
                (
                    m.EnumType(schema=e["schema"], name=e["name"], labels=tuple(e["labels"] or ()))
                    for e in rows["enums"]
                ),
                key=lambda e: (e.schema, e.name),
            )
        ),
        sequences=tuple(
            sorted((_sequence(s) for s in rows["sequences"]), key=lambda s: (s.schema, s.name))
        ),
        tables=tables,
        server_version=int(rows.get("server_version") or 0),
    )


def _sequence(row: Mapping[str, Any]) -> m.Sequence:
    owned = row.get("owned_by")
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
        owned_by=(owned[0], owned[1]) if owned else None,
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
    columns: list[m.Column],
    constraints: list[dict[str, Any]],
    indexes: list[dict[str, Any]],
) -> m.Table:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for con in constraints:
        by_kind.setdefault(con["type"], []).append(con)
    backing = {con["index"]: con["name"] for con in constraints if con["type"] in ("p", "u")}
    nnd = {idx["name"]: bool(idx.get("nulls_not_distinct")) for idx in indexes}
    pk_rows = by_kind.get("p", [])
    return m.Table(
        schema=row["schema"],
        name=row["name"],
        columns=tuple(columns),
        comment=row["comment"],
        size_bytes=int(row["size"] or 0),
        primary_key=(
            m.PrimaryKey(name=pk_rows[0]["name"], columns=tuple(pk_rows[0]["columns"]))
            if pk_rows
            else None
        ),
        unique=_by_name(
            m.UniqueConstraint(
                name=c["name"],
                columns=tuple(c["columns"]),
                nulls_not_distinct=nnd.get(c["index"], False),
            )
            for c in by_kind.get("u", [])
        ),
        foreign_keys=_by_name(_foreign_key(c) for c in by_kind.get("f", [])),
        checks=_by_name(
            m.CheckConstraint(name=c["name"], expression=c["expr"], valid=c["valid"])
            for c in by_kind.get("c", [])
        ),
        indexes=_by_name(_index(i, backing.get(i["name"])) for i in indexes),
    )


def _by_name(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(sorted(items, key=lambda item: item.name))


def _foreign_key(row: Mapping[str, Any]) -> m.ForeignKey:
    return m.ForeignKey(
        name=row["name"],
        columns=tuple(row["columns"]),
        ref_schema=row["ref_schema"],
        ref_table=row["ref_table"],
        ref_columns=tuple(row["ref_columns"]),
        on_delete=_ACTIONS[row["on_delete"]],
        on_update=_ACTIONS[row["on_update"]],
        deferrable=row["deferrable"],
        initially_deferred=row["deferred"],
        valid=row["valid"],
    )


def _index(row: Mapping[str, Any], constraint: str | None) -> m.Index:
    keys = row["keys"] or []
    key_count = row["key_count"]
    elements = tuple(
        m.IndexElement(
            column=k["column"],
            expression=k["expr"],
            opclass=k["opclass"],
            descending=bool((k["option"] or 0) & 1),
            nulls_first=bool((k["option"] or 0) & 2),
        )
        for k in keys[:key_count]
    )
    return m.Index(
        name=row["name"],
        elements=elements,
        unique=row["unique"],
        method=row["method"],
        include=tuple(k["column"] for k in keys[key_count:]),
        where=row["where"],
        valid=row["valid"],
        constraint=constraint,
    )
