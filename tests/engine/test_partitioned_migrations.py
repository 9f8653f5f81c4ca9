"""Online migrations of a partitioned table (issue 19): a rename and a computed backfill run as
on a plain table, through the parent, on every partition (one made later too); what needs an
index built CONCURRENTLY, or moves a partition key column, is refused before anything runs —
by the heal and by ``plan``, with the same text. On a real PostgreSQL, and the pure part."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import LABEL, RENAME, WIDE_KEY, trigger_and_columns
from tests.engine.test_heal_expand import _cli
from worker.engine.backfill import Finish, run_pending
from worker.engine.connection import connect
from worker.engine.expand import ColumnMigration
from worker.engine.expand_partitioned import partitioned_refusals, refusal
from worker.engine.heal import Outcome, heal


@pytest.mark.parametrize(
    ("m", "key", "indexes", "expected"),
    [
        (RENAME, ["id"], [], None),
        (LABEL, ["id"], ["users_pkey"], None),  # a new column: nothing moves
        (RENAME, ["name"], [], "name is in its partition key"),
        (RENAME, ["id"], ["users_name_idx"], "name is indexed (users_name_idx)"),
        (WIDE_KEY, ["id"], ["users_pkey"], "id is in its partition key"),
        (WIDE_KEY, ["tenant"], ["users_pkey"], "CONCURRENTLY, which PostgreSQL cannot"),
    ],
)
def test_refusal(m: ColumnMigration, key: list[str], indexes: list[str], expected: str) -> None:
    found = refusal(m, partition_key=key, indexes=indexes)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found
        assert found.startswith(f"the {m.kind.value} of public.users.{m.old_column} to ")
        assert "public.users is a partitioned table" in found


EVENTS = """
CREATE TABLE public.events (id integer PRIMARY KEY, name text NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (100);
CREATE TABLE public.events_2 PARTITION OF public.events FOR VALUES FROM (100) TO (1000);
INSERT INTO public.events SELECT i, 'u' || i FROM generate_series(1, 500) i;
"""


def events(*columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    id_ = column("id", "integer", nullable=False)
    return manifest(table("events", id_, *columns, primary_key=pk("id"), **extra))


async def test_a_rename_a_backfill_and_a_widening_run_on_every_partition(
    database: FreshDatabase,
) -> None:
    await database.execute(EVENTS + "ALTER TABLE public.events ADD COLUMN amount integer;"
                           "UPDATE public.events SET amount = id * 7;")  # fmt: skip
    wanted = events(
        column("amount", "bigint", using="amount"),
        column("full_name", nullable=False, renamed_from="name"),
        column("label", nullable=False, backfill="'e' || id"),
    )
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        assert result.outcome is Outcome.HEALED, result.error_message
        await conn.execute(  # made after the expand: the parent's trigger is cloned to it
            "CREATE TABLE public.events_3 PARTITION OF public.events FOR VALUES FROM (1000) TO (2000);"
            "INSERT INTO public.events (id, name) VALUES (1500, 'late'), (50, 'early')"
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name"
        )
        await conn.execute("UPDATE public.events SET amount = id * 7 WHERE id IN (50, 1500)")
        done = await run_pending(conn)
        assert list(done.values()) == [Finish.EXPANDED] * 3
        rows = await conn.fetch("SELECT id, name, full_name, label, amount FROM public.events")
        assert len(rows) == 501
        assert all(r["full_name"] == r["name"] and r["label"] == f"e{r['id']}" for r in rows)
        assert all(r["amount"] == r["id"] * 7 for r in rows)
        amount = await conn.fetchval(
            "SELECT format_type(atttypid, NULL) FROM pg_attribute"
            " WHERE attrelid = 'public.events_2'::regclass AND attname = 'amount'"
        )
        assert amount == "bigint"  # swapped in place on every partition
        for partition in ("public.events_1", "public.events_2", "public.events_3"):
            trigger, columns = await trigger_and_columns(conn, partition)
            assert trigger and {"full_name", "label"} <= columns
        notnull = await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.events_3'::regclass"
            " AND attname IN ('full_name', 'label') AND attnotnull ORDER BY 1"
        )
        assert [r["attname"] for r in notnull] == ["full_name", "label"]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("index", "wanted", "expected"),
    [
        (
            "CREATE INDEX events_name_idx ON public.events (name)",
            events(column("full_name", nullable=False, renamed_from="name"),
                   indexes=[{"name": "events_name_idx", "elements": ["full_name"]}]),
            "name is indexed (events_name_idx)",
        ),
        (
            "CREATE INDEX events_lower_idx ON public.events (lower(name))",
            events(column("full_name", nullable=False, renamed_from="name")),
            "name is indexed (events_lower_idx)",
        ),
        (
            "CREATE INDEX events_id_idx ON public.events (id) WHERE name <> ''",
            events(column("full_name", nullable=False, renamed_from="name")),
            "name is indexed (events_id_idx)",
        ),
        (
            "SELECT",
            events(column("name", nullable=False)) | {"tables": [table(
                "events", column("id", "bigint", nullable=False, using="id"),
                column("name", nullable=False), primary_key=pk("id"))]},
            "id is in its partition key",
        ),
    ],
)  # fmt: skip
async def test_what_cannot_run_online_is_refused_before_anything_runs(
    database: FreshDatabase, tmp_path: Path, index: str, wanted: dict[str, Any], expected: str
) -> None:
    await database.execute(EVENTS + index)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(wanted))
    code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    assert code == 1, err
    assert out, err
    (refused,) = json.loads(out)["refused"]
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        assert (result.outcome, result.error_code) == (Outcome.FAILED, "partitioned-table")
        assert result.error_message is not None and expected in result.error_message
        assert refused["code"] == "partitioned-table"
        assert refused["message"] == result.error_message
        assert result.applied == ()
        trigger, columns = await trigger_and_columns(conn, "public.events")
        assert (trigger, columns) == (False, {"id", "name"})  # nothing ran
    finally:
        await conn.close()


async def test_a_partition_key_expression_counts_as_the_column_it_reads(
    database: FreshDatabase,
) -> None:
    """Such a table can have no primary key, so its migrations are blocked before this check
    (``migration-blocked``); the catalog read still names the column (defence in depth)."""
    await database.execute(
        "CREATE TABLE public.events (id integer NOT NULL, name text NOT NULL)"
        " PARTITION BY LIST (lower(name));"
        "CREATE TABLE public.events_d PARTITION OF public.events DEFAULT;"
        "CREATE INDEX events_upper_idx ON public.events (upper(name));"
    )
    conn = await connect(database.dsn)
    try:
        found = await partitioned_refusals(conn, [RENAME_NAME, WIDE_ID])
    finally:
        await conn.close()
    assert [(m.old_column, "name is in its partition key" in why) for m, why in found] == [
        ("name", True)
    ]  # id: neither in the key nor indexed


RENAME_NAME = replace(RENAME, table="events")
WIDE_ID = replace(WIDE_KEY, table="events")
