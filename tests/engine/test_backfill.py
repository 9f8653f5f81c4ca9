"""The backfill runner on a real PostgreSQL: each kind of migration from expand to expanded, what
its progress record says, and the migrations it must stop with a message."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import CENTS, LABEL, RENAME, USERS, WIDE_KEY, expand
from worker.engine import backfill as backfill_runner
from worker.engine import backfill_store as store
from worker.engine.backfill import BackfillSettings, Finish, run_migration, run_pending
from worker.engine.connection import connect
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.lock import advisory_locks

pytestmark = pytest.mark.postgres
ROWS, BATCH = 2500, 400
ROOT = Path(__file__).parents[2]
SETTINGS = BackfillSettings(batch_rows=BATCH, batch_target_ms=0)  # fixed: batches counted


@pytest.fixture
async def conn(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    await database.execute(USERS.format(rows=ROWS))
    connection = await connect(database.dsn)
    yield connection
    await connection.close()


async def finished(conn: asyncpg.Connection, m: ColumnMigration) -> store.Progress:
    """Run the pending migrations; ``m`` must be expanded, every row touched exactly once."""
    assert await run_pending(conn, SETTINGS) == {m.id: Finish.EXPANDED}
    record = await store.progress(conn, m.id)
    assert record is not None and record.state == store.EXPANDED and record.error is None
    assert record.rows_scanned == ROWS and record.batches == math.ceil(ROWS / BATCH)
    touches = await conn.fetch("SELECT touches, count(*) FROM public.users GROUP BY 1")
    assert [tuple(r) for r in touches] == [(1, ROWS)]
    return record


def conn_version(conn: asyncpg.Connection) -> int:
    return int(conn.get_server_version().major)


async def columns(conn: asyncpg.Connection) -> dict[str, tuple[str, bool]]:
    rows = await conn.fetch(
        """SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull
             FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attnum > 0
              AND NOT attisdropped"""
    )
    return {r["attname"]: (r["type"], r["attnotnull"]) for r in rows}


async def test_a_rename_is_filled_and_enforced_and_both_versions_write(
    conn: asyncpg.Connection,
) -> None:
    await expand(conn, RENAME)
    await conn.execute("INSERT INTO public.users (name) VALUES ('old writer')")
    await conn.execute("INSERT INTO public.users (name, full_name) VALUES ('x', 'new writer')")
    await conn.execute("DELETE FROM public.users WHERE id > $1", ROWS)  # keep the counts exact
    await finished(conn, RENAME)
    assert await conn.fetchval("SELECT count(*) FROM public.users WHERE full_name = name") == ROWS
    assert (await columns(conn))["full_name"] == ("text", True)
    await conn.execute("INSERT INTO public.users (full_name) VALUES ('y')")  # reverse fills name
    assert await conn.fetchval("SELECT name FROM public.users WHERE full_name = 'y'") == "y"


async def test_a_conversion_with_a_lossy_reverse_keeps_the_old_column(
    conn: asyncpg.Connection,
) -> None:
    before = await conn.fetch("SELECT id, amount FROM public.users ORDER BY id")
    await expand(conn, CENTS)
    await finished(conn, CENTS)
    after = await conn.fetch("SELECT id, amount, amount_cents FROM public.users ORDER BY id")
    assert [(r["id"], r["amount"]) for r in after] == [(r["id"], r["amount"]) for r in before]
    assert all(r["amount_cents"] == round(r["amount"] * 100) for r in after)
    assert (await columns(conn))["amount_cents"] == ("bigint", False)  # nullable: not enforced


async def test_a_computed_not_null_column(conn: asyncpg.Connection) -> None:
    await expand(conn, LABEL)
    await finished(conn, LABEL)
    wrong = await conn.fetchval(
        "SELECT count(*) FROM public.users WHERE label IS DISTINCT FROM lower(name) || '#' || id"
    )
    assert wrong == 0
    assert (await columns(conn))["label"] == ("text", True)
    checks = await conn.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.users'::regclass "
        "AND conname LIKE 'schemaheal_nn_%'"
    )
    assert checks == 0  # the helper check is gone


async def test_an_integer_key_widens_in_place_with_its_sequence_and_references(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """CREATE TABLE public.posts (id serial PRIMARY KEY,
               user_id integer NOT NULL REFERENCES public.users);
           INSERT INTO public.posts (user_id) SELECT g FROM generate_series(1, 50) g"""
    )
    await expand(conn, WIDE_KEY)
    await finished(conn, WIDE_KEY)
    shape = await columns(conn)
    assert shape["id"] == ("bigint", True) and shape["id__sh_old"] == ("integer", False)
    key = await conn.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'public.users'::regclass AND contype = 'p'"
    )
    assert key == "PRIMARY KEY (id)"
    fk = await conn.fetchrow(
        "SELECT convalidated, pg_get_constraintdef(oid) AS def FROM pg_constraint "
        "WHERE conrelid = 'public.posts'::regclass AND contype = 'f'"
    )
    assert fk["convalidated"] and fk["def"] == "FOREIGN KEY (user_id) REFERENCES public.users(id)"
    sequence = await conn.fetchrow(
        "SELECT s.seqtypid::regtype::text AS type, s.seqmax FROM pg_sequence s "
        "WHERE s.seqrelid = pg_get_serial_sequence('public.users', 'id')::regclass"
    )
    assert (sequence["type"], sequence["seqmax"]) == ("bigint", 2**63 - 1)
    new_id = await conn.fetchval("INSERT INTO public.users (name) VALUES ('z') RETURNING id")
    assert new_id == ROWS + 1  # the sequence went on where it was
    assert await conn.fetchval("SELECT count(*) FROM public.users WHERE id <> id__sh_old") == 0
    not_null = await conn.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'public.users'::regclass "
        "AND contype = 'n' AND conname LIKE 'users_id%'"
    )
    assert [r["conname"] for r in not_null] == (
        ["users_id_not_null"] if conn_version(conn) >= 18 else []
    )


async def test_an_identity_key_widens_in_place_and_keeps_counting(
    database: FreshDatabase,
) -> None:
    await database.execute(
        """CREATE TABLE public.users (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               name text NOT NULL, touches integer NOT NULL DEFAULT 0);
           INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, 30) g"""
    )
    conn = await connect(database.dsn)
    try:
        await expand(conn, WIDE_KEY)
        assert await run_migration(conn, WIDE_KEY) is Finish.EXPANDED
        identity = await conn.fetchrow(
            "SELECT attidentity::text, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
            "WHERE attrelid = 'public.users'::regclass AND attname = 'id'"
        )
        assert (identity["attidentity"], identity["type"]) == ("a", "bigint")
        new_id = await conn.fetchval("INSERT INTO public.users (name) VALUES ('z') RETURNING id")
        assert new_id == 31
    finally:
        await conn.close()


async def test_rows_not_null_cannot_accept_stop_the_migration_with_a_message(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("ALTER TABLE public.users ALTER COLUMN name DROP NOT NULL")
    await conn.execute("UPDATE public.users SET name = NULL WHERE id IN (7, 8)")
    await expand(conn, LABEL)
    assert await run_pending(conn, SETTINGS) == {LABEL.id: Finish.STOPPED}
    record = await store.progress(conn, LABEL.id)
    assert record is not None and record.state == store.BACKFILLING
    assert record.error is not None and record.error.startswith("2 rows of public.users")
    assert "fix those rows" in record.error
    assert f"SET error = NULL WHERE id = '{LABEL.id}'" in record.error
    assert (await columns(conn))["label"] == ("text", False)
    helper = await conn.fetchval(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.users'::regclass "
        "AND conname LIKE 'schemaheal_nn_%'"
    )
    assert helper == 0  # its NOT VALID check is gone: writers' NULLs are not refused meanwhile
    await conn.execute("UPDATE public.users SET name = NULL WHERE id = 9")
    assert await run_pending(conn, SETTINGS) == {}  # stopped: not taken up again
    await conn.execute("UPDATE public.users SET name = 'fixed' WHERE id = 9")
    await conn.execute("UPDATE public.users SET name = 'fixed' WHERE id IN (7, 8)")
    await store.retry(conn, LABEL.id)
    assert await run_pending(conn, SETTINGS) == {LABEL.id: Finish.EXPANDED}
    assert (await columns(conn))["label"] == ("text", True)


async def test_registering_twice_keeps_the_progress(conn: asyncpg.Connection) -> None:
    await expand(conn, CENTS)
    await finished(conn, CENTS)
    await expand(conn, CENTS)  # a redelivered heal, or another replica's
    record = await store.progress(conn, CENTS.id)
    assert record is not None and record.state == store.EXPANDED
    assert await run_pending(conn, SETTINGS) == {}


async def test_short_enforce_steps_wait_for_a_heal_of_the_schema(
    conn: asyncpg.Connection, database: FreshDatabase
) -> None:
    """The swap and the NOT NULL steps never run while a heal holds the schema: the migration is
    left for a later round, then finishes."""
    await expand(conn, RENAME)
    heal = await connect(database.dsn)
    try:
        async with advisory_locks(heal, database.name, ["public"]):
            patient = BackfillSettings(batch_rows=BATCH, heal_wait_s=0.3)
            assert await run_migration(conn, RENAME, patient) is Finish.LATER
            record = await store.progress(conn, RENAME.id)
            assert record is not None
            assert (record.state, record.enforce_steps) == (store.ENFORCING, 0)
            assert (await columns(conn))["full_name"] == ("text", False)
    finally:
        await heal.close()
    assert await run_migration(conn, RENAME, SETTINGS) is Finish.EXPANDED
    assert (await columns(conn))["full_name"] == ("text", True)


async def cli_backfill(database: FreshDatabase, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """``schemaheal backfill --format json`` in its own process: exit code and output lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "backfill", "--dsn", database.dsn, "--format", "json",
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None, err.decode()
    return process.returncode, [json.loads(line) for line in out.decode().splitlines()]


