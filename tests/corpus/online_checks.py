"""What the issue 19 corpus test reads from the database to check a case: the changed tables'
rows by primary key, the foreign keys that reference a widened key, and each kind's invariant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.identifiers import qualified, quote_ident
from tests.corpus.online import Case, Writes

Rows = dict[str, dict[str, dict[str, Any]]]  # table -> primary key (as JSON) -> row


async def rows_by_key(conn: asyncpg.Connection, case: Case) -> Rows:
    out: Rows = {}
    for table in case.tables():
        key = await primary_key(conn, table)
        names = ", ".join(quote_ident(k) for k in key)
        found = await conn.fetch(
            f"SELECT json_build_array({names})::text, to_jsonb(t)::text "
            f"FROM {qualified('public', table)} t"
        )
        out[table] = {r[0]: json.loads(r[1]) for r in found}
    return out


async def primary_key(conn: asyncpg.Connection, table: str) -> list[str]:
    found = await conn.fetch(
        """SELECT a.attname FROM pg_constraint c, unnest(c.conkey) WITH ORDINALITY k(n, i),
                  pg_attribute a
           WHERE c.conrelid = $1::regclass AND c.contype = 'p' AND a.attrelid = c.conrelid
             AND a.attnum = k.n ORDER BY k.i""",
        qualified("public", table),
    )
    return [r[0] for r in found]


async def columns(conn: asyncpg.Connection, table: str) -> dict[str, tuple[str, bool]]:
    found = await conn.fetch(
        """SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
           WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped""",
        qualified("public", table),
    )
    return {r[0]: (r[1], r[2]) for r in found}


async def constraints(conn: asyncpg.Connection, table: str) -> dict[tuple[str, str], Any]:
    """The constraints of ``table`` and the foreign keys referencing it: (table, name) →
    (definition, validated)."""
    found = await conn.fetch(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated
           FROM pg_constraint WHERE (conrelid = $1::regclass OR confrelid = $1::regclass)
            AND contype <> 'n'""",
        qualified("public", table),
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in found}


async def sync_triggers(conn: asyncpg.Connection, table: str) -> list[str]:
    found = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = $1::regclass "
        "AND tgname LIKE 'schemaheal_sync_%'",
        qualified("public", table),
    )
    return [r[0] for r in found]


async def count(conn: asyncpg.Connection, table: str, where: str) -> int:
    value = await conn.fetchval(f"SELECT count(*) FROM {qualified('public', table)} WHERE {where}")
    return int(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """A table before expand: its columns and the constraints on it or referencing it."""

    columns: dict[str, tuple[str, bool]]
    constraints: dict[tuple[str, str], Any]


async def shapes(conn: asyncpg.Connection, case: Case) -> dict[str, Shape]:
    return {
        table: Shape(columns=await columns(conn, table), constraints=await constraints(conn, table))
        for table in case.tables()
    }


async def assert_converted(conn: asyncpg.Connection, case: Case, before: dict[str, Shape]) -> None:
    """After the backfill and enforce, before contract: every row converted."""
    for change in case.renamed():
        table, old, new = change["table"], change["column"], change["name"]
        differ = await count(conn, table, f"{quote_ident(new)} IS DISTINCT FROM {quote_ident(old)}")
        assert differ == 0, f"{table}: {differ} rows where {new} differs from {old}"
        shape = await columns(conn, table)
        assert shape[new] == shape[old], (table, shape[new], shape[old])
    for change in case.backfilled():
        table, column, expression = change["table"], change["add"], change["intent"]["backfill"]
        wrong = await count(conn, table, f"{quote_ident(column)} IS DISTINCT FROM ({expression})")
        assert wrong == 0, f"{table}: {wrong} rows where {column} is not {expression}"
        assert (await columns(conn, table))[column] == (change["type"], True)
    for change in case.widened():
        table = change["table"]
        await assert_widened(conn, table, change["column"], before[table])


async def assert_widened(conn: asyncpg.Connection, table: str, column: str, before: Any) -> None:
    """``column`` is bigint, its NOT NULL as it was, its sequence (if any) bigint, every
    constraint on the table or referencing it as it was before expand (by name and definition),
    and all of them valid."""
    shape = await columns(conn, table)
    assert shape[column] == ("bigint", before.columns[column][1]), shape
    sequence = await conn.fetchval(
        "SELECT seqtypid::regtype::text FROM pg_sequence "
        "WHERE seqrelid = pg_get_serial_sequence($1, $2)::regclass",
        qualified("public", table),
        column,
    )
    assert sequence in (None, "bigint"), f"{table}.{column}'s sequence is still {sequence}"
    now = await constraints(conn, table)
    kept = {k: now.get(k, ("gone", False))[0] for k in before.constraints}
    assert kept == {k: d for k, (d, _) in before.constraints.items()}
    assert [k for k, (_, valid) in now.items() if not valid] == []


def assert_nothing_lost(before: Rows, after: Rows, case: Case, writes: Writes) -> None:
    """Every row of before is in after with the same values (a renamed column's under its new
    name; a column a writer updated afterwards is not compared), and the writers' rows too."""
    renames = {(c["table"], c["column"]): c["name"] for c in case.renamed()}
    added = {(c["table"], c["add"]) for c in case.backfilled()}
    for table, rows in before.items():
        inserted = writes.inserted.get(table, 0)
        assert len(after[table]) == len(rows) + inserted, (table, len(rows), inserted)
        updated = {json.dumps([k]) for k in writes.updated.get(table, ())}
        for key, row in rows.items():
            now = after[table].get(key)
            assert now is not None, f"{table} row {key} is gone"
            expected = {renames.get((table, c), c): v for c, v in row.items()}
            seen = {c: v for c, v in now.items() if (table, c) not in added}
            if key in updated:
                for (renamed_in, _), column in renames.items():
                    if renamed_in == table:
                        expected.pop(column, None)
                        seen.pop(column, None)
            assert seen == expected, f"{table} row {key}: {row} became {now}"
