"""The contract runner on a real PostgreSQL: leases keep a migration's old shape until they
expire or stop and the grace passes; the trigger then goes; the old column only with approval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from contracts import Manifest, load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import RENAME, expanded_users, trigger_and_columns
from tests.engine.test_boot_check import check_one
from worker.engine import backfill_store, boot_check, lease_store
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, ContractSettings, kept_reason, run_contracts
from worker.engine.desired import prepare
from worker.engine.expand import ColumnMigration
from worker.engine.heal import HealOptions, HealResult, Outcome, RequestInfo, heal
from worker.engine.liveness import Lease, shape_of
from worker.engine.lock import advisory_key
from worker.replay.database import read_migrations
from worker.replay.migrations_report import phases

pytestmark = pytest.mark.postgres
GRACE = ContractSettings(grace_s=0.3, lease_ttl_s=0.3)  # leases recorded 0.3 s: no wait
OLD_SHAPE = frozenset({("public", "users", "id", "integer"), ("public", "users", "name", "text")})
NARROW_SHAPE = frozenset(
    {("public", "users", "id", "integer"), ("public", "users", "name", "text")}
)
NEW_SHAPE = frozenset(
    {("public", "users", "id", "integer"), ("public", "users", "full_name", "text")}
)


def never(m: ColumnMigration, leases: Sequence[Lease]) -> bool:
    return False


def always(m: ColumnMigration, leases: Sequence[Lease]) -> bool:
    return True


async def tracked_long_ago(conn: asyncpg.Connection) -> None:
    """As if the worker had recorded leases for a day: no instance predates them."""
    await lease_store.ensure_store(conn)
    await conn.execute("UPDATE schemaheal.liveness SET tracked_since = now() - interval '1 day'")


@pytest.fixture
async def conn(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    """users renamed name → full_name, expand complete."""
    connection = await expanded_users(database, 50, RENAME)
    assert await run_pending(connection, BackfillSettings()) == {RENAME.id: Finish.EXPANDED}
    await tracked_long_ago(connection)
    yield connection
    await connection.close()


async def boot(conn: asyncpg.Connection, instance: str, *, old: bool, ttl_s: float) -> None:
    await lease_store.record_boot(
        conn, instances=[("app", instance)], manifest_hash="old" if old else "new",
        shape=OLD_SHAPE if old else NEW_SHAPE, ttl_s=ttl_s,
    )  # fmt: skip


async def test_a_live_lease_keeps_it_then_expiry_and_grace_let_it_run(
    conn: asyncpg.Connection,
) -> None:
    """The lease's end is set in the database rather than slept out: a loaded machine may take
    longer than a short grace between two rounds (a 0.5 s lease and a 0.3 s grace failed so)."""
    grace = ContractSettings(grace_s=60.0, lease_ttl_s=0.3)
    await boot(conn, "old-1", old=True, ttl_s=3600)
    finish, why = (await run_contracts(conn, never, grace))[RENAME.id]
    assert finish is ContractFinish.WAITING and "app/old-1" in why
    await expire_leases(conn, seconds_ago=1)  # expired, within the grace
    finish, why = (await run_contracts(conn, never, grace))[RENAME.id]
    assert finish is ContractFinish.WAITING and "grace period" in why
    assert (await trigger_and_columns(conn))[0]
    await expire_leases(conn, seconds_ago=61)  # and the grace is over
    assert (await run_contracts(conn, never, grace))[RENAME.id] == (
        ContractFinish.KEPT, kept_reason(RENAME)
    )  # fmt: skip
    trigger, columns = await trigger_and_columns(conn)
    assert not trigger and {"name", "full_name"} <= columns
    record = (await lease_store.contract_records(conn))[RENAME.id]
    assert record.contracted and record.column_dropped_at is None
    assert (
        record.column_kept
        == "public.users.name: retired, unused, kept: approve column-drop to remove"
    )
    # approved later: the next round drops the column, and then has nothing left to do
    assert (await run_contracts(conn, always, GRACE))[RENAME.id][0] is ContractFinish.CONTRACTED
    trigger, columns = await trigger_and_columns(conn)
    assert not trigger and "name" not in columns and "full_name" in columns
    assert await run_contracts(conn, always, GRACE) == {}


async def expire_leases(conn: asyncpg.Connection, *, seconds_ago: float) -> None:
    await conn.execute("UPDATE schemaheal.leases SET expires_at = now() - make_interval(secs => $1)",
                       seconds_ago)  # fmt: skip


async def test_heartbeats_keep_the_lease(conn: asyncpg.Connection) -> None:
    await boot(conn, "old-1", old=True, ttl_s=0.4)
    for _ in range(4):
        await asyncio.sleep(0.2)
        assert await lease_store.heartbeat(conn, service="app", instance="old-1", ttl_s=0.4)
        assert (await run_contracts(conn, always, GRACE))[RENAME.id][0] is ContractFinish.WAITING
    assert (await trigger_and_columns(conn))[0]  # 0.8 s after a boot whose lease lasts 0.4 s


async def test_stopped_lets_it_run_after_the_grace_and_new_leases_do_not_hold_it(
    conn: asyncpg.Connection,
) -> None:
    await boot(conn, "old-1", old=True, ttl_s=3600)
    await boot(conn, "new-1", old=False, ttl_s=3600)
    assert (await run_contracts(conn, always, GRACE))[RENAME.id][0] is ContractFinish.WAITING
    assert await lease_store.stop(conn, service="app", instance="old-1")
    assert not await lease_store.stop(conn, service="app", instance="old-1")  # already ended
    assert not await lease_store.heartbeat(conn, service="app", instance="old-1", ttl_s=60)
    finish, why = (await run_contracts(conn, always, GRACE))[RENAME.id]
    assert finish is ContractFinish.WAITING and "grace period" in why
    await asyncio.sleep(0.35)
    assert (await run_contracts(conn, always, GRACE))[RENAME.id][0] is ContractFinish.CONTRACTED
    assert (await trigger_and_columns(conn))[1] == {"id", "full_name", "amount", "touches"}


def users(*columns: dict[str, Any]) -> Manifest:
    return load_manifest(manifest(table("users", ID, *columns, primary_key=pk("id"))))


ID = column("id", "integer", nullable=False)
OLD = users(column("name", nullable=False))
NEW = users(column("full_name", nullable=False, renamed_from="name"))


async def migrated(
    database: FreshDatabase, wanted: Manifest
) -> tuple[asyncpg.Connection, ColumnMigration]:
    """users(id integer, name) with rows; ``wanted`` healed (its one migration expanded) and
    its backfill and enforce run."""
    await database.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i"
    )
    conn = await connect(database.dsn)
    assert (await heal(conn, wanted)).outcome is Outcome.HEALED
    (m,) = [p.migration for p in await backfill_store.registered(conn)]
    assert (await run_pending(conn)) == {m.id: Finish.EXPANDED}
    await tracked_long_ago(conn)
    return conn, m


@pytest.mark.parametrize("approve", [False, True])
async def test_after_contract_the_new_version_boots_and_an_old_one_is_blocked(
    database: FreshDatabase, approve: bool
) -> None:
    conn, m = await migrated(database, NEW)
    try:
        assert (await heal(conn, OLD)).outcome is Outcome.UNCHANGED  # not contracted yet
        finish, _ = (await run_contracts(conn, always if approve else never, GRACE))[m.id]
        assert finish is (ContractFinish.CONTRACTED if approve else ContractFinish.KEPT)
        again = await heal(conn, NEW)
        assert again.outcome is Outcome.UNCHANGED, again.error_message
        assert again.applied == ()
        old = await heal(conn, OLD)
        assert (old.outcome, old.error_code) == (Outcome.BLOCKED, "version-retired")
        assert old.error_message is not None
        assert (
            "this version is retired: public.users finished its rename migration to "
            "full_name text" in old.error_message
        )
        assert "deploy a version whose manifest declares full_name" in old.error_message
        assert old.applied == ()  # the dropped column is not added back
        # the gate's boot check gives the same answer, without a heal
        desired = prepare(OLD)
        checked = await check_one(conn, boot_check.Boot(
            desired=desired, request=RequestInfo(request_id="old-2"), instances=(("app", "o"),),
            shape=shape_of(desired.realm), ttl_s=60), HealOptions())  # fmt: skip
        assert checked is not None
        assert (checked.outcome, checked.error_message) == (old.outcome, old.error_message)
        assert ("name" in (await trigger_and_columns(conn))[1]) is not approve
        (row,) = await read_migrations(conn, "schemaheal", "nexus")  # what replay shows
        contract = phases(row)["contract"]
        assert contract.startswith("done: trigger dropped" if approve else "trigger dropped")
        if approve:
            assert "old column dropped" in contract
        else:
            assert contract.endswith(kept_reason(m))
    finally:
        await conn.close()


async def test_a_retired_version_served_elsewhere_during_its_boot_check_gets_that_answer(
    database: FreshDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boot check writes a ``blocked`` answer's rows after its statement, under the schemas'
    locks as the heal writes its own: a request another worker served in between (a rebalance)
    is answered with that worker's row, its follower's row points at it, and it gets no
    second row."""
    conn, _ = await migrated(database, NEW)
    elsewhere = await connect(database.dsn)
    try:
        await run_contracts(conn, never, GRACE)
        real = boot_check.read_facts

        async def then_served_elsewhere(*args: Any, **kwargs: Any) -> Any:
            facts = await real(*args, **kwargs)
            await heal(elsewhere, OLD, request=RequestInfo(request_id="old-2"))
            return facts

        monkeypatch.setattr(boot_check, "read_facts", then_served_elsewhere)
        desired = prepare(OLD)
        follower = ("old-3", "app", "p", None, "service.starting:0:3")
        checked = await check_one(conn, boot_check.Boot(
            desired=desired, request=RequestInfo(request_id="old-2"),
            instances=(("app", "o"), ("app", "p")), shape=shape_of(desired.realm), ttl_s=60,
            followers=(follower,)), HealOptions())  # fmt: skip
        assert isinstance(checked, HealResult)
        assert (checked.outcome, checked.served_before) == (Outcome.BLOCKED, True)
        rows = await conn.fetch("SELECT id, request_id, outcome, served_by FROM schemaheal.heals"
                                " WHERE request_id LIKE 'old-%' ORDER BY id")  # fmt: skip
        assert [tuple(r)[1:] for r in rows] == [
            ("old-2", "blocked", None), ("old-3", "blocked", rows[0]["id"])
        ]  # fmt: skip
    finally:
        await asyncio.gather(conn.close(), elsewhere.close())


