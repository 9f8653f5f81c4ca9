"""Replay shows each online migration's phases and progress (issue 19), read from the
migrations record over a read-only connection: expand done, backfill running then done, enforce,
contract not run."""

from __future__ import annotations

import json

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from worker.engine import lease_store
from worker.engine.backfill import BackfillSettings, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractSettings
from worker.engine.desired import desired_state
from worker.engine.heal import Outcome, heal
from worker.engine.heal_migrations import statuses
from worker.engine.liveness import shape_of
from worker.replay.database import read_ledger, read_migrations
from worker.replay.events import Audit, MigrationRow
from worker.replay.history import Window
from worker.replay.migrations_report import phases, started_text
from worker.replay.report import html_report, json_lines

pytestmark = pytest.mark.postgres
RENAMED = manifest(table(
    "users", column("id", "integer", nullable=False),
    column("full_name", nullable=False, renamed_from="name"), primary_key=pk("id"),
))  # fmt: skip


async def progress_of(dsn: str, contract: ContractSettings | None = None) -> list[MigrationRow]:
    reader = await connect(dsn, application_name="schemaheal replay", read_only=True)
    try:
        return await read_migrations(reader, "schemaheal", "nexus", contract)
    finally:
        await reader.close()


async def test_replay_reads_each_phase_of_a_migration(database: FreshDatabase) -> None:
    assert await progress_of(database.dsn) == []  # no migrations table yet: nothing, no error
    await database.execute(
        "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 700) AS i"
    )
    conn = await connect(database.dsn)
    try:
        assert (await heal(conn, load_manifest(RENAMED))).outcome is Outcome.HEALED
        (expanded,) = await progress_of(database.dsn)
        assert (expanded.kind, expanded.target, expanded.state) == (
            "rename", "public.users.full_name", "backfilling"
        )  # fmt: skip
        assert phases(expanded) == {
            "expand": "done", "backfill": "running: 0 row(s) in 0 batch(es)",
            "enforce": "pending",
            "contract": "waiting: backfill running (0 row(s) so far)",
        }  # fmt: skip
        await run_pending(conn, BackfillSettings(batch_rows=300, batch_target_ms=0))  # fixed size
    finally:
        await conn.close()
    (done,) = await progress_of(database.dsn)
    assert done.state == "expanded" and done.finished_ms is not None
    assert phases(done)["backfill"] == "done: 700 row(s) in 3 batch(es)"
    assert phases(done)["enforce"].startswith("done: ")
    assert phases(done)["contract"].startswith("waiting: no lease recorded yet")

    audit = Audit(window=Window(since_ms=0, until_ms=1), boots=(), mismatches=(),
                  migrations=(done,))  # fmt: skip
    records = [json.loads(line) for line in json_lines(audit)]
    (migration,) = [r for r in records if r["type"] == "migration"]
    assert (migration["id"], migration["phases"]["backfill"]) == (done.id, phases(done)["backfill"])
    assert "<h2>Online migrations</h2>" in html_report(audit)


async def test_replay_and_the_reply_say_why_a_contract_waits(database: FreshDatabase) -> None:
    """An old replica's lease holds the contract, then, once it stopped, the grace period:
    replay (read-only) and the heal's statuses (reply and ``plan``) say so alike."""
    await database.execute("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL)")
    old = load_manifest(manifest(table("users", column("id", "integer", nullable=False),
                                       column("name", nullable=False), primary_key=pk("id"))))  # fmt: skip
    grace = ContractSettings(grace_s=120, lease_ttl_s=600)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(RENAMED))
        await run_pending(conn, BackfillSettings())
        await lease_store.record_boot(conn, instances=[("legacy", "pod-1")], manifest_hash="h1",
                                      shape=shape_of(desired_state(old)), ttl_s=600)  # fmt: skip
        await conn.execute(
            "UPDATE schemaheal.liveness SET tracked_since = now() - interval '1 day'"
        )
        (held,) = await progress_of(database.dsn, grace)
        (status,) = await statuses(conn, result.plan.migrations, "schemaheal", grace)
        await lease_store.stop(conn, service="legacy", instance="pod-1")
        (graced,) = await progress_of(database.dsn, grace)
    finally:
        await conn.close()
    assert held.contract is not None and status.waiting == "lease"
    assert held.contract.startswith("waiting: service legacy instance pod-1 with the old shape "
                                    "holds a lease until ")  # fmt: skip
    assert (
        held.contract.endswith("; then a grace period of 120 s")
        and status.contract == held.contract
    )
    assert graced.contract is not None and graced.contract.startswith("waiting: grace period until")


async def test_the_heal_that_started_a_migration_lists_it_in_its_ledger_row(
    database: FreshDatabase,
) -> None:
    """Kind, table, columns and phase, in the heal's row; replay reads them back; a later heal
    of the same manifest started nothing."""
    await database.execute("CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL)")
    conn = await connect(database.dsn)
    try:
        first = await heal(conn, load_manifest(RENAMED))
        again = await heal(conn, load_manifest(RENAMED))
        reader = await connect(database.dsn, read_only=True)
        try:
            rows = await read_ledger(reader, "schemaheal", "nexus", Window(since_ms=0,
                                     until_ms=2**42), [])  # fmt: skip
        finally:
            await reader.close()
    finally:
        await conn.close()
    assert (first.outcome, again.outcome) == (Outcome.HEALED, Outcome.UNCHANGED)
    by_id = {r.id: r for r in rows}
    (started,) = by_id[first.ledger_id].migrations
    assert started == {"id": first.plan.expanding[0].id, "kind": "rename",
                       "table": "public.users", "column": "full_name", "from": "name",
                       "type": "text", "phase": "backfilling"}  # fmt: skip
    assert by_id[again.ledger_id].migrations == ()
    assert started_text(by_id[first.ledger_id].migrations) == (
        "rename public.users.full_name (from name): backfilling"
    )


def test_a_stopped_migration_says_where_and_why() -> None:
    row = MigrationRow(
        database="nexus", id="x", kind="backfill", target="public.t.c", state="enforcing",
        batches=2, rows_touched=10, enforce_steps=1, error="rows with NULL: fix them",
        registered_ms=0, updated_ms=0, finished_ms=None,
    )  # fmt: skip
    assert phases(row)["backfill"] == "done: 10 row(s) in 2 batch(es)"
    assert phases(row)["enforce"] == "stopped: rows with NULL: fix them"