async def test_the_backfill_command_runs_and_retries_without_a_worker(
    conn: asyncpg.Connection, database: FreshDatabase
) -> None:
    await conn.execute("ALTER TABLE public.users ALTER COLUMN name DROP NOT NULL")
    await conn.execute("UPDATE public.users SET name = NULL WHERE id = 9")
    await expand(conn, LABEL)
    code, lines = await cli_backfill(database)
    assert code == 1  # stopped: one row cannot take NOT NULL
    assert [(x["migration"], x["finish"], x["rows"]) for x in lines] == [
        (LABEL.id, "stopped", ROWS)
    ]
    assert "fix those rows" in lines[0]["error"]
    assert await cli_backfill(database) == (0, [])  # a stopped migration waits for a person
    await conn.execute("UPDATE public.users SET name = 'fixed' WHERE id = 9")
    code, lines = await cli_backfill(database, "--retry", LABEL.id)
    assert (code, [x["finish"] for x in lines]) == (0, ["expanded"])
    assert (await columns(conn))["label"] == ("text", True)


async def test_a_column_widened_in_place_keeps_its_foreign_key_and_checks(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute(
        """CREATE TABLE public.orders (id serial PRIMARY KEY,
               user_id integer NOT NULL REFERENCES public.users CHECK (user_id > 0));
           INSERT INTO public.orders (user_id) SELECT g FROM generate_series(1, 300) g"""
    )
    m = ColumnMigration(
        kind=MigrationKind.CONVERT, schema="public", table="orders", key=("id",),
        new_column="user_id", new_type="bigint", forward="user_id::bigint",
        old_column="user_id", in_place=True, not_null=True,
    )  # fmt: skip
    await expand(conn, m)
    assert await run_migration(conn, m, SETTINGS) is Finish.EXPANDED
    constraints = await conn.fetch(
        """SELECT contype::text AS type, convalidated AS valid, pg_get_constraintdef(oid) AS def
             FROM pg_constraint WHERE conrelid = 'public.orders'::regclass
              AND contype IN ('f', 'c') ORDER BY 1"""
    )
    assert [tuple(r) for r in constraints] == [
        ("c", True, "CHECK ((user_id > 0))"),
        ("f", True, "FOREIGN KEY (user_id) REFERENCES public.users(id)"),
    ]
    kind = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'public.orders'::regclass AND attname = 'user_id'"
    )
    assert kind == "bigint"
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute("INSERT INTO public.orders (user_id) VALUES (999999)")