async def test_a_heal_holding_the_schema_leaves_contract_for_a_later_round(
    conn: asyncpg.Connection, database: FreshDatabase
) -> None:
    holder = await connect(database.dsn)
    try:
        key = advisory_key(await conn.fetchval("SELECT current_database()"), "public")
        await holder.execute("SELECT pg_advisory_lock($1)", key)  # as a heal of public does
        settings = ContractSettings(grace_s=0, lock_wait_s=0.2, lease_ttl_s=0)
        finish, why = (await run_contracts(conn, never, settings))[RENAME.id]
        assert finish is ContractFinish.LATER and "next round" in why
        assert (await trigger_and_columns(conn))[0]
        await holder.execute("SELECT pg_advisory_unlock($1)", key)
        assert (await run_contracts(conn, never, settings))[RENAME.id][0] is ContractFinish.KEPT
    finally:
        await holder.close()


async def test_leases_long_ended_are_pruned(conn: asyncpg.Connection) -> None:
    await boot(conn, "old-1", old=True, ttl_s=0.1)
    await boot(conn, "new-1", old=False, ttl_s=3600)
    await asyncio.sleep(0.3)
    assert await lease_store.prune(conn, keep_s=0.1) == 1
    assert [lease.instance for lease in await lease_store.leases(conn)] == ["new-1"]


