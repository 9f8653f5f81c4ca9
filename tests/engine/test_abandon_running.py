"""Abandoning a running migration on a real PostgreSQL: mid-backfill under writes nothing of the
old column is lost, the old manifest boots unchanged, the new one starts afresh; what has
contracted or swapped, or what live instances rely on, is refused."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts import Manifest, load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import (
    CENTS,
    RENAME,
    WIDE_KEY,
    expanded_users,
    trigger_and_columns,
    wait_for_batches,
)
from tests.engine.test_contract import GRACE, NEW_SHAPE, always, tracked_long_ago
from worker.engine import backfill_store as store
from worker.engine import lease_store
from worker.engine.abandon import abandon
from worker.engine.backfill import BackfillSettings, Finish, run_migration, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, run_contracts
from worker.engine.contract import _contract as contract_one
from worker.engine.heal import Outcome, heal
from worker.errors import AbandonRefused
from worker.replay.database import read_migrations
from worker.replay.migrations_report import phases

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).parents[2]
ROWS = 3000


class OldWriter:
    """An old replica: updates ``amount`` of even ids and inserts rows; remembers what it wrote."""

    def __init__(self, dsn: str, expected: dict[int, Decimal]) -> None:
        self.dsn, self.expected = dsn, expected
        self.stop = asyncio.Event()
        self.writes = 0
        self.wrote = asyncio.Event()

    async def reached(self, writes: int) -> None:
        while self.writes < writes:
            self.wrote.clear()
            await asyncio.wait_for(self.wrote.wait(), 30)

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not self.stop.is_set():
                value = Decimal(random.randint(0, 10**6)) / 100
                if self.writes % 3:
                    row = 2 * random.randint(1, ROWS // 2)
                    await conn.execute("UPDATE public.users SET amount = $2 WHERE id = $1",
                                       row, value)  # fmt: skip
                else:
                    row = await conn.fetchval(
                        "INSERT INTO public.users (name, amount) VALUES ('o', $1) RETURNING id",
                        value,
                    )
                self.expected[row] = value
                self.writes += 1
                self.wrote.set()
                await asyncio.sleep(0.002)
        finally:
            await conn.close()


async def new_writer(dsn: str, expected: dict[int, Decimal], stop: asyncio.Event) -> None:
    """A new replica: writes ``amount_cents`` of odd ids; the reverse keeps ``amount``."""
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            row, cents = 2 * random.randint(0, ROWS // 2 - 1) + 1, random.randint(0, 10**6)
            await conn.execute(
                "UPDATE public.users SET amount_cents = $2 WHERE id = $1", row, cents
            )
            expected[row] = Decimal(cents) / 100
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def test_abandoned_mid_backfill_under_writes_loses_no_row_and_no_old_value(
    database: FreshDatabase,
) -> None:
    conn = await expanded_users(database, ROWS, CENTS)
    expected = {i: Decimal(i) / 100 for i in range(1, ROWS + 1)}
    runner = await connect(database.dsn)
    old = OldWriter(database.dsn, expected)
    new_stop = asyncio.Event()
    try:
        slow = BackfillSettings(batch_rows=50, batch_target_ms=0, pause_s=0.02)  # fixed size
        backfill = asyncio.create_task(run_migration(runner, CENTS, slow))
        writers = [asyncio.create_task(old.run()),
                   asyncio.create_task(new_writer(database.dsn, expected, new_stop))]  # fmt: skip
        await wait_for_batches(conn, CENTS.id, 5)
        new_stop.set()  # the new version is rolled back first
        await writers[1]
        before = old.writes
        found = await abandon(conn, CENTS.id, apply=True)
        assert found.applied and found.state == store.BACKFILLING
        assert await asyncio.wait_for(backfill, 30) is Finish.ABANDONED
        await old.reached(before + 20)  # old writers went on through the abandon
        old.stop.set()
        await writers[0]
        record = await store.progress(conn, CENTS.id)
        assert record is not None and record.state == store.ABANDONED
        assert record.finished_at is not None
        assert 0 < record.rows_scanned < ROWS  # stopped mid-backfill
        trigger, columns = await trigger_and_columns(conn)
        assert not trigger and "amount_cents" not in columns and "amount" in columns
        rows = await conn.fetch("SELECT id, amount FROM public.users")
        assert {r["id"]: r["amount"] for r in rows} == expected
        assert await run_pending(conn) == {}  # the runner never takes it up again
    finally:
        old.stop.set()
        new_stop.set()
        await runner.close()
        await conn.close()


def users(*columns: dict[str, Any]) -> Manifest:
    return load_manifest(manifest(table("users", ID, *columns, primary_key=pk("id"))))


ID = column("id", "integer", nullable=False)
OLD = users(column("name", nullable=False))
NEW = users(column("full_name", nullable=False, renamed_from="name"))


@pytest.fixture
async def renamed(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    """users(id, name) with 50 rows, NEW healed: the rename expanded, not backfilled yet."""
    await database.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i"
    )
    conn = await connect(database.dsn)
    assert (await heal(conn, NEW)).outcome is Outcome.HEALED
    yield conn
    await conn.close()


async def test_after_abandon_the_old_manifest_is_unchanged_and_the_new_one_starts_afresh(
    renamed: asyncpg.Connection, database: FreshDatabase, tmp_path: Path
) -> None:
    conn = renamed
    (m,) = [p.migration for p in await store.registered(conn)]
    dry = await abandon(conn, m.id, apply=False)
    assert not dry.applied and (await trigger_and_columns(conn))[0]  # a dry run changes nothing
    assert (await abandon(conn, m.id, apply=True)).applied
    assert (await abandon(conn, m.id, apply=True)).state == store.ABANDONED  # again: harmless
    assert (await trigger_and_columns(conn))[1] == {"id", "name"}
    (row,) = await read_migrations(conn, "schemaheal", "nexus")  # what replay shows
    assert row.state == "abandoned"
    assert phases(row)["contract"].startswith("none: abandoned")
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(NEW.model_dump(mode="json", by_alias=True)))
    code, out, err = await cli_in(database, "plan", str(path), "--format", "json")
    (planned,) = json.loads(out)["migrations"]  # its expand is planned again, shown abandoned
    assert (code, planned["id"], planned["state"]) == (2, m.id, "abandoned"), err
    old = await heal(conn, OLD)
    assert (old.outcome, old.applied) == (Outcome.UNCHANGED, ()), old.error_message
    again = await heal(conn, NEW)  # the new version deployed again: the migration restarts
    assert again.outcome is Outcome.HEALED, again.error_message
    record = await store.progress(conn, m.id)
    assert record is not None and (record.state, record.rows_touched) == (store.BACKFILLING, 0)
    assert await run_pending(conn) == {m.id: Finish.EXPANDED}
    names = await conn.fetch("SELECT id, name, full_name FROM public.users")
    assert all(r["full_name"] == r["name"] == f"user {r['id']}" for r in names)


async def test_abandon_is_refused_once_contracted(renamed: asyncpg.Connection) -> None:
    conn = renamed
    (m,) = [p.migration for p in await store.registered(conn)]
    assert await run_pending(conn) == {m.id: Finish.EXPANDED}
    await tracked_long_ago(conn)
    assert (await run_contracts(conn, always, GRACE))[m.id][0] is ContractFinish.CONTRACTED
    for apply in (False, True):
        with pytest.raises(AbandonRefused, match="has contracted"):
            await abandon(conn, m.id, apply=apply)
    assert (await trigger_and_columns(conn))[1] == {"id", "full_name"}
    record = await store.progress(conn, m.id)
    assert record is not None and record.state == store.EXPANDED


async def test_abandon_is_refused_after_an_in_place_swap_and_for_an_unknown_id(
    database: FreshDatabase,
) -> None:
    conn = await expanded_users(database, 100, WIDE_KEY)
    try:
        assert await run_pending(conn) == {WIDE_KEY.id: Finish.EXPANDED}
        with pytest.raises(AbandonRefused, match=r"has swapped id of public\.users in place"):
            await abandon(conn, WIDE_KEY.id, apply=True)
        with pytest.raises(AbandonRefused, match="no migration 'nope' is registered"):
            await abandon(conn, "nope", apply=True)
    finally:
        await conn.close()


async def test_abandon_is_refused_while_a_live_instance_uses_the_new_column(
    database: FreshDatabase,
) -> None:
    conn = await expanded_users(database, 100, RENAME)
    try:
        await lease_store.record_boot(conn, instances=[("app", "new-1")], manifest_hash="new",
                                      shape=NEW_SHAPE, ttl_s=3600)  # fmt: skip
        with pytest.raises(AbandonRefused, match=r"rely on public.users.full_name text .*new-1"):
            await abandon(conn, RENAME.id, apply=True)
        assert "full_name" in (await trigger_and_columns(conn))[1]
        assert await lease_store.stop(conn, service="app", instance="new-1")
        assert (await abandon(conn, RENAME.id, apply=True)).applied  # its lease ended
        assert "full_name" not in (await trigger_and_columns(conn))[1]
    finally:
        await conn.close()


async def cli(database: FreshDatabase, *args: str) -> tuple[int, str, str]:
    return await cli_in(database, "backfill", *args)


async def cli_in(database: FreshDatabase, command: str, *args: str) -> tuple[int, str, str]:
    """``schemaheal <command> --dsn <database> <args>``: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", command, "--dsn", database.dsn, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_abandon_command_is_a_dry_run_unless_applied(database: FreshDatabase) -> None:
    conn = await expanded_users(database, 100, CENTS)
    try:
        code, out, err = await cli(database, "--abandon", CENTS.id, "--format", "json")
        assert code == 0, err
        shown = json.loads(out)
        assert (shown["migration"], shown["state"], shown["applied"]) == (
            CENTS.id, "backfilling", False
        )  # fmt: skip
        assert shown["statements"][-1] == (
            "ALTER TABLE public.users DROP COLUMN IF EXISTS amount_cents"
        )
        assert "amount_cents" in (await trigger_and_columns(conn))[1]
        code, out, err = await cli(database, "--abandon", CENTS.id, "--apply")
        assert code == 0, err
        assert out.startswith(f"abandoned: {CENTS.id} (convert of public.users, was backfilling)")
        assert "amount_cents" not in (await trigger_and_columns(conn))[1]
        code, out, err = await cli(database, "--abandon", "nope", "--apply")
        assert (code, out) == (1, "")
        assert "schemaheal: no migration 'nope' is registered in schemaheal.migrations" in err
    finally:
        await conn.close()


async def test_a_contract_round_that_read_the_migration_before_its_abandonment_drops_nothing(
    database: FreshDatabase,
) -> None:
    """The contract runner lists the expanded migrations, then takes each one's locks: one
    abandoned in between (no lease holds either shape) must not be contracted — with approval
    that would drop the old column, the only one left."""
    conn = await expanded_users(database, 100, RENAME)
    try:
        assert await run_pending(conn) == {RENAME.id: Finish.EXPANDED}
        await tracked_long_ago(conn)
        assert (await abandon(conn, RENAME.id, apply=True)).applied
        finish, why = await contract_one(conn, RENAME, always, GRACE)  # as if listed before
        assert (finish, why) == (ContractFinish.LATER, "the migration was abandoned")
        assert (await trigger_and_columns(conn))[1] == {"id", "name", "amount", "touches"}
        assert await lease_store.contract_records(conn) == {}
    finally:
        await conn.close()
