"""A column's own properties across an online migration (issue 19), on a real PostgreSQL.

PostgreSQL keeps column privileges, the statistics target, attribute options, storage,
compression, the comment and security labels per attribute number: without more they stay on
the column a migration retires. These tests set each on the old column and check that the
column replacing it has them — after an in-place swap (``integer`` → ``bigint``), and for a
rename from its expand on (a role granted only the old column uses the new one as soon as the
new version does) through its contract (what was granted on the old column meanwhile is kept).
Security labels need a provider: see ``test_carry_labels.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import RENAME, expand
from tests.engine.test_contract import GRACE, always, tracked_long_ago
from tests.engine.test_swap_dependents import CODE, SETTINGS
from worker.engine import backfill_store
from worker.engine.backfill import Finish, run_migration, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, run_contracts
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.heal import Outcome, heal

pytestmark = pytest.mark.postgres
APP = "schemaheal_carry_app"
LATE = "schemaheal_carry_late"  # granted the old column during the rollout

ROLES = f"""
DO $$ BEGIN CREATE ROLE {APP}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE {LATE}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
"""

#: one column's own properties, as comparable values
PROPERTIES = """
SELECT coalesce((SELECT array_agg(CASE x.grantee WHEN 0 THEN 'PUBLIC'
                 ELSE pg_get_userbyid(x.grantee) END || ':' || x.privilege_type
                 || CASE WHEN x.is_grantable THEN '*' ELSE '' END)
                   FROM aclexplode(a.attacl) x), '{}') AS grants,
       nullif(coalesce(a.attstattarget::int, -1), -1) AS statistics,
       -- the options ALTER COLUMN SET takes (Debian's 15.20 keeps its own pg_attver there)
       ARRAY(SELECT o FROM unnest(a.attoptions) AS o WHERE o LIKE 'n_distinct%') AS options,
       a.attstorage::text AS storage,
       a.attcompression::text AS compression,
       col_description(a.attrelid, a.attnum) AS comment
  FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname = $2"""


async def properties(conn: Any, table: str, name: str) -> dict[str, Any]:
    row = await conn.fetchrow(PROPERTIES, table, name)
    assert row is not None, f"no column {name} in {table}"
    return {**row, "grants": sorted(row["grants"])}


async def as_role(database: FreshDatabase, role: str, sql: str) -> Any:
    """``sql``'s value, run as ``role`` (a role granted columns, not the table)."""
    conn = await asyncpg.connect(database.dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_an_in_place_swap_carries_the_column_s_own_properties(
    database: FreshDatabase,
) -> None:
    await database.execute(
        ROLES + "CREATE TABLE public.accounts (id serial PRIMARY KEY, code integer NOT NULL);"
        "INSERT INTO public.accounts (code) SELECT g * 3 FROM generate_series(1, 300) g;"
        f"GRANT SELECT (id, code), UPDATE (code) ON public.accounts TO {APP};"
        f"GRANT REFERENCES (code) ON public.accounts TO {APP} WITH GRANT OPTION;"
        "GRANT SELECT (code) ON public.accounts TO PUBLIC;"
        "ALTER TABLE public.accounts ALTER COLUMN code SET STATISTICS 321;"
        "ALTER TABLE public.accounts ALTER COLUMN code SET (n_distinct = 42);"
        "COMMENT ON COLUMN public.accounts.code IS 'the code';"
    )
    conn = await connect(database.dsn)
    try:
        before = await properties(conn, "public.accounts", "code")
        assert before["grants"] and before["statistics"] == 321  # the setup took
        await expand(conn, CODE)
        assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED
        kind = await conn.fetchval("SELECT pg_typeof(code)::text FROM public.accounts LIMIT 1")
        assert kind == "bigint"  # the swap ran
        assert await properties(conn, "public.accounts", "code") == before
    finally:
        await conn.close()
    # the application's role still reads and writes the column that took the name
    sql = "UPDATE public.accounts SET code = code + 1 WHERE id = 7 RETURNING code"
    assert await as_role(database, APP, sql) == 22


def users(*columns: dict[str, Any]) -> Any:
    return load_manifest(
        manifest(table("users", column("id", "integer", nullable=False), *columns,
                       primary_key=pk("id")))
    )  # fmt: skip


async def test_a_rename_gives_the_new_column_the_old_one_s_properties_from_expand_to_contract(
    database: FreshDatabase,
) -> None:
    await database.execute(
        ROLES + "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i;"
        f"GRANT SELECT (id, name), INSERT (id, name), UPDATE (name) ON public.users TO {APP};"
        "ALTER TABLE public.users ALTER COLUMN name SET STATISTICS 250;"
        "ALTER TABLE public.users ALTER COLUMN name SET (n_distinct = -0.5);"
        "ALTER TABLE public.users ALTER COLUMN name SET STORAGE EXTERNAL;"
        "ALTER TABLE public.users ALTER COLUMN name SET COMPRESSION pglz;"
        "COMMENT ON COLUMN public.users.name IS 'what we call them';"
    )
    conn = await connect(database.dsn)
    try:
        before = await properties(conn, "public.users", "name")
        assert before["storage"] == "e" and before["compression"] == "p"  # the setup took
        renamed = users(column("full_name", nullable=False, renamed_from="name"))
        assert (await heal(conn, renamed)).outcome is Outcome.HEALED
        # at expand: the new version's replicas, with the same role, use the new column
        assert await properties(conn, "public.users", "full_name") == before
        sql = "INSERT INTO public.users (id, full_name) VALUES (51, 'new') RETURNING full_name"
        assert await as_role(database, APP, sql) == "new"
        (m,) = [p.migration for p in await backfill_store.registered(conn)]
        assert await run_pending(conn) == {m.id: Finish.EXPANDED}
        assert await as_role(database, APP, "SELECT full_name FROM public.users WHERE id = 3") \
            == "user 3"  # fmt: skip
        # granted on the old column during the rollout: kept at contract
        await conn.execute(f"GRANT SELECT (id, name) ON public.users TO {LATE}")
        await tracked_long_ago(conn)
        assert (await run_contracts(conn, always, GRACE))[m.id][0] is ContractFinish.CONTRACTED
        after = await properties(conn, "public.users", "full_name")
        assert after == {**before, "grants": sorted([*before["grants"], f"{LATE}:SELECT"])}
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.users'::regclass"
            " AND attname = 'name' AND NOT attisdropped"
        ) == 0  # fmt: skip
    finally:
        await conn.close()
    assert await as_role(database, LATE, "SELECT full_name FROM public.users WHERE id = 4") \
        == "user 4"  # fmt: skip


async def test_the_manifest_s_comment_wins_over_the_old_column_s(database: FreshDatabase) -> None:
    await database.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 5) AS i;"
        "COMMENT ON COLUMN public.users.name IS 'old words';"
    )
    conn = await connect(database.dsn)
    try:
        declared = column("full_name", nullable=False, renamed_from="name", comment="new words")
        assert (await heal(conn, users(declared))).outcome is Outcome.HEALED
        comment = (await properties(conn, "public.users", "full_name"))["comment"]
        assert comment == "new words"
    finally:
        await conn.close()


