"""Property: from a database in a random older shape, with data, one heal reaches the manifest,
a second heal changes nothing, and every row and value survives."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import load_manifest
from worker.embedded.postgres import LocalPostgres
from worker.engine.connection import connect
from worker.engine.heal import HealOptions, Outcome, heal

# (type, a value to insert, a default, a narrower type that widens to it)
TYPES = [
    ("text", "'x'", "'d'", "character varying(10)"),
    ("character varying(40)", "'y'", "'d'", "character varying(20)"),
    ("integer", "7", "0", None),
    ("bigint", "8", "0", None),
    ("numeric(12,2)", "1.5", "0", "numeric(8,2)"),
    ("boolean", "true", "false", None),
    ("jsonb", "'{}'", "'{}'::jsonb", None),
    ("timestamp with time zone", "now()", "now()", None),
    ("uuid", "gen_random_uuid()", "gen_random_uuid()", None),
]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(desired manifest, an older manifest that drifted from it, rows per table)."""
    desired_tables, current_tables = [], []
    for t in range(draw(st.integers(1, 3))):
        columns = [{"name": "id", "type": "integer", "nullable": False}]
        old_columns = [dict(columns[0])]
        for c in range(draw(st.integers(1, 4))):
            type_, _value, default, narrower = draw(st.sampled_from(TYPES))
            col: dict[str, Any] = {"name": f"c{c}", "type": type_}
            if draw(st.booleans()):
                col |= {"nullable": False, "default": default}
            elif draw(st.booleans()):
                col["default"] = default
            columns.append(col)
            fate = draw(st.sampled_from(["same", "missing", "narrower", "no_default", "not_null"]))
            if fate == "missing":
                continue
            old = dict(col)
            if fate == "narrower" and narrower:
                old["type"] = narrower
            if fate == "no_default":
                old.pop("default", None)
            if fate == "not_null" and col.get("nullable", True):
                old |= {"nullable": False, "default": default}
            old_columns.append(old)
        indexes = [{"name": f"t{t}_c0_idx", "elements": ["c0"]}] if draw(st.booleans()) else []
        table = {
            "name": f"t{t}",
            "columns": columns,
            "primary_key": {"columns": ["id"]},
            "indexes": indexes,
        }
        desired_tables.append(table)
        if draw(st.integers(0, 4)) > 0:  # the table may be missing altogether
            has_c0 = any(c["name"] == "c0" for c in old_columns)
            keep = indexes if has_c0 and draw(st.booleans()) else []
            current_tables.append({**table, "columns": old_columns, "indexes": keep})
    base = {"service": "svc", "database": "db"}
    return (
        {**base, "tables": desired_tables},
        {**base, "tables": current_tables},
        draw(st.integers(0, 3)),
    )


async def run(
    server: LocalPostgres, desired: dict[str, Any], current: dict[str, Any], rows: int
) -> None:
    name = f"p_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    dsn = server.dsn_for(name)
    conn = await connect(dsn)
    try:
        if current["tables"]:
            assert (await heal(conn, load_manifest(current))).outcome is Outcome.HEALED
        plain = await asyncpg.connect(dsn)
        values = {type_: value for type_, value, _, _ in TYPES} | {
            narrower: value for _, value, _, narrower in TYPES if narrower
        }
        for table in current["tables"]:
            names = ", ".join(c["name"] for c in table["columns"])
            for i in range(rows):
                row = ", ".join(
                    str(i) if c["name"] == "id" else values[c["type"]] for c in table["columns"]
                )
                await plain.execute(f"INSERT INTO public.{table['name']} ({names}) VALUES ({row})")
        before = {t["name"]: [dict(r) for r in await plain.fetch(f"SELECT * FROM public.{t['name']} ORDER BY id")]
                  for t in current["tables"]}  # fmt: skip
        first = await heal(conn, load_manifest(desired), options=HealOptions())
        assert first.outcome in (Outcome.HEALED, Outcome.UNCHANGED), first.error_message
        second = await heal(conn, load_manifest(desired), options=HealOptions())
        assert second.outcome is Outcome.UNCHANGED
        assert second.applied == ()
        for table, old_rows in before.items():
            new_rows = [
                dict(r) for r in await plain.fetch(f"SELECT * FROM public.{table} ORDER BY id")
            ]
            assert len(new_rows) == len(old_rows)
            for old, new in zip(old_rows, new_rows, strict=True):
                assert {k: new[k] for k in old} == old
        await plain.close()
    finally:
        await conn.close()
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario())
def test_heal_converges_and_keeps_data(
    pg_server: LocalPostgres, case: tuple[dict[str, Any], dict[str, Any], int]
) -> None:
    desired, current, rows = case
    asyncio.run(run(pg_server, desired, current, rows))
