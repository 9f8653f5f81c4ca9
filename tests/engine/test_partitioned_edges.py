"""Partitioned tables at their edges (issue 19), on a real PostgreSQL: a foreign key that points
*at* a partitioned table, DEFAULT partitions at every level, foreign partitions, and a leaf's
key that fails on its data. Each found on PostgreSQL 15 and 18 first (README, "Partitioned
tables"); the plans' SQL: ``test_plan_partitioned.py``."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from tests.engine.test_partitioned_additive import EVENTS, KIND, NAME_IDX, events
from tests.engine.test_partitioned_keys import _heals_then_unchanged, leaf_indexes
from worker.engine.backfill import Finish, run_pending
from worker.engine.connection import connect
from worker.engine.heal import Outcome, heal
from worker.engine.inspect import fetch_catalog

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

#: orders points at events, partitioned by range with a sub-partitioned partition
REFERENCED = """
CREATE TABLE public.events (id integer NOT NULL, k integer NOT NULL, PRIMARY KEY (id, k))
    PARTITION BY RANGE (id);
CREATE TABLE public.events_1 PARTITION OF public.events FOR VALUES FROM (0) TO (100);
CREATE TABLE public.events_2 PARTITION OF public.events FOR VALUES FROM (100) TO (1000)
    PARTITION BY LIST (k);
