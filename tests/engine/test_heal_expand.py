"""Online migrations through the heal on a real PostgreSQL (issue 19): the new manifest's heal
runs the expand and registers the backfill in the same transaction; old and new manifests then
boot alternately and both are satisfied, before and after the backfill and enforcement; rows
written by either version meanwhile are kept in step."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts import Manifest, load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, fk, manifest, pk, table
from worker.engine import backfill_store as store
from worker.engine.abandon import abandon
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import connect
from worker.engine.heal import HealResult, Outcome, heal

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).parents[2]
ID = column("id", "integer", nullable=False)


@pytest.fixture
async def conn(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database.dsn)
    yield connection
    await connection.close()


def users(*columns: dict[str, Any]) -> Manifest:
    return load_manifest(manifest(table("users", ID, *columns, primary_key=pk("id"))))


OLD = users(column("name", nullable=False))
NEW = users(column("full_name", nullable=False, renamed_from="name"))


async def boot(conn: asyncpg.Connection, wanted: Manifest, outcome: Outcome) -> HealResult:
    result = await heal(conn, wanted)
    assert result.outcome is outcome, result.error_message
    assert not [d for d in result.drift if d.blocking]
    return result


async def test_a_rename_through_old_and_new_boots(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 500) AS i"
    )
    await boot(conn, OLD, Outcome.UNCHANGED)
    first = await boot(conn, NEW, Outcome.HEALED)
    assert any("CREATE OR REPLACE TRIGGER" in a.sql for a in first.applied)
    (status,) = first.migrations
    assert (status.kind, status.state, status.running) == ("rename", store.BACKFILLING, True)
    assert "NOT NULL is not enforced yet" in status.relies_on
    # registered in the expand's transaction: the record is there, nothing backfilled yet
    record = await store.progress(conn, status.id)
    assert record is not None and record.batches == 0

    # both versions write while the backfill has not run; both boot again, nothing to do
    await conn.execute("INSERT INTO public.users (id, name) VALUES (1001, 'old writer')")
    await conn.execute("INSERT INTO public.users (id, full_name) VALUES (1002, 'new writer')")
    await conn.execute("UPDATE public.users SET full_name = 'renamed' WHERE id = 7")
    await boot(conn, OLD, Outcome.UNCHANGED)
    again = await boot(conn, NEW, Outcome.UNCHANGED)
    assert again.applied == () and again.migrations[0].running

    assert await run_pending(conn, BackfillSettings(batch_rows=128)) == {status.id: Finish.EXPANDED}
    rows = await conn.fetch(
        "SELECT id, name, full_name FROM public.users WHERE id IN (7, 1001, 1002)"
    )
    assert sorted(tuple(r) for r in rows) == [
        (7, "renamed", "renamed"), (1001, "old writer", "old writer"),
        (1002, "new writer", "new writer"),
    ]  # fmt: skip
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM public.users WHERE full_name IS DISTINCT FROM name"
        )
        == 0
    )
    done = await boot(conn, NEW, Outcome.UNCHANGED)
    assert (done.migrations[0].state, done.migrations[0].running) == (store.EXPANDED, False)
    assert await _not_null(conn, "users", "full_name")
    # the old version still boots and writes after enforcement
    await boot(conn, OLD, Outcome.UNCHANGED)
    await conn.execute("INSERT INTO public.users (id, name) VALUES (1003, 'late old writer')")
    assert (
        await conn.fetchval("SELECT full_name FROM public.users WHERE id = 1003")
        == "late old writer"
    )


ACCOUNT_FK = fk(["account_id"], "accounts", ["id"])


def ledger(key_type: str, **intent: str) -> Manifest:
    """The key is a SERIAL's: its sequence is declared of the key's type (the swap widens it)."""
    key = column("id", key_type, nullable=False, default="nextval('accounts_id_seq')", **intent)
    sequence = {
        "name": "accounts_id_seq",
        "data_type": key_type,
        "owned_by": {"table": "accounts", "column": "id"},
    }
    return load_manifest(manifest(
        table("accounts", key, column("label"), primary_key=pk("id")),
        table("payments", ID, column("account_id", "integer"), primary_key=pk("id"),
              foreign_keys=[ACCOUNT_FK]),
        sequences=[sequence],
    ))  # fmt: skip


async def test_an_integer_key_widens_through_old_and_new_boots(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "CREATE TABLE public.accounts (id serial PRIMARY KEY, label text);"
        "CREATE TABLE public.payments (id integer PRIMARY KEY,"
        "                       account_id integer REFERENCES public.accounts (id));"
        "INSERT INTO public.accounts (label) SELECT 'a' || i FROM generate_series(1, 300) AS i;"
        "INSERT INTO public.payments SELECT i, i FROM generate_series(1, 300) AS i"
    )
    old, new = ledger("integer"), ledger("bigint", using="id")
    await boot(conn, old, Outcome.UNCHANGED)
    first = await boot(conn, new, Outcome.HEALED)
    (status,) = first.migrations
    assert (status.kind, status.target) == ("convert", "public.accounts.id")
    await conn.execute("INSERT INTO public.accounts (label) VALUES ('written during expand')")
    await boot(conn, old, Outcome.UNCHANGED)
    await boot(conn, new, Outcome.UNCHANGED)

    assert await run_pending(conn, BackfillSettings(batch_rows=64)) == {status.id: Finish.EXPANDED}
    assert await _type(conn, "accounts", "id") == "bigint"
    # after the swap the old version declares integer (key and sequence): accepted while the
    # replaced column stays
    await boot(conn, old, Outcome.UNCHANGED)
    done = await boot(conn, new, Outcome.UNCHANGED)
    assert done.migrations[0].state == store.EXPANDED
    assert await conn.fetchval("SELECT max(id) FROM public.accounts") == 301
    await conn.execute("SELECT setval('public.accounts_id_seq', 2999999999)")
    await conn.execute("INSERT INTO public.accounts (label) VALUES ('counted past integer')")
    assert await conn.fetchval("SELECT max(id) FROM public.accounts") == 3_000_000_000
    assert await conn.fetchval("SELECT count(*) FROM public.payments") == 300
    assert [c.sql for c in done.plan.contract][-1].endswith("DROP COLUMN IF EXISTS id__sh_old")


async def _not_null(conn: asyncpg.Connection, table_: str, column_: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2",
        f"public.{table_}", column_,
    ))  # fmt: skip


async def _type(conn: asyncpg.Connection, table_: str, column_: str) -> str:
    return str(await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = $1::regclass AND attname = $2",
        f"public.{table_}", column_,
    ))  # fmt: skip


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_plan_shows_expand_and_contract_as_phases(
    database: FreshDatabase, tmp_path: Path
) -> None:
    """``schemaheal plan`` in every format: the expand statements the heal runs, the migrations
    and what runs after them, and the contract phase, which the heal does not run."""
    await database.execute("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL)")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(NEW.model_dump(mode="json", by_alias=True)))
    code, out, _ = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    assert code == 2
    data = json.loads(out)
    assert {s["phase"] for s in data["statements"]} == {"expand"}
    assert {s["phase"] for s in data["contract"]} == {"contract"}
    assert data["contract"][-1]["hazards"] == ["strong-lock", "column-drop"]
    (migration,) = data["migrations"]
    assert (migration["kind"], migration["target"], migration["from"]) == (
        "rename", "public.users.full_name", "name"
    )  # fmt: skip
    assert migration["background"].startswith("backfill existing rows in batches by (id)")
    code, out, _ = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "sql")
    commands = [line for line in out.splitlines() if line.startswith("-- contract")]
    assert commands[-1] == (
        "-- contract (not run by heal): ALTER TABLE public.users DROP COLUMN IF EXISTS name;"
    )
    # every line of the contract is a comment, the carry block's too: the output runs as is
    contract = out[out.index("-- contract") :].splitlines()
    assert len(contract) > 20 and all(line.startswith("--") for line in contract)
    assert contract[1].startswith(
        "-- -- give full_name what name has of its own: column privileges"
    )
    code, _, err = await _cli("plan", "--dsn", database.dsn, str(path))
    for title in ("Planned changes (expand", "Online migrations", "Contract (not run by heal"):
        assert title in err, err
    assert migration["state"] is None  # its expand is planned: nothing to read yet
    # planning changed nothing: no column, no trigger, no migrations table
    left = await database.fetch(
        "SELECT to_regclass('schemaheal.migrations') AS store,"
        " (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) AS triggers"
    )
    assert (left[0]["store"], left[0]["triggers"]) == (None, 0)


async def test_a_migration_the_catalog_shows_but_nobody_registered_is_expanded_again(
    conn: asyncpg.Connection,
) -> None:
    """A new column already there (made by hand, or ``backfill`` declared on an existing
    nullable column): its expand runs again — idempotent — so that it is registered, backfilled
    and enforced instead of waiting for nobody."""
    await conn.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, n integer);"
        "INSERT INTO public.users SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE i END"
        "  FROM generate_series(1, 300) AS i"
    )
    wanted = users(column("n", "integer", nullable=False, backfill="id * 2"))
    first = await boot(conn, wanted, Outcome.HEALED)
    (status,) = first.migrations
    assert (status.kind, status.state) == ("backfill", store.BACKFILLING)
    assert await run_pending(conn, BackfillSettings(batch_rows=64)) == {status.id: Finish.EXPANDED}
    rows = await conn.fetch("SELECT id, n FROM public.users WHERE id IN (1, 3, 6) ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, 1), (3, 6), (6, 12)]
    assert await _not_null(conn, "users", "n")
    done = await boot(conn, wanted, Outcome.UNCHANGED)
    assert [(m.id, m.state) for m in done.migrations] == [(status.id, store.EXPANDED)]
    assert done.plan.contract[0].sql.startswith("DROP TRIGGER IF EXISTS schemaheal_sync_")


async def test_plan_says_where_a_running_migration_stands(
    conn: asyncpg.Connection, database: FreshDatabase, tmp_path: Path
) -> None:
    await conn.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'u' || i FROM generate_series(1, 50) AS i"
    )
    await boot(conn, NEW, Outcome.HEALED)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(NEW.model_dump(mode="json", by_alias=True)))
    code, out, _ = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    assert code == 0 and json.loads(out)["statements"] == []
    (migration,) = json.loads(out)["migrations"]
    assert (migration["state"], migration["rows_done"]) == (store.BACKFILLING, 0)
    await run_pending(conn, BackfillSettings(batch_rows=20))
    code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    (migration,) = json.loads(out)["migrations"]
    assert (migration["state"], migration["rows_done"]) == (store.EXPANDED, 50)
    code, _, err = await _cli("plan", "--dsn", database.dsn, str(path))
    assert "expanded, 50" in err, err  # the table's "now" column (wrapped at 80 columns)


# A migration's expression changed mid-migration: the manifest's ``using``, ``reverse`` or
# ``backfill`` differs from the running migration's on the same column. The heal refuses, naming
# the running migration and what to do, and changes nothing: a second sync trigger would fight
# the first over the same column.


async def _sync_triggers(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'public.users'::regclass"
        " AND tgname LIKE 'schemaheal_sync_%' ORDER BY 1"
    )
    return [r["tgname"] for r in rows]


@pytest.mark.parametrize(
    ("first", "changed"),
    [
        pytest.param(
            column("label", nullable=False, backfill="'u' || id"),
            column("label", nullable=False, backfill="'user ' || id"),
            id="backfill",
        ),
        pytest.param(
            column("full_name", nullable=False, renamed_from="name", reverse="full_name"),
            column("full_name", nullable=False, renamed_from="name", reverse="lower(full_name)"),
            id="reverse",
        ),
    ],
)
async def test_a_changed_expression_is_refused_naming_the_running_migration(
    conn: asyncpg.Connection, first: dict[str, Any], changed: dict[str, Any]
) -> None:
    await conn.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'U' || i FROM generate_series(1, 50) AS i"
    )
    keep = [column("name", nullable=False)] if "backfill" in first else []
    started = await heal(conn, users(*keep, first))
    assert started.outcome is Outcome.HEALED, started.error_message
    (running,) = started.migrations
    refused = await heal(conn, users(*keep, changed))
    assert refused.outcome is Outcome.FAILED
    assert refused.error_code == "migration-changed"
    message = refused.error_message or ""
    assert running.id in message and "abandon" in message and "new column name" in message
    assert len(await _sync_triggers(conn)) == 1  # the old code made a second one
    # the running migration goes on and finishes; the first manifest is still served
    done = await run_pending(conn, BackfillSettings(batch_rows=20))
    assert done == {running.id: Finish.EXPANDED}
    again = await heal(conn, users(*keep, first))
    assert again.outcome is Outcome.UNCHANGED, again.error_message


async def test_the_abandon_route_the_refusal_gives_lets_the_changed_expression_run(
    conn: asyncpg.Connection,
) -> None:
    """The abandon command the refusal names, run as it says: the changed manifest then
    expands afresh and every row gets the new expression's value."""
    await conn.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'U' || i FROM generate_series(1, 50) AS i"
    )
    name = column("name", nullable=False)
    first = users(name, column("label", nullable=False, backfill="'u' || id"))
    changed = users(name, column("label", nullable=False, backfill="'user ' || id"))
    (running,) = (await heal(conn, first)).migrations
    await conn.execute("UPDATE public.users SET name = name WHERE id <= 10")  # filled 'u…'
    refused = await heal(conn, changed)
    assert refused.error_code == "migration-changed"
    message = refused.error_message or ""
    assert "`schemaheal backfill --dsn … --ledger-schema schemaheal --abandon '" in message
    assert "add --apply to do it" in message
    abandoned = message.split("--abandon '")[1].split("'")[0]
    assert abandoned == running.id
    assert (await abandon(conn, abandoned, apply=True)).applied
    again = await heal(conn, changed)
    assert again.outcome is Outcome.HEALED, again.error_message
    (migration,) = again.migrations
    assert migration.id != running.id
    assert await run_pending(conn, BackfillSettings(batch_rows=20)) == {
        migration.id: Finish.EXPANDED
    }
    labels = await conn.fetch("SELECT DISTINCT left(label, 5) AS l FROM public.users")
    assert [r["l"] for r in labels] == ["user "]
    assert len(await _sync_triggers(conn)) == 1
