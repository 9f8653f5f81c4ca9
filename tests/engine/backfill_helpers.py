"""Helpers of the backfill tests: a populated table, the heal's expand step, a touch counter."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import FreshDatabase
from worker.engine import backfill, backfill_store
from worker.engine.connection import Connection, connect
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_sql import render

#: users(id serial, name text, amount numeric(12,2), touches int) with ``rows`` rows; a test
#: trigger counts the UPDATEs each row gets (named so that it fires before the sync trigger)
USERS = """
CREATE TABLE public.users (
    id serial PRIMARY KEY, name text NOT NULL, amount numeric(12, 2),
    touches integer NOT NULL DEFAULT 0
);
CREATE FUNCTION public.count_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.touches := OLD.touches + 1; RETURN NEW; END $$;
CREATE TRIGGER a_count_touch BEFORE UPDATE ON public.users
    FOR EACH ROW EXECUTE FUNCTION public.count_touch();
INSERT INTO public.users (name, amount)
    SELECT 'user ' || g, g / 100.0 FROM generate_series(1, {rows}) g;
"""


def migration(
    kind: MigrationKind, new: str, type_: str, forward: str, **more: Any
) -> ColumnMigration:
    values = {"schema": "public", "table": "users", "key": ("id",), **more}
    return ColumnMigration(kind=kind, new_column=new, new_type=type_, forward=forward, **values)


RENAME = migration(
    MigrationKind.RENAME, "full_name", "text", "name", old_column="name", reverse="full_name",
    not_null=True,
)  # fmt: skip
CENTS = migration(
    MigrationKind.CONVERT, "amount_cents", "bigint", "round(amount * 100)::bigint",
    old_column="amount", reverse="(amount_cents / 100.0)::numeric(12,2)",
)  # fmt: skip
LABEL = migration(
    MigrationKind.BACKFILL, "label", "text", "lower(name) || '#' || id", not_null=True
)
WIDE_KEY = migration(
    MigrationKind.CONVERT, "id", "bigint", "id::bigint", old_column="id", in_place=True,
    not_null=True,
)  # fmt: skip


async def expand(conn: Connection, m: ColumnMigration) -> None:
    """What the heal does for ``m``: its expand statements and its registration, one transaction."""
    async with conn.transaction():
        for statement in render(m).expand:
            await conn.execute(statement)
        await backfill.register(conn, m)


async def expanded_users(database: FreshDatabase, rows: int, m: ColumnMigration) -> Any:
    """A connection to ``database`` holding ``users`` with ``rows`` rows, ``m`` expanded."""
    await database.execute(USERS.format(rows=rows))
    conn = await connect(database.dsn)
    try:
        await expand(conn, m)
    except BaseException:
        await conn.close()
        raise
    return conn


async def wait_for_batches(conn: Connection, migration_id: str, n: int) -> None:
    """Until the migration's record counts ``n`` batches (at most 6 s)."""
    for _ in range(600):
        record = await backfill_store.progress(conn, migration_id)
        if record is not None and record.batches >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the runner did not reach {n} batches")


async def trigger_and_columns(db: Any, table: str = "public.users") -> tuple[bool, set[str]]:
    """(a migration's sync trigger is on ``table``, the table's columns); ``db`` has fetch()."""
    trigger = await db.fetch(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname LIKE 'schemaheal_sync_%'",
        table,
    )
    rows = await db.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
        " AND attnum > 0 AND NOT attisdropped",
        table,
    )
    return bool(trigger), {r["attname"] for r in rows}