WIDE = load_manifest(manifest(table("users", column("id", "bigint", nullable=False, using="id"),
                                    column("name", nullable=False), primary_key=pk("id"))))  # fmt: skip
NARROW = users(column("name", nullable=False))


async def test_a_key_widened_in_place_is_contracted_and_the_narrow_version_retired(
    database: FreshDatabase,
) -> None:
    conn, m = await migrated(database, WIDE)
    try:
        assert (await heal(conn, NARROW)).outcome is Outcome.UNCHANGED  # widened: accepted
        await lease_store.record_boot(conn, instances=[("orchestrator", "narrow-1")],
                                      manifest_hash="narrow", shape=NARROW_SHAPE, ttl_s=3600)  # fmt: skip
        assert (await run_contracts(conn, always, GRACE))[m.id][0] is ContractFinish.WAITING
        await lease_store.stop(conn, service="orchestrator", instance="narrow-1")
        await asyncio.sleep(0.35)
        assert (await run_contracts(conn, always, GRACE))[m.id][0] is ContractFinish.CONTRACTED
        assert (await trigger_and_columns(conn)) == (False, {"id", "name"})
        assert (await heal(conn, WIDE)).outcome is Outcome.UNCHANGED
        narrow = await heal(conn, NARROW)
        assert (narrow.outcome, narrow.error_code) == (Outcome.BLOCKED, "version-retired")
        assert narrow.error_message is not None
        assert "old shape (column id of its old type)" in narrow.error_message
        await conn.execute("INSERT INTO public.users (id, name) VALUES (3000000000, 'wide')")
    finally:
        await conn.close()