async def test_an_invalid_index_left_by_an_interrupted_build_is_rebuilt(
    conn: asyncpg.Connection,
) -> None:
    """A runner killed during CREATE INDEX CONCURRENTLY leaves an INVALID index that IF NOT
    EXISTS would keep (and the key could not be built on): it is dropped and built again."""
    await expand(conn, WIDE_KEY)
    await conn.execute("CREATE UNIQUE INDEX users__sh_pkey ON public.users (id__sh_new)")
    await conn.execute(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'public.users__sh_pkey'::regclass"
    )  # what an interrupted concurrent build leaves
    await finished(conn, WIDE_KEY)
    key = await conn.fetchrow(
        """SELECT c.conname, i.indisvalid FROM pg_constraint c JOIN pg_index i
             ON i.indexrelid = c.conindid
            WHERE c.conrelid = 'public.users'::regclass AND c.contype = 'p'"""
    )
    assert (key["conname"], key["indisvalid"]) == ("users_pkey", True)


async def test_a_composite_text_and_integer_key_is_paged_without_a_gap(
    conn: asyncpg.Connection,
) -> None:
    """Keys travel between batches as jsonb and are read back through the row type: a text
    column with quotes and collation-sensitive values, and an integer, in one key."""
    await conn.execute(
        """CREATE SCHEMA billing;
           CREATE TABLE billing."Invoices" (tenant text, no integer, amount numeric(12, 2),
               PRIMARY KEY (tenant, no));
           INSERT INTO billing."Invoices"
               SELECT t, n, n / 100.0 FROM unnest(ARRAY['a', 'B', 'o''brien', 'z"q', 'é'])
                   AS t, generate_series(1, 150) AS n"""
    )
    m = ColumnMigration(
        kind=MigrationKind.CONVERT, schema="billing", table="Invoices", key=("tenant", "no"),
        new_column="amount_cents", new_type="bigint", forward="round(amount * 100)::bigint",
        old_column="amount", reverse="(amount_cents / 100.0)::numeric(12,2)",
    )  # fmt: skip
    await expand(conn, m)
    fixed = BackfillSettings(batch_rows=7, batch_target_ms=0)
    assert await run_migration(conn, m, fixed) is Finish.EXPANDED
    record = await store.progress(conn, m.id)
    assert record is not None and record.rows_scanned == 750
    assert record.batches == math.ceil(750 / 7)
    wrong = await conn.fetchval(
        """SELECT count(*) FROM billing."Invoices"
            WHERE amount_cents IS DISTINCT FROM round(amount * 100)::bigint"""
    )
    assert wrong == 0


