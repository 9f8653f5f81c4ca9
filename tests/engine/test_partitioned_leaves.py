"""The leaves of a partitioned table (issue 19), on a real PostgreSQL: DEFAULT partitions at
every level, foreign partitions (postgres_fdw), and a leaf's key that fails on its rows. Each
found on PostgreSQL 15 and 18 first (README, "Partitioned tables"); the plans' SQL:
``test_plan_partitioned.py``."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, pk
from tests.engine.test_partitioned_additive import EVENTS, KIND, NAME_IDX, events
from tests.engine.test_partitioned_keys import _heals_then_unchanged, leaf_indexes
from worker.engine.connection import connect
from worker.engine.heal import Outcome, heal

#: events partitioned by range, events_2 by list with a DEFAULT partition, and a DEFAULT
#: partition of events itself; rows in every leaf
DEFAULTS = EVENTS.replace(
    "FROM (100) TO (1000);",
    "FROM (100) TO (1000) PARTITION BY LIST (kind);"
    "CREATE TABLE public.events_2a PARTITION OF public.events_2 FOR VALUES IN (1);"
    "CREATE TABLE public.events_2d PARTITION OF public.events_2 DEFAULT;"
    "CREATE TABLE public.events_d PARTITION OF public.events DEFAULT;",
).replace("generate_series(1, 500)", "generate_series(1, 1500)")
DEFAULT_LEAVES = ("events_1", "events_2a", "events_2d", "events_d")


@pytest.mark.parametrize(
    "extra",
    [
        {"indexes": [NAME_IDX]},
        {"unique": [{"name": "events_id_kind_key", "columns": ["id", "kind"]}]},
        {"foreign_keys": [fk(["kind"], "kinds", ["id"], name="events_kind_fkey")]},
        {"checks": [{"name": "events_flag_check", "expression": "flag > 0"}]},
    ],
    ids=["index", "unique", "foreign-key", "column-and-check"],
)
async def test_default_partitions_at_every_level_are_leaves_like_the_others(
    database: FreshDatabase, extra: dict[str, Any]
) -> None:
    """A DEFAULT partition of events and of events_2: each gets its copy built online and
    attached like any leaf; a new column with a default and a check reaches them too."""
    await database.execute(DEFAULTS + "ALTER TABLE public.events ALTER kind SET NOT NULL;")
    flag = column("flag", "integer", nullable=False, default="1")
    kind = column("kind", "integer", nullable=False)
    more = (flag,) if "checks" in extra else ()
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, events(kind, *more, **extra))
        sql = [s.sql for s in result.plan.statements]
        if "indexes" in extra or "unique" in extra:
            name = "events_name_idx" if "indexes" in extra else "events_id_kind_key"
            built = [s for s in sql if "CONCURRENTLY" in s]
            assert len(built) == len(DEFAULT_LEAVES)
            found = await leaf_indexes(conn, name)
            assert all(valid for valid, _ in found.values()), found
            assert {f"{leaf}_{name}_p" for leaf in DEFAULT_LEAVES} <= set(found)
        if "foreign_keys" in extra:
            valid = await conn.fetch(
                "SELECT conrelid::regclass::text AS rel FROM pg_constraint"
                " WHERE conname = 'events_kind_fkey' AND convalidated ORDER BY 1"
            )
            assert {r["rel"] for r in valid} == {
                f"public.{t}" for t in (*DEFAULT_LEAVES, "events", "events_2")
            }
        if "checks" in extra:
            bad = await conn.fetchval("SELECT count(*) FROM public.events_d WHERE flag IS NULL")
            assert bad == 0
    finally:
        await conn.close()


#: events with a foreign partition (postgres_fdw; never read: no connection is made), and
#: events_2, partitioned by kind, with one too
FOREIGN = (
    "CREATE EXTENSION postgres_fdw;"
    "CREATE SERVER elsewhere FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'postgres');"
    + EVENTS.replace(
        "FROM (100) TO (1000);",
        "FROM (100) TO (1000) PARTITION BY LIST (kind);"
        "CREATE TABLE public.events_2a PARTITION OF public.events_2 FOR VALUES IN (1, 2);"
        "CREATE FOREIGN TABLE public.events_2f PARTITION OF public.events_2 FOR VALUES IN (3)"
        " SERVER elsewhere;"
        "CREATE FOREIGN TABLE public.events_f PARTITION OF public.events"
        " FOR VALUES FROM (1000) TO (2000) SERVER elsewhere;",
    )
)


async def test_an_index_skips_foreign_partitions_and_ends_valid(database: FreshDatabase) -> None:
    """PostgreSQL builds no index on a foreign table (the old plan failed building one) and an
    ON ONLY index stays invalid while a partition has none attached: each other leaf's copy is
    built CONCURRENTLY and the parent's plain CREATE INDEX adopts them (the copies built are
    the ones attached: same oids), valid at every level."""
    await database.execute(FOREIGN)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(events(KIND, indexes=[NAME_IDX])))
        assert result.outcome is Outcome.HEALED, result.error_message
        built = [s.sql for s in result.plan.statements if "CONCURRENTLY" in s.sql]
        assert len(built) == 2 and not any("events_f" in s or "2f" in s for s in built)
        built_oids = await conn.fetch("SELECT to_regclass(n)::oid AS oid FROM unnest($1::text[])"
                                      " n", ["public.events_1_events_name_idx_p",
                                             "public.events_2a_events_name_idx_p"])  # fmt: skip
        found = await leaf_indexes(conn, "name")
        assert found["events_name_idx"] == (True, None)
        assert found["events_1_events_name_idx_p"] == (True, "events_name_idx")
        assert all(valid for valid, _ in found.values()) and len(found) == 4, found
        after = await conn.fetch("SELECT to_regclass(n)::oid AS oid FROM unnest($1::text[]) n",
                                 ["public.events_1_events_name_idx_p",
                                  "public.events_2a_events_name_idx_p"])  # fmt: skip
        assert after == built_oids
        again = await heal(conn, load_manifest(events(KIND, indexes=[NAME_IDX])))
        assert (again.outcome, again.plan.drift) == (Outcome.UNCHANGED, ()), again.error_message
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "extra",
    [
        {"unique": [{"name": "events_id_kind_key", "columns": ["id", "kind"]}]},
        {"indexes": [{**NAME_IDX, "elements": ["id", "kind"], "unique": True}]},
        {"primary_key": pk("id", "kind")},
        {"foreign_keys": [fk(["kind"], "kinds", ["id"], name="events_kind_fkey")]},
    ],
    ids=["unique", "unique-index", "primary-key", "foreign-key"],
)
async def test_a_key_on_a_table_with_a_foreign_partition_is_refused_before_anything_runs(
    database: FreshDatabase, extra: dict[str, Any]
) -> None:
    """PostgreSQL cannot make a unique index, a key or a foreign key on a foreign table, nor on
    a partitioned table that has one: refused, naming the foreign partitions and what to do,
    with nothing run (the old plan built events_1's copy, then failed on events_f's)."""
    await database.execute(FOREIGN + "ALTER TABLE public.events ALTER kind SET NOT NULL;")
    kind = column("kind", "integer", nullable=False)
    count = ("SELECT (SELECT count(*) FROM pg_index WHERE indrelid::regclass::text LIKE"
             " 'public.events%'), (SELECT count(*) FROM pg_constraint WHERE"
             " conrelid::regclass::text LIKE 'public.events%')")  # fmt: skip
    before = await database.fetch(count)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(events(kind, **extra)))
        assert (result.outcome, result.error_code, result.applied) == (
            Outcome.FAILED, "partitioned-table", ()
        ), result.error_message  # fmt: skip
        message = result.error_message or ""
        assert "partitions public.events_2f, public.events_f are foreign tables" in message
        assert "ALTER TABLE public.events_2 DETACH PARTITION public.events_2f" in message
        assert await database.fetch(count) == before
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("bad", "extra", "fix", "kept"),
    [
        ("INSERT INTO public.events VALUES (300, 'u300', 1);",
         {"unique": [{"name": "events_id_name_key", "columns": ["id", "name"]}]},
         "DELETE FROM public.events_2 WHERE ctid = (SELECT max(ctid) FROM public.events_2"
         " WHERE id = 300)", "events_1_events_id_name_key_p"),
        ("INSERT INTO public.events VALUES (300, 'x', 7);",
         {"foreign_keys": [fk(["kind"], "kinds", ["id"], name="events_kind_fkey")]},
         "INSERT INTO public.kinds VALUES (7)", "events_kind_fkey"),
    ],
    ids=["unique-duplicate", "foreign-key-missing-row"],
)  # fmt: skip
async def test_a_leaf_that_fails_on_its_rows_says_what_to_do_and_the_next_heal_continues(
    database: FreshDatabase, bad: str, extra: dict[str, Any], fix: str, kept: str
) -> None:
    """Really failed, on a real duplicate (or a row without a match) in events_2: the reply
    and the ledger name the server's error, that events_1 keeps its part, and what to do;
    once the rows are fixed, the next heal continues from events_2 and never redoes events_1."""
    await database.execute(EVENTS + bad)
    conn = await connect(database.dsn)
    try:
        failed = await heal(conn, load_manifest(events(KIND, **extra)))
        assert (failed.outcome, failed.error_code) == (Outcome.FAILED, "statement-failed")
        message = failed.error_message or ""
        assert "ViolationError" in message and "DETAIL:  Key (" in message, message
        assert message.endswith(
            "; the partitions done before public.events_2 keep theirs, and the next heal "
            "continues from public.events_2: fix its rows the error names (or change the "
            "manifest), then boot again"
        ), message
        ledger = await conn.fetchval("SELECT error_message FROM schemaheal.heals"
                                     " ORDER BY id DESC LIMIT 1")  # fmt: skip
        assert ledger == message
        oid = ("SELECT oid FROM pg_constraint WHERE conname = $1"
               " AND conrelid = 'public.events_1'::regclass")  # fmt: skip
        before = await conn.fetchval(oid, kept)
        assert before is not None
        await conn.execute(fix)
        result = await _heals_then_unchanged(conn, events(KIND, **extra))
        assert [s.sql for s in result.plan.statements if "events_1 " in s.sql] == []
        assert await conn.fetchval(oid, kept) == before
    finally:
        await conn.close()


async def test_an_invalid_index_a_foreign_partition_keeps_invalid_is_refused_then_rebuilt(
    database: FreshDatabase,
) -> None:
    """An ON ONLY index with events_1's copy attached, as the old plan left it when it failed
    at the foreign partition: it can never become valid, and the heal drops no such index (the
    guard allows only DROP INDEX CONCURRENTLY, which PostgreSQL refuses on a partitioned
    index). Refused with what to do (before: verify-failed, at every boot); done, it heals."""
    await database.execute(
        FOREIGN + "CREATE INDEX events_name_idx ON ONLY public.events (name);"
        "CREATE INDEX events_1_events_name_idx_p ON public.events_1 (name);"
        "ALTER INDEX public.events_name_idx ATTACH PARTITION public.events_1_events_name_idx_p;"
    )
    conn = await connect(database.dsn)
    try:
        refused = await heal(conn, load_manifest(events(KIND, indexes=[NAME_IDX])))
        assert (refused.outcome, refused.error_code, refused.applied) == (
            Outcome.FAILED, "partitioned-table", ()
        ), refused.error_message  # fmt: skip
        assert "Drop it (DROP INDEX public.events_name_idx;" in (refused.error_message or "")
        await conn.execute("DROP INDEX public.events_name_idx")
        await _heals_then_unchanged(conn, events(KIND, indexes=[NAME_IDX]))
        found = await leaf_indexes(conn, "name")
        assert found["events_name_idx"] == (True, None) and len(found) == 4, found
    finally:
        await conn.close()