CREATE TABLE public.events_2a PARTITION OF public.events_2 FOR VALUES IN (1);
CREATE TABLE public.events_2b PARTITION OF public.events_2 DEFAULT;
INSERT INTO public.events SELECT i, 1 + i % 2 FROM generate_series(1, 500) i;
CREATE TABLE public.orders (id integer PRIMARY KEY, event_id integer, event_k integer);
INSERT INTO public.orders SELECT i, i, 1 + i % 2 FROM generate_series(1, 500) i;
"""
REFERENCED_EVENTS = table(
    "events", column("id", "integer", nullable=False), column("k", "integer", nullable=False),
    primary_key=pk("id", "k"),
)  # fmt: skip
ORDERS_FK = fk(["event_id", "event_k"], "events", ["id", "k"], name="orders_event_fkey")


def orders(*more: dict[str, Any], **extra: Any) -> dict[str, Any]:
    columns = (column("id", "integer", nullable=False), column("event_id", "integer"),
               column("event_k", "integer"), *more)  # fmt: skip
    return table("orders", *columns, primary_key=pk("id"), **extra)


async def test_a_foreign_key_pointing_at_a_partitioned_table_is_no_drift(
    database: FreshDatabase,
) -> None:
    """PostgreSQL gives orders one hidden foreign key per partition of events (named
    orders_event_fkey_1… on 18, orders_event_id_event_k_fkey… on 15; on 15 they stay not
    validated after VALIDATE): they are the declared key's, never extra constraints, and the
    key is added NOT VALID, then validated, as on a plain table."""
    await database.execute(REFERENCED)
    wanted = manifest(REFERENCED_EVENTS, orders(foreign_keys=[ORDERS_FK]))
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, wanted)
        assert [s.sql for s in result.plan.statements] == [
            "ALTER TABLE public.orders ADD CONSTRAINT orders_event_fkey FOREIGN KEY (event_id, "
            "event_k) REFERENCES public.events (id, k) NOT VALID",
            "ALTER TABLE public.orders VALIDATE CONSTRAINT orders_event_fkey",
        ]
        hidden = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.orders'::regclass"
            " AND contype = 'f' AND conparentid <> 0"
        )
        assert hidden == 4  # events_1, events_2, events_2a, events_2b: there, and no drift
        rows = await conn.fetch("SELECT convalidated FROM pg_constraint"
                                " WHERE conname = 'orders_event_fkey'")  # fmt: skip
        assert [r["convalidated"] for r in rows] == [True]
    finally:
        await conn.close()


async def test_a_partitioned_table_pointing_at_a_partitioned_table_reads_each_leaf_once(
    database: FreshDatabase,
) -> None:
    """orders partitioned too: each of its leaves gets the key NOT VALID and validated, the
    parent's attaches them without reading them again (each leaf read once), and the hidden
    per-partition keys on both levels are no drift."""
    await database.execute(
        REFERENCED.replace("event_k integer);", "event_k integer) PARTITION BY RANGE (id);"
                 "CREATE TABLE public.orders_1 PARTITION OF public.orders FOR VALUES FROM (0)"
                 " TO (250); CREATE TABLE public.orders_2 PARTITION OF public.orders"
                 " FOR VALUES FROM (250) TO (1000);")
    )  # fmt: skip
    reads = ("SELECT relname::text AS name, seq_scan FROM pg_stat_user_tables"
             " WHERE relname LIKE 'orders_%' ORDER BY 1")  # fmt: skip
    conn = await connect(database.dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        before = {r["name"]: r["seq_scan"] for r in await conn.fetch(reads)}
        wanted = manifest(REFERENCED_EVENTS, orders(foreign_keys=[ORDERS_FK]))
        result = await _heals_then_unchanged(conn, wanted)
        assert [s.sql.split(" ADD ")[0].split(" VALIDATE ")[0] for s in result.plan.statements] == [
            "ALTER TABLE public.orders_1", "ALTER TABLE public.orders_1",
            "ALTER TABLE public.orders_2", "ALTER TABLE public.orders_2",
            "ALTER TABLE public.orders",
        ]  # fmt: skip
        await conn.execute("SELECT pg_stat_force_next_flush()")
        after = {r["name"]: r["seq_scan"] for r in await conn.fetch(reads)}
        assert {name: after[name] - before[name] for name in after} == {
            "orders_1": 1, "orders_2": 1
        }  # fmt: skip
    finally:
        await conn.close()


async def test_the_referenced_partitions_columns_are_not_read(database: FreshDatabase) -> None:
    """Inspect reads the columns of the tables a key points at (to name them): the declared
    key's table, not each partition PostgreSQL's per-partition copies point at (partitions in
    another schema here, so that only the keys would bring them in)."""
    await database.execute(
        "CREATE SCHEMA archive;"
        + REFERENCED.replace("TABLE public.events_", "TABLE archive.events_").replace(
            "PARTITION OF public.events_2", "PARTITION OF archive.events_2"
        )
        + "ALTER TABLE public.orders ADD CONSTRAINT orders_event_fkey"
        " FOREIGN KEY (event_id, event_k) REFERENCES public.events (id, k);"
    )
    conn = await connect(database.dsn)
    try:
        rows = await fetch_catalog(conn, ["public"])
        archive = await conn.fetch("SELECT c.oid FROM pg_class c JOIN pg_namespace n"
                                   " ON n.oid = c.relnamespace WHERE n.nspname = 'archive'")  # fmt: skip
        assert {r["oid"] for r in archive} & {r["rel"] for r in rows["columns"]} == set()
        assert len(archive) >= 4  # the 4 partitions and their indexes
    finally:
        await conn.close()


async def test_a_column_added_to_a_table_pointing_at_a_partitioned_table_is_no_drift(
    database: FreshDatabase,
) -> None:
    """An additive change on orders (a column, an index) once its key points at events: the
    hidden per-partition keys are not reported, nor planned against."""
    await database.execute(
        REFERENCED + "ALTER TABLE public.orders ADD CONSTRAINT orders_event_fkey"
        " FOREIGN KEY (event_id, event_k) REFERENCES public.events (id, k);"
    )
    note = column("note", "text", nullable=False, default="''")
    index = {"name": "orders_event_idx", "elements": ["event_id", "event_k"]}
    wanted = manifest(REFERENCED_EVENTS, orders(note, foreign_keys=[ORDERS_FK], indexes=[index]))
    conn = await connect(database.dsn)
    try:
        result = await _heals_then_unchanged(conn, wanted)
        assert all("orders_event_fkey" not in s.sql for s in result.plan.statements)
    finally:
        await conn.close()


async def test_a_column_pointing_at_a_partitioned_table_is_widened_in_place(
    database: FreshDatabase,
) -> None:
    """orders.event_id integer → bigint, online and in place, while its key points at events:
    the swap takes the declared key and puts it back (PostgreSQL brings the per-partition ones
    with it); it stopped on the old code, dropping a per-partition key PostgreSQL had already
    dropped with the declared one."""
    await database.execute(
        REFERENCED + "ALTER TABLE public.orders ADD CONSTRAINT orders_event_fkey"
        " FOREIGN KEY (event_id, event_k) REFERENCES public.events (id, k);"
    )
    wide = column("event_id", "bigint", using="event_id")
    wanted = manifest(REFERENCED_EVENTS, table(
        "orders", column("id", "integer", nullable=False), wide, column("event_k", "integer"),
        primary_key=pk("id"), foreign_keys=[ORDERS_FK],
    ))  # fmt: skip
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        assert result.outcome is Outcome.HEALED, result.error_message
        assert list((await run_pending(conn)).values()) == [Finish.EXPANDED]
        row = await conn.fetchrow(
            "SELECT format_type(a.atttypid, NULL) AS type, c.convalidated AS valid,"
            " pg_get_constraintdef(c.oid) AS def FROM pg_attribute a, pg_constraint c"
            " WHERE a.attrelid = 'public.orders'::regclass AND a.attname = 'event_id'"
            " AND c.conname = 'orders_event_fkey'"
        )
        assert dict(row) == {"type": "bigint", "valid": True, "def": "FOREIGN KEY (event_id, "
                             "event_k) REFERENCES public.events(id, k)"}  # fmt: skip
        again = await heal(conn, load_manifest(wanted))
        assert (again.outcome, again.plan.drift) == (Outcome.UNCHANGED, ()), again.error_message
    finally:
        await conn.close()


@pytest.mark.parametrize("key_change", [False, True], ids=["backfill", "key-column"])
async def test_a_partitioned_table_a_foreign_key_points_at_migrates_online_or_refuses(
    database: FreshDatabase, key_change: bool
) -> None:
    """events, which orders points at: a computed NOT NULL column is backfilled and enforced
    on every partition, orders' key untouched; a change of a key column (indexed by the key)
    is refused before anything runs, as on any partitioned table."""
    await database.execute(
        REFERENCED + "ALTER TABLE public.orders ADD CONSTRAINT orders_event_fkey"
        " FOREIGN KEY (event_id, event_k) REFERENCES public.events (id, k);"
    )
    k = column("k", "integer", nullable=False)
    if key_change:
        k = column("k", "bigint", nullable=False, using="k")
    note = column("note", nullable=False, backfill="'n' || id")
    events_ = table("events", REFERENCED_EVENTS["columns"][0], k, note, primary_key=pk("id", "k"))
    wanted = manifest(events_, orders(foreign_keys=[ORDERS_FK]))
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        if key_change:
            assert (result.outcome, result.error_code, result.applied) == (
                Outcome.FAILED, "partitioned-table", ()
            ), result.error_message  # fmt: skip
            return
        assert result.outcome is Outcome.HEALED, result.error_message
        assert list((await run_pending(conn)).values()) == [Finish.EXPANDED]
        left = await conn.fetchval("SELECT count(*) FROM public.events WHERE note IS NULL")
        valid = await conn.fetchval(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'orders_event_fkey'"
        )
        assert (left, valid) == (0, True)
        again = await heal(conn, load_manifest(wanted))
        assert (again.outcome, again.plan.drift) == (Outcome.UNCHANGED, ()), again.error_message
    finally:
        await conn.close()


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
