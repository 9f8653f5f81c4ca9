"""The in-place swap carries what uses the old column (issue 19), on a real PostgreSQL: indexes
of every shape, a unique constraint a foreign key references, nested views with their owner,
options, grants, comments and an INSTEAD OF trigger, a trigger and a row-level security policy —
with rows, and old-version writers running through the swap. Afterwards each exists under its
old name, is valid, uses the new (bigint) column, and the views answer as before. What it cannot
carry stops it first, by name — and, when already there, stops the expand in the heal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import expand
from worker.engine import backfill_store as store
from worker.engine.backfill import BackfillSettings, Finish, run_migration
from worker.engine.connection import connect
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_changed import BEFORE_SWAP, swap_refusals
from worker.engine.heal import Outcome, heal

pytestmark = pytest.mark.postgres
ROWS = 1500
READER = "schemaheal_swap_reader"

SCHEMA = f"""
DO $$ BEGIN CREATE ROLE {READER}; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE public.accounts (
    id serial PRIMARY KEY, tenant integer NOT NULL, code integer NOT NULL, amount integer);
INSERT INTO public.accounts (tenant, code, amount)
    SELECT g % 7, g * 3, g FROM generate_series(1, {ROWS}) g;
CREATE INDEX accounts_code_idx ON public.accounts (code);
CREATE INDEX accounts_tenant_code_idx ON public.accounts (tenant, code) INCLUDE (amount);
CREATE INDEX accounts_big_idx ON public.accounts (tenant) WHERE code > 3000;
CREATE INDEX accounts_code_mod_idx ON public.accounts ((code % 10), id);
COMMENT ON INDEX public.accounts_code_idx IS 'by code';
ALTER TABLE public.accounts ADD CONSTRAINT accounts_code_key UNIQUE (code);
ALTER TABLE public.accounts ADD CONSTRAINT accounts_tenant_code_key UNIQUE (tenant, code)
    DEFERRABLE INITIALLY DEFERRED;
COMMENT ON CONSTRAINT accounts_code_key ON public.accounts IS 'codes are unique';
CREATE TABLE public.payments (id serial PRIMARY KEY,
    account_code integer REFERENCES public.accounts (code));
INSERT INTO public.payments (account_code) SELECT g * 3 FROM generate_series(1, 200) g;
CREATE VIEW public.account_codes WITH (security_barrier = true) AS
    SELECT id, tenant, code, code * 2 AS double FROM public.accounts WHERE code > 0;
COMMENT ON VIEW public.account_codes IS 'codes';
COMMENT ON COLUMN public.account_codes.double IS 'twice the code';
GRANT SELECT ON public.account_codes TO {READER};
GRANT UPDATE (tenant) ON public.account_codes TO {READER};
CREATE VIEW public.big_codes AS SELECT id, code FROM public.account_codes WHERE double > 100;
CREATE FUNCTION public.no_insert() RETURNS trigger LANGUAGE plpgsql AS
    $f$ BEGIN RAISE EXCEPTION 'read only'; END $f$;
CREATE TRIGGER big_codes_read_only INSTEAD OF INSERT ON public.big_codes
    FOR EACH ROW EXECUTE FUNCTION public.no_insert();
CREATE FUNCTION public.no_negative() RETURNS trigger LANGUAGE plpgsql AS
    $f$ BEGIN RAISE EXCEPTION 'negative code'; END $f$;
CREATE TRIGGER accounts_no_negative BEFORE UPDATE OF code ON public.accounts
    FOR EACH ROW WHEN (NEW.code < 0) EXECUTE FUNCTION public.no_negative();
ALTER TABLE public.accounts DISABLE TRIGGER accounts_no_negative;
ALTER TABLE public.accounts ENABLE TRIGGER accounts_no_negative;
ALTER TABLE public.accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY accounts_positive ON public.accounts FOR SELECT TO {READER} USING (code > 0);
COMMENT ON POLICY accounts_positive ON public.accounts IS 'positive codes only';
"""

CODE = ColumnMigration(
    kind=MigrationKind.CONVERT, schema="public", table="accounts", key=("id",),
    new_column="code", new_type="bigint", forward="code::bigint", old_column="code",
    in_place=True, not_null=True,
)  # fmt: skip
SETTINGS = BackfillSettings(batch_rows=200)
#: the manifest whose heal expands CODE
WIDE_CODE = manifest(
    table("accounts",
          column("id", "integer", nullable=False, default="nextval('accounts_id_seq')"),
          column("tenant", "integer", nullable=False),
          column("code", "bigint", nullable=False, using="code"),
          column("amount", "integer"), primary_key=pk("id")),
    sequences=[{"name": "accounts_id_seq", "data_type": "integer",
                "owned_by": {"table": "accounts", "column": "id"}}],
)  # fmt: skip
INDEXES = (
    "accounts_big_idx", "accounts_code_idx", "accounts_code_key", "accounts_code_mod_idx",
    "accounts_tenant_code_idx", "accounts_tenant_code_key",
)  # fmt: skip

#: every object that uses the code column, with its definition as PostgreSQL prints it now
DEFINITIONS = """
SELECT 'index ' || c.relname || ': ' || pg_get_indexdef(i.indexrelid)
       || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'public.accounts'::regclass AND NOT i.indisprimary
