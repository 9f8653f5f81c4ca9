"""Rows in every table and the drift the corpus tests inflict, all decided from the catalog.

``fill`` inserts one row per table, a value of each column's type (foreign keys take the key of
the referenced table's row); a table whose CHECKs refuse the values is retried with its nullable
columns NULL, and one that still refuses is reported, never silently passed over. ``inflict``
drops every fifth droppable column (nullable or defaulted, in no index or constraint), every
third plain index and one leaf table, and says what it dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

COLUMNS = """
    SELECT c.oid::regclass::text AS tbl, a.attname AS col, format_type(a.atttypid, a.atttypmod)
           AS type, t.typtype::text, t.typcategory::text, a.attnotnull, d.adbin IS NOT NULL AS has_default,
           a.attidentity::text, a.attgenerated::text, a.atttypid::regtype::text AS base,
           (SELECT f.confrelid::regclass::text || '|' || fa.attname
            FROM pg_constraint f JOIN pg_attribute fa ON fa.attrelid = f.confrelid
             AND fa.attnum = f.confkey[array_position(f.conkey, a.attnum)]
            WHERE f.conrelid = c.oid AND f.contype = 'f' AND a.attnum = ANY (f.conkey) LIMIT 1)
           AS ref,
           EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid
                   AND (a.attnum = ANY (k.conkey))) OR
           EXISTS (SELECT FROM pg_constraint k WHERE k.confrelid = c.oid
                   AND (a.attnum = ANY (k.confkey))) OR
           EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid
                   AND (a.attnum = ANY (i.indkey) OR i.indexprs IS NOT NULL
                        OR i.indpred IS NOT NULL)) AS bound
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND n.nspname = 'public'
    ORDER BY 1, a.attnum"""

SCALARS = {
    "B": "true",
    "N": "1",
    "S": "'x'",
    "D": "now()",
    "T": "'1 second'",
    "A": "'{}'",
    "U": "NULL",
    "V": "B'1'",
}
BY_TYPE = {
    "uuid": "gen_random_uuid()",
    "json": "'{}'",
    "jsonb": "'{}'",
    "bytea": "'\\x00'",
    "inet": "'127.0.0.1'",
    "cidr": "'127.0.0.0/8'",
    "time without time zone": "now()",
    "time with time zone": "now()",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Filled:
    tables: tuple[str, ...]  # every table, with a row
    skipped: dict[str, str]  # table -> why no row could be made


def _value(col: asyncpg.Record) -> str:
    if col["ref"]:
        table, column = col["ref"].split("|")
        return f'(SELECT "{column}" FROM {table} LIMIT 1)'
    if col["typtype"] == "e":
        return f"(enum_first(NULL::{col['base']}))"
    base = BY_TYPE.get(col["base"]) or SCALARS.get(col["typcategory"], "NULL")
    return f"{base}::{col['type']}" if base != "NULL" else "NULL"


def _insert(table: str, cols: list[asyncpg.Record], nullable_null: bool) -> str:
    chosen = [
        c for c in cols
        if not c["attgenerated"] and c["attidentity"] != "a"
        and not (c["has_default"] and not c["ref"])
        and not (nullable_null and not c["attnotnull"])
    ]  # fmt: skip
    if not chosen:
        return f"INSERT INTO {table} DEFAULT VALUES"
    names = ", ".join(f'"{c["col"]}"' for c in chosen)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(_value(c) for c in chosen)})"


async def _columns(conn: asyncpg.Connection) -> dict[str, list[asyncpg.Record]]:
    by_table: dict[str, list[asyncpg.Record]] = {}
    for col in await conn.fetch(COLUMNS):
        by_table.setdefault(col["tbl"], []).append(col)
    return by_table


async def fill(dsn: str) -> Filled:
    """One row in every table it can; tables are retried until their references have rows."""
    conn = await asyncpg.connect(dsn)
    try:
        by_table = await _columns(conn)
        pending, errors = dict(by_table), {}
        while pending:
            progressed = False
            for table, cols in list(pending.items()):
                error = await _try_insert(conn, table, cols)
                if error is None:
                    del pending[table]
                    progressed = True
                else:
                    errors[table] = error
            if not progressed:
                break
        return Filled(tables=tuple(sorted(by_table)), skipped={t: errors[t] for t in pending})
    finally:
        await conn.close()


async def _try_insert(conn: asyncpg.Connection, table: str, cols: list[Any]) -> str | None:
    errors = []
    for nullable_null in (False, True):
        try:
            async with conn.transaction():
                await conn.execute(_insert(table, cols, nullable_null))
        except asyncpg.PostgresError as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        else:
            return None
    return errors[0]


async def values(dsn: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every public table, as JSON objects."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r[0] for r in await conn.fetch(
            "SELECT oid::regclass::text FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = 'public'::regnamespace ORDER BY 1"
        )]  # fmt: skip
        return {
            t: [json.loads(r[0]) for r in await conn.fetch(f"SELECT to_jsonb(x)::text FROM {t} x")]
            for t in tables
        }
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    columns: tuple[tuple[str, str], ...]  # (table, column)
    indexes: tuple[str, ...]
    table: str | None

    def describe(self) -> str:
        cols = ", ".join(f"{t}.{c}" for t, c in self.columns)
        return f"dropped columns [{cols}]; indexes {list(self.indexes)}; table {self.table}"


PLAIN_INDEXES = """
    SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisunique AND NOT i.indisprimary
      AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
    ORDER BY 1"""
LEAVES = """
    SELECT c.oid::regclass::text FROM pg_class c
    WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
      AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.confrelid = c.oid
                      AND k.conrelid <> c.oid)
    ORDER BY 1"""


async def inflict(dsn: str) -> Drift:
    """Drop a fifth of the droppable columns, a third of the plain indexes and a leaf table."""
    conn = await asyncpg.connect(dsn)
    try:
        droppable = [
            (c["tbl"], c["col"]) for cols in (await _columns(conn)).values() for c in cols
            if not c["bound"] and not c["attgenerated"] and not c["attidentity"]
            and (not c["attnotnull"] or c["has_default"])
        ]  # fmt: skip
        leaves = [r[0] for r in await conn.fetch(LEAVES)]
        table = leaves[len(leaves) // 2] if leaves else None
        columns = tuple(c for c in droppable[::5] if c[0] != table)
        indexes = tuple(r[0] for r in (await conn.fetch(PLAIN_INDEXES))[::3])
        async with conn.transaction():
            for t, c in columns:
                await conn.execute(f'ALTER TABLE {t} DROP COLUMN "{c}"')
            for index in indexes:
                await conn.execute(f"DROP INDEX IF EXISTS {index}")
            if table:
                await conn.execute(f"DROP TABLE {table}")
        return Drift(columns=columns, indexes=indexes, table=table)
    finally:
        await conn.close()
