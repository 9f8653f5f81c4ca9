"""Ordinary additive changes on a partitioned table that already exists (issue 19): a new index
is built online the way PostgreSQL documents for partitioned tables (``ON ONLY`` the parent,
``CONCURRENTLY`` on each partition, attached), a heal stopped half-way is continued, and the
partitions are part of their table — never reported as undeclared tables. On a real PostgreSQL,
and the pure part."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from worker.engine import model as m
from worker.engine.connection import connect
from worker.engine.heal import HealResult, Outcome, heal
from worker.engine.plan_partitioned import StepKind, partition_index_name, partitioned_index

EVENTS = """
CREATE TABLE public.kinds (id integer PRIMARY KEY);
INSERT INTO public.kinds VALUES (1), (2);
CREATE TABLE public.events (id integer NOT NULL, name text NOT NULL, kind integer)
    PARTITION BY RANGE (id);
CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (100);
CREATE TABLE public.events_2 PARTITION OF public.events FOR VALUES FROM (100) TO (1000);
INSERT INTO public.events SELECT i, 'u' || i, 1 + i % 2 FROM generate_series(1, 500) i;
"""
KINDS = table("kinds", column("id", "integer", nullable=False), primary_key=pk("id"))
BASE = (column("id", "integer", nullable=False), column("name", nullable=False))
KIND = column("kind", "integer")
NAME_IDX = {"name": "events_name_idx", "elements": ["name"]}


def events(*columns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return manifest(KINDS, table("events", *BASE, *columns, **extra))


def test_the_steps_build_on_each_partition_and_attach() -> None:
    up = ("public", "events")
    parent = m.Table(
        schema="public", name="events", columns=(), partitioned=True,
        partition_tree=(
            m.Partition(schema="public", name="events_1", parent=up),
            m.Partition(schema="archive", name="Events 2", parent=up,
                        invalid_indexes=frozenset({"Events 2_events_name_idx_p"})),
        ),
    )  # fmt: skip
    index = m.Index(name="events_name_idx", elements=(m.IndexElement(column="name"),))
    steps = partitioned_index(parent, index)
    kinds = [kind for kind, _, _ in steps]
    assert kinds == [StepKind.ONLY, StepKind.BUILD, StepKind.ATTACH,
                     StepKind.DROP_INVALID, StepKind.BUILD, StepKind.ATTACH]  # fmt: skip
    assert steps[0][1].startswith(
        "CREATE INDEX IF NOT EXISTS events_name_idx ON ONLY public.events"
    )
    target = 'archive."Events 2_events_name_idx_p"'
    assert steps[3][1] == f"DROP INDEX CONCURRENTLY IF EXISTS {target}"  # left invalid
    _, build, undo = steps[4]
    assert build.startswith(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {target[8:]} ON archive.")
    assert undo == f"DROP INDEX CONCURRENTLY IF EXISTS {target}"
    assert steps[5][1] == f"ALTER INDEX public.events_name_idx ATTACH PARTITION {target}"
    assert len(partition_index_name("p" * 63, "i" * 63)) == 63


async def _attached(conn: Any) -> list[tuple[str, bool]]:
    rows = await conn.fetch(
        "SELECT c.relname::text AS name, x.indisvalid AS valid FROM pg_inherits h"
        " JOIN pg_class c ON c.oid = h.inhrelid JOIN pg_index x ON x.indexrelid = c.oid"
        " WHERE h.inhparent = 'public.events_name_idx'::regclass ORDER BY 1"
    )
    return [(r["name"], r["valid"]) for r in rows]


async def _valid(conn: Any, index: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", index
        )
    )


async def _heal_builds(conn: Any, wanted: dict[str, Any]) -> HealResult:
    """Heal ``wanted``: the parent's index is valid, each partition's attached and valid."""
    result = await heal(conn, load_manifest(wanted))
    assert result.outcome is Outcome.HEALED, result.error_message
    assert await _valid(conn, "public.events_name_idx")
    assert await _attached(conn) == [
        ("events_1_events_name_idx_p", True), ("events_2_events_name_idx_p", True),
    ]  # fmt: skip
    return result


@pytest.mark.parametrize(
    "wanted",
    [
        events(KIND, indexes=[NAME_IDX]),
        events(KIND, column("flag", "boolean", nullable=False, default="false")),
        events(column("kind", "integer", nullable=False)),
        events(KIND, foreign_keys=[fk(["kind"], "kinds", ["id"], name="events_kind_fkey")]),
    ],
    ids=["index", "column-with-default", "not-null", "foreign-key"],
)
async def test_an_additive_change_heals_and_the_partitions_are_no_drift(
    database: FreshDatabase, wanted: dict[str, Any]
) -> None:
    await database.execute(EVENTS)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        assert result.outcome is Outcome.HEALED, result.error_message
        assert [d.target for d in result.plan.drift] == []  # events_1, events_2 belong to events
        again = await heal(conn, load_manifest(wanted))
        assert (again.outcome, again.plan.drift) == (Outcome.UNCHANGED, ()), again.error_message
    finally:
        await conn.close()


async def test_a_new_index_is_built_on_every_partition_and_attached(
    database: FreshDatabase,
) -> None:
    await database.execute(EVENTS)
    wanted = events(KIND, indexes=[NAME_IDX])
    conn = await connect(database.dsn)
    try:
        result = await _heal_builds(conn, wanted)
        builds = [s.sql for s in result.plan.statements if "CONCURRENTLY" in s.sql]
        assert len(builds) == 2 and all(not s.transactional for s in result.plan.statements
                                         if "CONCURRENTLY" in s.sql)  # fmt: skip
        await conn.execute(  # a partition made later gets the index from PostgreSQL itself
            "CREATE TABLE public.events_3 PARTITION OF public.events FOR VALUES FROM (1000) TO (2000)"
        )
        later = await heal(conn, load_manifest(wanted))
        assert later.outcome is Outcome.UNCHANGED, later.error_message
        assert len(await _attached(conn)) == 3
    finally:
        await conn.close()


async def test_a_heal_stopped_half_way_is_continued(database: FreshDatabase) -> None:
    """As a worker killed mid-build leaves it: the parent's index made ON ONLY (invalid), the
    first partition's built and attached, the second's left invalid by its build."""
    await database.execute(
        EVENTS + "CREATE INDEX events_name_idx ON ONLY public.events USING btree (name);"
        "CREATE INDEX events_1_events_name_idx_p ON public.events_1 USING btree (name);"
        "ALTER INDEX public.events_name_idx ATTACH PARTITION public.events_1_events_name_idx_p;"
        "CREATE INDEX events_2_events_name_idx_p ON public.events_2 USING btree (name);"
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'public.events_2_events_name_idx_p'::regclass;"
    )
    wanted = events(KIND, indexes=[NAME_IDX])
    conn = await connect(database.dsn)
    try:
        assert not await _valid(conn, "public.events_name_idx")
        kept = await conn.fetchval("SELECT 'public.events_1_events_name_idx_p'::regclass::oid")
        result = await _heal_builds(conn, wanted)
        drops = [s.sql for s in result.plan.statements if s.sql.startswith("DROP")]
        assert drops == ["DROP INDEX CONCURRENTLY IF EXISTS public.events_2_events_name_idx_p"]
        assert kept == await conn.fetchval(  # the attached one is kept, not built again
            "SELECT 'public.events_1_events_name_idx_p'::regclass::oid"
        )
        again = await heal(conn, load_manifest(wanted))
        assert again.outcome is Outcome.UNCHANGED, again.error_message
    finally:
        await conn.close()