UNION ALL
SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid)
       || CASE WHEN convalidated THEN '' ELSE ' NOT VALID' END
       || coalesce(' -- ' || obj_description(oid, 'pg_constraint'), '')
  FROM pg_constraint WHERE contype IN ('u', 'f')
   AND conrelid IN ('public.accounts'::regclass, 'public.payments'::regclass)
UNION ALL
SELECT 'view ' || c.oid::regclass::text || ' ' || coalesce(array_to_string(c.reloptions, ','), '')
       || ' ' || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '')
       || ' -- ' || coalesce(obj_description(c.oid, 'pg_class'), '') || ': '
       || pg_get_viewdef(c.oid)
  FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace
UNION ALL
SELECT 'column comment ' || col_description('public.account_codes'::regclass, 4)
UNION ALL
SELECT 'trigger ' || tgname || ' ' || tgenabled::text || ': ' || pg_get_triggerdef(oid)
  FROM pg_trigger WHERE NOT tgisinternal AND tgname NOT LIKE 'schemaheal%'
UNION ALL
SELECT 'policy ' || policyname || ' ' || array_to_string(roles, ',') || ': ' || qual
       || ' -- ' || obj_description(p.oid, 'pg_policy')
  FROM pg_policies s JOIN pg_policy p ON p.polname = s.policyname