async def test_a_partition_s_own_properties_are_carried_too(database: FreshDatabase) -> None:
    """Grants and settings of a partition's column (reading the partition directly, its own
    statistics) are the partition's: each partition gets its own, the table first."""
    await database.execute(
        ROLES + "CREATE TABLE public.users (id integer NOT NULL, name text NOT NULL,"
        " PRIMARY KEY (id)) PARTITION BY RANGE (id);"
        "CREATE TABLE public.users_low PARTITION OF public.users FOR VALUES FROM (0) TO (100);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i;"
        f"GRANT SELECT (id, name) ON public.users TO {APP};"
        f"GRANT SELECT (id, name), UPDATE (name) ON public.users_low TO {LATE};"
        "ALTER TABLE public.users ALTER COLUMN name SET STATISTICS 300;"
        "ALTER TABLE public.users ALTER COLUMN name SET (n_distinct_inherited = 40);"
        "ALTER TABLE public.users_low ALTER COLUMN name SET (n_distinct = 30);"
        "COMMENT ON COLUMN public.users_low.name IS 'low names';"
    )
    conn = await connect(database.dsn)
    try:
        before = {
            t: await properties(conn, t, "name") for t in ("public.users", "public.users_low")
        }
        await expand(conn, RENAME)
        after = {
            t: await properties(conn, t, "full_name") for t in ("public.users", "public.users_low")
        }
        assert after == before
    finally:
        await conn.close()


async def test_what_the_new_type_cannot_have_is_named_in_the_log(
    database: FreshDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """``text`` → ``integer`` into a new column: an ``integer`` is stored inline, with no
    storage or compression of its own; the old column's are named, not silently left."""
    await database.execute(
        "CREATE TABLE public.items (id serial PRIMARY KEY, qty text);"
        "ALTER TABLE public.items ALTER COLUMN qty SET STORAGE EXTERNAL;"
        "ALTER TABLE public.items ALTER COLUMN qty SET COMPRESSION pglz;"
        "ALTER TABLE public.items ALTER COLUMN qty SET STATISTICS 200;"
    )
    m = ColumnMigration(
        kind=MigrationKind.CONVERT, schema="public", table="items", key=("id",),
        new_column="qty_n", new_type="integer", forward="qty::integer", old_column="qty",
    )  # fmt: skip
    conn = await connect(database.dsn)
    try:
        with caplog.at_level(logging.WARNING, logger="schemaheal.postgres"):
            await expand(conn, m)
            await asyncio.sleep(0.05)  # asyncpg hands the server's messages over on its loop
        assert (await properties(conn, "public.items", "qty_n"))["statistics"] == 200
    finally:
        await conn.close()
    warned = sorted(r.getMessage() for r in caplog.records if r.name == "schemaheal.postgres")
    assert warned == [
        f"PostgreSQL: schemaheal: public.items.qty has {what}, which public.items.qty_n cannot "
        "have (its type is stored inline): not carried"
        for what in ("compression pglz", "storage EXTERNAL")
    ]
