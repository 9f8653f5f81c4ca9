"""Keys, unique indexes, foreign keys and sub-partitions on a partitioned table that exists
(issue 19), on a real PostgreSQL: each built partition by partition and joined to the parent
without building or scanning again; a unique key that lacks the partition key refused before
anything runs; a heal stopped half-way continued. The plans' SQL: ``test_plan_partitioned.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, pk
from tests.engine.test_heal_expand import _cli
from tests.engine.test_partitioned_additive import EVENTS, KIND, NAME_IDX, events
from worker.engine.connection import connect
from worker.engine.heal import HealResult, Outcome, heal

#: events_2 is partitioned itself, by kind
SUB = EVENTS.replace(
    "FROM (100) TO (1000);",
    "FROM (100) TO (1000) PARTITION BY LIST (kind);"
    "CREATE TABLE public.events_2a PARTITION OF public.events_2 FOR VALUES IN (1);"
    "CREATE TABLE public.events_2b PARTITION OF public.events_2 FOR VALUES IN (2);",
)
LEAVES = {EVENTS: ["events_1", "events_2"], SUB: ["events_1", "events_2a", "events_2b"]}
ID_NAME_KEY = {"name": "events_id_name_key", "columns": ["id", "name"]}

#: a leaf's constraint, the constraint it is attached to, the one that is attached to, …
_CHAIN = """
WITH RECURSIVE up AS (
  SELECT c.oid, c.conparentid, c.conname::text AS name, c.convalidated AS valid,
         c.conindid, c.contype::text AS type
    FROM pg_constraint c WHERE c.conrelid = to_regclass($1) AND c.conname = $2
  UNION ALL
  SELECT p.oid, p.conparentid, p.conname::text, p.convalidated, p.conindid, p.contype::text
    FROM pg_constraint p JOIN up ON p.oid = up.conparentid)
