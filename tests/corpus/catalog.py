"""One snapshot of a database's catalog, read from pg_catalog, for every corpus comparison.

Everything create_all and a heal can differ by, by *definition* (never by OID): tables; columns
with type, NOT NULL, default, identity, generated expression and comment; constraints by
definition and validity; indexes by full definition, names included; enum labels in order;
sequences; extensions. Column order is not compared: a column a heal adds back comes last, as
ALTER TABLE ADD COLUMN puts it. Schemas of schemaheal's own (the ledger) are left out. ``identities``
is the other view: every OID and relfilenode, to show that a heal touched nothing.

A column default create_all writes as ``'now()'`` (letta's ``server_default="now()"``) is the
moment of the CREATE as PostgreSQL stores it, different in any two databases -- two create_all
runs too; the snapshot writes such moments ``'<moment>'`` (tests/moments.py).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.moments import without_moments

_USER_SCHEMAS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'schemaheal%'
"""

QUERIES: dict[str, str] = {
    "tables": f"""
        SELECT n.nspname || '.' || c.relname, c.relkind, c.relpersistence,
               obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMAS}""",
    "columns": f"""
        SELECT n.nspname || '.' || c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
               a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
               col_description(c.oid, a.attnum)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
          AND {_USER_SCHEMAS}""",
    "constraints": f"""
        SELECT n.nspname || '.' || c.relname, k.conname, k.contype,
               pg_get_constraintdef(k.oid), k.convalidated, k.condeferrable, k.condeferred
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype <> 'n' AND {_USER_SCHEMAS}""",
    "indexes": f"""
        SELECT n.nspname || '.' || c.relname, pg_get_indexdef(i.indexrelid), i.indisvalid
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}""",
    "enums": f"""
        SELECT n.nspname || '.' || t.typname,
               array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_USER_SCHEMAS} GROUP BY 1""",
    "sequences": f"""
        SELECT n.nspname || '.' || c.relname, format_type(s.seqtypid, NULL), s.seqstart,
               s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               (SELECT dn.nspname || '.' || dc.relname || '.' || da.attname
                FROM pg_depend d JOIN pg_class dc ON dc.oid = d.refobjid
                JOIN pg_namespace dn ON dn.oid = dc.relnamespace
                JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid
                WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass
                  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0)
        FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_USER_SCHEMAS}""",
    "extensions": "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'",
}

IDENTITY_QUERY = f"""
    SELECT 'class ' || n.nspname || '.' || c.relname, c.oid::bigint, c.relfilenode::bigint
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_SCHEMAS}
    UNION ALL
    SELECT 'constraint ' || k.conrelid::regclass::text || '.' || k.conname, k.oid::bigint, 0
    FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE {_USER_SCHEMAS}
    UNION ALL
    SELECT 'type ' || n.nspname || '.' || t.typname, t.oid::bigint, 0
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_USER_SCHEMAS}"""


def _rows(records: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
    rows = (tuple(tuple(v) if isinstance(v, list) else v for v in r.values()) for r in records)
    return sorted(rows, key=repr)


async def snapshot(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog by definition, every list sorted: equal snapshots mean equal schemas."""
    conn = await asyncpg.connect(dsn)
    try:
        found = {kind: _rows(await conn.fetch(sql)) for kind, sql in QUERIES.items()}
    finally:
        await conn.close()
    found["columns"] = sorted((_without_moment(row) for row in found["columns"]), key=repr)
    return found


def _without_moment(row: tuple[Any, ...]) -> tuple[Any, ...]:
    default = row[4]
    return row if default is None else (*row[:4], without_moments(default), *row[5:])


async def identities(dsn: str) -> list[tuple[Any, ...]]:
    """Every relation, constraint and type with its OID (and relfilenode for relations)."""
    conn = await asyncpg.connect(dsn)
    try:
        return _rows(await conn.fetch(IDENTITY_QUERY))
    finally:
        await conn.close()


def differences(current: dict[str, list[Any]], desired: dict[str, list[Any]]) -> list[str]:
    """What one snapshot has that the other has not, one line per catalog row, for messages."""
    lines = []
    for kind in QUERIES:
        only_current = set(current[kind]) - set(desired[kind])
        only_desired = set(desired[kind]) - set(current[kind])
        lines += [f"- {kind}: {row}" for row in sorted(only_current, key=repr)]
        lines += [f"+ {kind}: {row}" for row in sorted(only_desired, key=repr)]
    return lines