ORDER BY 1"""


@pytest.fixture
async def conn(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    await database.execute(SCHEMA)
    connection = await connect(database.dsn)
    yield connection
    await connection.close()


async def _write(database: FreshDatabase, stop: asyncio.Event, first_code: int) -> int:
    """An old replica: inserts and updates through ``code`` until ``stop``; its writes count."""
    writer = await asyncpg.connect(database.dsn)
    writes = 0
    try:
        while not stop.is_set():
            await writer.execute(
                "INSERT INTO public.accounts (tenant, code, amount) VALUES (1, $1, 1)",
                first_code + writes,
            )
            await writer.execute(
                "UPDATE public.accounts SET amount = amount + 1, tenant = tenant"
                " WHERE id = (SELECT max(id) FROM public.accounts)"
            )
            writes += 2
            await asyncio.sleep(0.002)
    finally:
        await writer.close()
    return writes


async def test_the_swap_carries_indexes_constraints_views_triggers_and_policies(
    conn: asyncpg.Connection, database: FreshDatabase
) -> None:
    before = [r[0] for r in await conn.fetch(DEFINITIONS)]
    view_rows = "SELECT * FROM public.big_codes WHERE id <= $1 ORDER BY id"
    through_views = [tuple(r) for r in await conn.fetch(view_rows, ROWS)]
    await expand(conn, CODE)
    stop = asyncio.Event()
    writers = [asyncio.create_task(_write(database, stop, 10**6 * (k + 1))) for k in range(2)]
    try:
        assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED
    finally:
        stop.set()
        writes = sum(await asyncio.gather(*writers))
    assert writes > 0
    # the same objects, under the same names, printed the same: they use the column named code
    # (on the old one they would print code__sh_old), and each index is valid
    # (bigint % integer has no operator: PostgreSQL now prints the constant's cast)
    after = [r[0].replace("(10)::bigint", "10") for r in await conn.fetch(DEFINITIONS)]
    assert after == before
    assert not [x for x in after if "__sh" in x]
    attnum = await conn.fetchval(
        "SELECT attnum FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass"
        " AND attname = 'code' AND format_type(atttypid, NULL) = 'bigint'"
    )
    on_new = await conn.fetch(
        """SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE i.indrelid = 'public.accounts'::regclass AND i.indisvalid AND (
              $1 = ANY (i.indkey::int2[]) OR EXISTS (SELECT FROM pg_depend d
                WHERE d.objid = i.indexrelid AND d.refobjsubid = $1)
              OR EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid
                AND k.contype = 'u' AND $1 = ANY (k.conkey)))
            ORDER BY 1""",
        attnum,
    )
    assert tuple(r[0] for r in on_new) == INDEXES
    assert [tuple(r) for r in await conn.fetch(view_rows, ROWS)] == through_views
    view_type = await conn.fetchval(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = 'public.big_codes'::regclass AND attname = 'code'"
    )
    assert view_type == "bigint"
    # the views see the writers' rows too, and what was carried still acts
    assert await conn.fetchval("SELECT count(*) FROM public.account_codes") == ROWS + writes // 2
    with pytest.raises(asyncpg.RaiseError, match="negative code"):
        await conn.execute("UPDATE public.accounts SET code = -1 WHERE id = 1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute("INSERT INTO public.accounts (tenant, code) VALUES (1, 3)")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO public.payments (account_code) VALUES (4)")
    with pytest.raises(asyncpg.RaiseError, match="read only"):
        await conn.execute("INSERT INTO public.big_codes (id, code) VALUES (0, 0)")
    privileges = await conn.fetchrow(
        f"""SELECT has_table_privilege('{READER}', 'public.big_codes', 'SELECT') AS nested,
                   has_table_privilege('{READER}', 'public.account_codes', 'SELECT') AS view,
                   has_column_privilege('{READER}', 'public.account_codes', 'tenant', 'UPDATE')
                   AS col"""
    )
    assert tuple(privileges) == (False, True, True)


async def fixed_and_retried(conn: asyncpg.Connection, fix: str) -> None:
    """``fix`` run, the stopped migration retried: it must finish."""
    await conn.execute(fix)
    await store.retry(conn, CODE.id)
    assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED


async def test_what_the_swap_cannot_carry_stops_it_first_naming_it(
    conn: asyncpg.Connection,
) -> None:
    """A materialized view (re-created it would be refilled under the lock), a generated column,
    an exclusion constraint, extended statistics, a function returning a view's rows: the swap
    stops before changing anything; dropped, the migration goes on."""
    await expand(conn, CODE)
    await conn.execute(
        "CREATE MATERIALIZED VIEW public.code_totals AS SELECT sum(code) FROM public.accounts;"
        "ALTER TABLE public.accounts ADD COLUMN code2 integer GENERATED ALWAYS AS (code * 2) STORED;"
        "ALTER TABLE public.accounts ADD CONSTRAINT accounts_code_excl EXCLUDE USING btree"
        " (code WITH =);"
        "CREATE STATISTICS public.accounts_stats ON tenant, code FROM public.accounts;"
        "CREATE FUNCTION public.big() RETURNS SETOF public.big_codes LANGUAGE sql"
        " AS 'SELECT * FROM public.big_codes'"
    )
    assert await run_migration(conn, CODE, SETTINGS) is Finish.STOPPED
    record = await store.progress(conn, CODE.id)
    assert record is not None and record.error is not None
    assert "materialized view public.code_totals" in record.error
    assert "column code2 of table public.accounts" in record.error
    assert "constraint accounts_code_excl on table public.accounts" in record.error
    assert "statistics object public.accounts_stats" in record.error
    assert "function public.big() (uses a re-created view)" in record.error
    assert f"--retry '{CODE.id}'" in record.error
    kinds = await conn.fetchval(
        "SELECT format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = 'public.accounts'::regclass AND attname = 'code'"
    )
    assert kinds == "integer"  # nothing changed
    await conn.execute("DROP MATERIALIZED VIEW public.code_totals;"
                       "ALTER TABLE public.accounts DROP COLUMN code2;"
                       "ALTER TABLE public.accounts DROP CONSTRAINT accounts_code_excl;"
                       "DROP STATISTICS public.accounts_stats; DROP FUNCTION public.big()")  # fmt: skip
    # meanwhile an index was made on the old column after the indexes were prepared (the swap
    # sends the runner back to prepare it), and a prepared one was left INVALID (rebuilt)
    await fixed_and_retried(
        conn,
        "CREATE INDEX accounts_late_idx ON public.accounts (code DESC);"
        "UPDATE pg_index SET indisvalid = false"
        " WHERE indexrelid = 'public.accounts_code_idx__sh_ix'::regclass",
    )
    indexes = await conn.fetch(
        "SELECT pg_get_indexdef(indexrelid) AS def, indisvalid AS valid FROM pg_index"
        " WHERE indexrelid IN ('public.accounts_late_idx'::regclass,"
        "                      'public.accounts_code_idx'::regclass) ORDER BY 1"
    )
    assert [tuple(r) for r in indexes] == [
        ("CREATE INDEX accounts_code_idx ON public.accounts USING btree (code)", True),
        ("CREATE INDEX accounts_late_idx ON public.accounts USING btree (code DESC)", True),
    ]


async def test_the_heal_refuses_an_expand_whose_swap_could_not_carry_a_dependent(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        "CREATE MATERIALIZED VIEW public.code_totals AS SELECT sum(code) FROM public.accounts"
    )
    result = await heal(conn, load_manifest(WIDE_CODE))
    assert (result.outcome, result.error_code) == (Outcome.FAILED, "swap-refused")
    assert "materialized view public.code_totals" in (result.error_message or "")
    assert not await conn.fetchval(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass"
        " AND attname LIKE '%\\_\\_sh\\_%'"
    )


async def test_a_key_swap_carries_a_view_grouped_by_the_key_and_an_index_on_it(
    conn: asyncpg.Connection,
) -> None:
    """A view that groups by the primary key (its other columns depend on the key constraint,
    which the swap drops and adds again) and a second index on the key."""
    await conn.execute(
        "CREATE VIEW public.per_account AS SELECT a.id, a.tenant, count(p.id) AS payments"
        "  FROM public.accounts a LEFT JOIN public.payments p ON p.account_code = a.code"
        " GROUP BY a.id;"
        "CREATE INDEX accounts_id_tenant_idx ON public.accounts (id, tenant)"
    )
    rows = "SELECT * FROM public.per_account ORDER BY id"
    before = [tuple(r) for r in await conn.fetch(rows)]
    key = ColumnMigration(
        kind=MigrationKind.CONVERT, schema="public", table="accounts", key=("id",),
        new_column="id", new_type="bigint", forward="id::bigint", old_column="id",
        in_place=True, not_null=True,
    )  # fmt: skip
    await expand(conn, key)
    assert await run_migration(conn, key, SETTINGS) is Finish.EXPANDED
    assert [tuple(r) for r in await conn.fetch(rows)] == before
    types = await conn.fetch(
        "SELECT attrelid::regclass::text, format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attname = 'id' AND attrelid IN ('public.per_account'::regclass,"
        " 'public.accounts'::regclass) ORDER BY 1"
    )
    assert [tuple(r) for r in types] == [
        ("public.accounts", "bigint"),
        ("public.per_account", "bigint"),
    ]
    index = await conn.fetchval("SELECT pg_get_indexdef('public.accounts_id_tenant_idx'::regclass)")
    assert (
        index == "CREATE INDEX accounts_id_tenant_idx ON public.accounts USING btree (id, tenant)"
    )


async def test_a_select_star_view_made_after_expand_stops_the_swap_naming_it(
    conn: asyncpg.Connection,
) -> None:
    """A view made with ``SELECT *`` while the migration runs also selects the shadow column,
    which the swap renames: the swap stops first, naming the view and what to do; made again
    naming its columns, it is carried."""
    await expand(conn, CODE)
    await conn.execute("CREATE VIEW public.all_accounts AS SELECT * FROM public.accounts")
    ((_, ahead),) = await swap_refusals(conn, [CODE], BEFORE_SWAP)  # what plan shows
    assert "view public.all_accounts reads the shadow column code__sh_new" in ahead
    assert await run_migration(conn, CODE, SETTINGS) is Finish.STOPPED
    record = await store.progress(conn, CODE.id)
    assert record is not None and record.error is not None
    assert "view public.all_accounts reads the shadow column code__sh_new" in record.error
    assert "create it again naming its columns, without code__sh_new" in record.error
    assert f"--retry '{CODE.id}'" in record.error
    await fixed_and_retried(
        conn,
        "DROP VIEW public.all_accounts; CREATE VIEW public.all_accounts AS"
        " SELECT id, tenant, code, amount FROM public.accounts",
    )
    shown = await conn.fetch(
        "SELECT attname, format_type(atttypid, NULL) AS type FROM pg_attribute"
        " WHERE attrelid = 'public.all_accounts'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert [tuple(r) for r in shown] == [
        ("id", "integer"), ("tenant", "integer"), ("code", "bigint"), ("amount", "integer")
    ]  # fmt: skip