async def test_boots_of_one_manifest_are_leased_together_even_twice(
    conn: asyncpg.Connection,
) -> None:
    pairs = [("app", "a"), ("app", "b"), ("app", "a")]  # "a" asked twice in one batch
    await lease_store.record_boot(conn, instances=pairs, manifest_hash="old",
                                  shape=OLD_SHAPE, ttl_s=60)  # fmt: skip
    leases = await lease_store.leases(conn)
    assert [(x.instance, x.shape) for x in leases] == [("a", OLD_SHAPE), ("b", OLD_SHAPE)]


async def test_instances_older_than_the_leases_hold_contract_for_a_ttl(
    database: FreshDatabase,
) -> None:
    """A worker upgraded to record leases cannot know who booted before: no lease at all, yet
    contract waits one lease TTL from when recording began."""
    connection = await expanded_users(database, 50, RENAME)
    try:
        assert await run_pending(connection) == {RENAME.id: Finish.EXPANDED}
        finish, why = (await run_contracts(connection, never, GRACE))[RENAME.id]
        assert finish is ContractFinish.WAITING and "booted before may run until" in why
        await asyncio.sleep(0.35)  # GRACE's lease TTL
        assert (await run_contracts(connection, never, GRACE))[RENAME.id][0] is ContractFinish.KEPT
    finally:
        await connection.close()


async def test_a_column_drop_that_fails_is_reported_and_tried_again(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE VIEW public.names AS SELECT name FROM public.users")
    finish, why = (await run_contracts(conn, always, GRACE))[RENAME.id]
    assert finish is ContractFinish.LATER
    assert "DependentObjectsStillExistError" in why and "tried again every round" in why
    trigger, columns = await trigger_and_columns(conn)
    assert not trigger and "name" in columns  # the trigger step committed on its own
    await conn.execute("DROP VIEW public.names")
    assert (await run_contracts(conn, always, GRACE))[RENAME.id][0] is ContractFinish.CONTRACTED
    assert "name" not in (await trigger_and_columns(conn))[1]
