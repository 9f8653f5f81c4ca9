"""A foreign key that points *at* a partitioned table (issue 19), on a real PostgreSQL: added,
migrated around and inspected, from a plain or a partitioned table. Each found on PostgreSQL 15
and 18 first (README, "Partitioned tables"). DEFAULT and foreign partitions, a leaf that fails:
``test_partitioned_leaves.py``."""

from __future__ import annotations

from typing import Any

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from tests.engine.test_partitioned_keys import _heals_then_unchanged
from worker.engine.backfill import Finish, run_pending
from worker.engine.connection import connect
from worker.engine.heal import Outcome, heal
from worker.engine.inspect import fetch_catalog

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
