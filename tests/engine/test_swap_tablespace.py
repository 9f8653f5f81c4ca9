"""The in-place swap keeps an index on the old column in its tablespace (issue 19): the prepared
index is built in the same one (``pg_get_indexdef`` leaves the tablespace out), so after the swap
the index under the old name is where it was; and a primary key changed in place (``integer`` →
``bigint``) keeps its index's tablespace too. On a real PostgreSQL, with a tablespace in a
temporary directory owned by the server's user."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import USERS, WIDE_KEY, expand
from tests.engine.test_swap_dependents import CODE, SETTINGS
from worker.engine.backfill import Finish, run_migration
from worker.engine.connection import connect

pytestmark = pytest.mark.postgres

WHERE = """
SELECT c.relname::text, t.spcname::text FROM pg_class c
  LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
 WHERE c.relname IN ('accounts_code_idx', 'accounts_tenant_idx') ORDER BY 1"""


@contextlib.asynccontextmanager
async def tablespace(database: FreshDatabase) -> AsyncIterator[str]:
    """A new tablespace's name, in a temporary directory owned by the server's user."""
    space = f"sh_ts_{uuid.uuid4().hex[:8]}"
    owner = database.server.datadir.stat()
    with tempfile.TemporaryDirectory(prefix="schemaheal-ts-") as root:
        location = Path(root) / "ts"
        location.mkdir()
        os.chown(location, owner.st_uid, owner.st_gid)
        os.chmod(root, 0o755)
        await database.execute(f"CREATE TABLESPACE {space} LOCATION '{location}'")
        try:
            yield space
        finally:
            await database.execute(f"DROP TABLESPACE IF EXISTS {space}")


async def test_a_swapped_index_stays_in_its_tablespace(database: FreshDatabase) -> None:
    async with tablespace(database) as space:
        try:
            await database.execute(
                "CREATE TABLE public.accounts (id serial PRIMARY KEY, tenant integer NOT NULL,"
                " code integer NOT NULL);"
                "INSERT INTO public.accounts (tenant, code)"
                " SELECT g % 7, g * 3 FROM generate_series(1, 500) g;"
                f"CREATE INDEX accounts_code_idx ON public.accounts (code) TABLESPACE {space};"
                "CREATE INDEX accounts_tenant_idx ON public.accounts (tenant, code);"
            )
            conn = await connect(database.dsn)
            try:
                before = [tuple(r) for r in await conn.fetch(WHERE)]
                assert before == [("accounts_code_idx", space), ("accounts_tenant_idx", None)]
                await expand(conn, CODE)
                assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED
                assert [tuple(r) for r in await conn.fetch(WHERE)] == before
                kind = await conn.fetchval("SELECT pg_typeof(code)::text FROM public.accounts")
                assert kind == "bigint"  # the swap ran
            finally:
                await conn.close()
        finally:
            admin = await asyncpg.connect(database.dsn)
            try:
                await admin.execute("DROP TABLE IF EXISTS public.accounts")
            finally:
                await admin.close()


async def test_a_key_changed_in_place_keeps_its_index_tablespace(database: FreshDatabase) -> None:
    """The new key's unique index is built CONCURRENTLY before the swap: in the old key's
    tablespace, which the plan does not know (it was built in the default one)."""
    where = """SELECT c.conname::text, t.spcname::text FROM pg_constraint c
                 JOIN pg_class i ON i.oid = c.conindid
                 LEFT JOIN pg_tablespace t ON t.oid = i.reltablespace
                WHERE c.conrelid = 'public.users'::regclass AND c.contype = 'p'"""
    async with tablespace(database) as space:
        try:
            await database.execute(
                USERS.format(rows=300) + f"ALTER INDEX public.users_pkey SET TABLESPACE {space};"
            )
            conn = await connect(database.dsn)
            try:
                assert tuple(await conn.fetchrow(where)) == ("users_pkey", space)
                await expand(conn, WIDE_KEY)
                assert await run_migration(conn, WIDE_KEY, SETTINGS) is Finish.EXPANDED
                kind = await conn.fetchval("SELECT pg_typeof(id)::text FROM public.users LIMIT 1")
                assert kind == "bigint"  # the swap ran
                assert tuple(await conn.fetchrow(where)) == ("users_pkey", space)
            finally:
                await conn.close()
        finally:
            await database.execute("DROP TABLE IF EXISTS public.users")