SELECT name, valid, (SELECT relname::text FROM pg_class WHERE oid = conindid) AS index, type
  FROM up"""


async def _chain(conn: Any, table: str, name: str) -> list[tuple[str, bool, str, str]]:
    rows = await conn.fetch(_CHAIN, f"public.{table}", name)
    return [(r["name"], r["valid"], r["index"], r["type"]) for r in rows]


async def leaf_indexes(conn: Any, name: str) -> dict[str, tuple[bool, str | None]]:
    """Every index of the events tables named like ``name`` (its copies at every level):
    whether it is valid, and the index it is attached to."""
    rows = await conn.fetch(
        "SELECT i.relname::text AS name, x.indisvalid AS valid,"
        " (SELECT p.relname::text FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent"
        "   WHERE h.inhrelid = x.indexrelid) AS parent"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid::regclass::text LIKE '%events%' AND i.relname LIKE $1",
        f"%{name}%",
    )
    return {r["name"]: (r["valid"], r["parent"]) for r in rows}


async def _heals_then_unchanged(conn: Any, wanted: dict[str, Any]) -> HealResult:
    result = await heal(conn, load_manifest(wanted))
    assert result.outcome is Outcome.HEALED, result.error_message
    assert [d.target for d in result.plan.drift] == []  # the partitions, at every level
    again = await heal(conn, load_manifest(wanted))
    assert (again.outcome, again.plan.drift) == (Outcome.UNCHANGED, ()), again.error_message
    return result


@pytest.mark.parametrize("setup", [EVENTS, SUB], ids=["partitions", "sub-partitions"])
@pytest.mark.parametrize(
    ("extra", "key", "kind"),
    [
        ({"primary_key": pk("id", "name")}, "events_pkey", "p"),
        ({"unique": [ID_NAME_KEY]}, "events_id_name_key", "u"),
    ],
    ids=["primary-key", "unique"],
)
async def test_a_key_is_built_on_each_leaf_concurrently_and_the_parent_attaches_them(
    database: FreshDatabase, setup: str, extra: dict[str, Any], key: str, kind: str
) -> None:
    """The leaves' unique indexes are the ones built CONCURRENTLY, and the parent's key is
    made of them (each leaf's constraint attached to it, through events_2's when events_2 is
    partitioned): PostgreSQL built no second index."""
    if setup == SUB:  # the key must include the sub-partitions' key too
        extra = {k: ({**v, "columns": [*v["columns"], "kind"]} if k == "primary_key" else
                     [{**v[0], "columns": [*v[0]["columns"], "kind"]}])
                 for k, v in extra.items()}  # fmt: skip
    await database.execute(setup + "ALTER TABLE public.events ALTER COLUMN kind SET NOT NULL;")
    kind_column = column("kind", "integer", nullable=False)
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(kind_column, **extra))
        builds = [s.sql for s in result.plan.statements if s.sql.startswith("CREATE UNIQUE")]
        assert len(builds) == len(LEAVES[setup]) and all("CONCURRENTLY" in b for b in builds)
        for leaf in LEAVES[setup]:
            chain = await _chain(conn, leaf, f"{leaf}_{key}_p")
            assert chain[0][2] == f"{leaf}_{key}_p"  # the leaf's constraint: the index built
            assert chain[-1][:1] == (key,) and {c[3] for c in chain} == {kind}
            assert len(chain) == (3 if leaf.startswith("events_2") and setup == SUB else 2)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("setup", "extra", "missing"),
    [
        (EVENTS, {"unique": [{"name": "events_name_key", "columns": ["name"]}]}, "lacks id"),
        (EVENTS, {"indexes": [{**NAME_IDX, "unique": True}]}, "lacks id"),
        (EVENTS, {"primary_key": pk("name")}, "lacks id"),
        (SUB, {"unique": [ID_NAME_KEY]}, "public.events_2; it lacks kind"),
    ],
    ids=["unique", "unique-index", "primary-key", "sub-partition-key"],
)
async def test_a_unique_key_without_the_partition_key_is_refused_before_anything_runs(
    database: FreshDatabase, tmp_path: Path, setup: str, extra: dict[str, Any], missing: str
) -> None:
    """The heal fails with why and what to do, having run nothing; ``plan`` says the same."""
    await database.execute(setup)
    count = "SELECT count(*) FROM pg_index WHERE indrelid::regclass::text LIKE 'events%'"
    before = await database.fetch(count)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(events(KIND, **extra)))
    planned = None  # the CLI takes seconds to start: asked once, the text is the same for all
    if setup == SUB:
        planned = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(events(KIND, **extra)))
        assert (result.outcome, result.error_code, result.applied) == (
            Outcome.FAILED, "partitioned-table", ()
        ), result.error_message  # fmt: skip
        assert missing in (result.error_message or "")
        assert "Add " in (result.error_message or "")  # says what to do next
        assert await database.fetch(count) == before
        if planned is not None:
            code, out, err = planned
            assert (code, json.loads(out)["refused"]) == (1, [{
                "code": "partitioned-table", "migration": None, "message": result.error_message
            }]), err  # fmt: skip
    finally:
        await conn.close()


async def test_a_key_stopped_half_way_is_continued(database: FreshDatabase) -> None:
    """As a worker killed mid-heal leaves it: events_1's constraint made, events_2's index left
    invalid by its build. The next heal keeps events_1's, rebuilds events_2's, adds the key."""
    await database.execute(
        EVENTS + "CREATE UNIQUE INDEX events_1_events_id_name_key_p ON public.events_1 (id, name);"
        "ALTER TABLE public.events_1 ADD CONSTRAINT events_1_events_id_name_key_p"
        " UNIQUE USING INDEX events_1_events_id_name_key_p;"
        "CREATE UNIQUE INDEX events_2_events_id_name_key_p ON public.events_2 (id, name);"
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'public.events_2_events_id_name_key_p'::regclass;"
    )
    oid = "SELECT 'public.events_1_events_id_name_key_p'::regclass::oid"
    kept = await database.fetch(oid)
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(KIND, unique=[ID_NAME_KEY]))
        sql = [s.sql for s in result.plan.statements]
        assert [s for s in sql if "events_1" in s] == []  # done before: not made again
        assert sql[0] == "DROP INDEX CONCURRENTLY IF EXISTS public.events_2_events_id_name_key_p"
        assert await database.fetch(oid) == kept
        for leaf in ("events_1", "events_2"):
            chain = await _chain(conn, leaf, f"{leaf}_events_id_name_key_p")
            assert [c[0] for c in chain][1:] == ["events_id_name_key"]
    finally:
        await conn.close()


@pytest.mark.parametrize("setup", [EVENTS, SUB], ids=["partitions", "sub-partitions"])
async def test_a_foreign_key_is_validated_leaf_by_leaf_and_attached_on_every_version(
    database: FreshDatabase, setup: str
) -> None:
    """PostgreSQL before 18 refuses NOT VALID on a partitioned table: each leaf's key is added
    NOT VALID and validated, and the parent's attaches them (no scan under its lock)."""
    await database.execute(setup)
    key = fk(["kind"], "kinds", ["id"], name="events_kind_fkey")
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(KIND, foreign_keys=[key]))
        assert not any("NOT VALID" in s.sql and "public.events " in s.sql
                       for s in result.plan.statements)  # fmt: skip
        for leaf in LEAVES[setup]:
            chain = await _chain(conn, leaf, "events_kind_fkey")
            assert chain[-1][:2] == ("events_kind_fkey", True) and all(c[1] for c in chain)
        assert (await _chain(conn, "events", "events_kind_fkey"))[0][1]  # valid
        # each leaf read once, by its VALIDATE: the parent's ADD attached them without a scan
        await conn.execute("SELECT pg_stat_force_next_flush()")
        scans = await conn.fetch("SELECT relname::text AS name, seq_scan FROM pg_stat_user_tables"
                                 " WHERE relname LIKE 'events%' AND relid IN"
                                 " (SELECT oid FROM pg_class WHERE relkind = 'r')")  # fmt: skip
        assert {r["name"]: r["seq_scan"] for r in scans} == dict.fromkeys(LEAVES[setup], 1)
    finally:
        await conn.close()