async def test_fast_batches_grow_toward_their_target_and_each_records_itself(
    conn: asyncpg.Connection,
) -> None:
    """Batches far faster than their target double, up to the bound; each batch's rows and its
    progress record commit together (one statement), so the record adds up to the rows."""
    await expand(conn, RENAME)
    sizes: list[int] = []
    settings = BackfillSettings(
        batch_rows=100, batch_target_ms=60_000, max_batch_rows=1000,
        on_batch=lambda m, rows, seconds: sizes.append(rows),
    )  # fmt: skip
    assert await run_migration(conn, RENAME, settings) is Finish.EXPANDED
    assert sizes == [100, 200, 400, 800, 1000] and sum(sizes) == ROWS
    record = await store.progress(conn, RENAME.id)
    assert record is not None and record.batches == len(sizes)
    assert record.rows_scanned == record.rows_touched == ROWS
    touches = await conn.fetch("SELECT touches, count(*) FROM public.users GROUP BY 1")
    assert [tuple(r) for r in touches] == [(1, ROWS)]


async def test_each_batch_is_followed_by_a_rest_in_proportion_to_its_duration(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With half the time in batches, each batch rests as long as it took (the rests are
    recorded, not waited: no timing is asserted), and every row is still touched once."""
    await expand(conn, RENAME)
    took: list[float] = []
    rests: list[float] = []
    real_sleep = asyncio.sleep

    async def recording(delay: float) -> None:
        rests.append(delay)
        await real_sleep(0)

    settings = BackfillSettings(
        batch_rows=BATCH, batch_target_ms=0, duty=0.5,
        on_batch=lambda m, rows, seconds: took.append(seconds),
    )  # fmt: skip
    monkeypatch.setattr(backfill_runner.asyncio, "sleep", recording)
    assert await run_migration(conn, RENAME, settings) is Finish.EXPANDED
    monkeypatch.undo()
    assert len(took) == math.ceil(ROWS / BATCH) and all(t > 0 for t in took)
    assert rests == pytest.approx(took)
    touches = await conn.fetch("SELECT touches, count(*) FROM public.users GROUP BY 1")
    assert [tuple(r) for r in touches] == [(1, ROWS)]


async def _seq_scans(conn: asyncpg.Connection) -> int:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    return int(await conn.fetchval("SELECT seq_scan FROM pg_stat_user_tables"
                                   " WHERE relid = 'public.users'::regclass"))  # fmt: skip


async def test_a_not_null_column_is_read_whole_once_after_its_backfill(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the last batch, the VALIDATE of the NOT NULL check is the one full read: it
    proves what a count of the rows left unconverted would (the old runner counted first, a
    second full read). Reads counted from the last batch on (the batches' plans are the
    planner's choice)."""
    await expand(conn, LABEL)
    after_batches: list[int] = []
    batches = backfill_runner._backfill

    async def then_count(*args: Any) -> None:
        await batches(*args)
        after_batches.append(await _seq_scans(conn))

    monkeypatch.setattr(backfill_runner, "_backfill", then_count)
    assert await run_pending(conn, SETTINGS) == {LABEL.id: Finish.EXPANDED}
    assert await _seq_scans(conn) - after_batches[0] == 1
    assert (await columns(conn))["label"] == ("text", True)