async def test_a_foreign_key_stopped_half_way_is_continued(database: FreshDatabase) -> None:
    """events_1's key added NOT VALID by a heal that stopped there: validated, not added again."""
    await database.execute(
        EVENTS + "ALTER TABLE public.events_1 ADD CONSTRAINT events_kind_fkey"
        " FOREIGN KEY (kind) REFERENCES public.kinds (id) NOT VALID;"
    )
    key = fk(["kind"], "kinds", ["id"], name="events_kind_fkey")
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(KIND, foreign_keys=[key]))
        assert [s.sql for s in result.plan.statements if "events_1" in s.sql] == [
            "ALTER TABLE public.events_1 VALIDATE CONSTRAINT events_kind_fkey"
        ]
        for leaf in LEAVES[EVENTS]:
            assert [c[:2] for c in await _chain(conn, leaf, "events_kind_fkey")] == [
                ("events_kind_fkey", True), ("events_kind_fkey", True)
            ]  # fmt: skip
    finally:
        await conn.close()


UNIQUE_IDX = {"name": "events_id_name_idx", "elements": ["id", "name"], "unique": True}


@pytest.mark.parametrize(
    ("setup", "index"), [(SUB, NAME_IDX), (EVENTS, UNIQUE_IDX), (SUB, {**UNIQUE_IDX,
                         "elements": ["id", "name", "kind"]})],
    ids=["sub-partitions", "unique", "unique-sub-partitions"],
)  # fmt: skip
async def test_an_index_is_built_online_through_sub_partitions(
    database: FreshDatabase, setup: str, index: dict[str, Any]
) -> None:
    """events_2, partitioned itself, gets an ON ONLY index; its leaves' copies, built
    CONCURRENTLY, are attached to it, and it to the parent's. Every one ends valid."""
    await database.execute(setup)
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(KIND, indexes=[index]))
        builds = [s for s in result.plan.statements if "CONCURRENTLY" in s.sql]
        assert len(builds) == len(LEAVES[setup])
        found = await leaf_indexes(conn, index["name"])
        parents = {name: parent for name, (valid, parent) in found.items() if valid}
        name = index["name"]
        expected = {name: None} | {f"{leaf}_{name}_p": name for leaf in LEAVES[EVENTS]}
        if setup == SUB:
            del expected[f"events_2_{name}_p"]
            expected |= {f"events_2_{name}_p": name, f"events_2a_{name}_p": f"events_2_{name}_p",
                         f"events_2b_{name}_p": f"events_2_{name}_p"}  # fmt: skip
        assert parents == expected
    finally:
        await conn.close()
