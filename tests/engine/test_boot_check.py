"""The boot check: a repeated, verified manifest answered in one statement (its ledger row
included), never when anything it proves could be stale.

The pure decision is table-tested; on PostgreSQL: the answer and its ledger row and lease, any
DDL behind the worker's back between two boots, a lock held by a heal or a contract, two checks
at once, a dead heal to close, a request another worker served, a ledger of an older layout, a
request of the batch served before (nothing written), and the row the function writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import asyncpg
import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME
from tests.engine.test_fingerprint import BEHIND_THE_BACK, MANIFEST, heal_once, healed_and_verified
from worker.engine import boot_check, fingerprint, heal_record
from worker.engine.boot_check import Boot, BootFacts, answer
from worker.engine.changes import Drift, DriftKind
from worker.engine.connection import connect
from worker.engine.desired import prepare
from worker.engine.heal import HealOptions, HealResult, Outcome, RequestInfo
from worker.engine.liveness import shape_of
from worker.engine.lock import advisory_key

SAME = fingerprint.Fingerprint(value="18:10:42", horizon=100)
OTHER = fingerprint.Fingerprint(value="18:11:42", horizon=100)
DRIFT = (Drift(kind=DriftKind.EXTRA_COLUMN, target="shop.items.extra", detail="not declared"),)
TRUSTED = fingerprint.Known(current=SAME, verified=SAME, drift=DRIFT)
CHANGED = fingerprint.Known(current=SAME, verified=OTHER)
WHEN = datetime(2026, 12, 2, tzinfo=UTC)


def boot(manifest: dict[str, object] = MANIFEST, request_id: str = "r-1", *,
         instances: tuple[tuple[str, str], ...] = (("shop", "pod-a"),)) -> Boot:  # fmt: skip
    desired = prepare(load_manifest(manifest))
    return Boot(desired=desired, request=RequestInfo(request_id=request_id, service="shop"),
                instances=instances, shape=shape_of(desired.realm), ttl_s=60)  # fmt: skip


def users(column: str) -> dict[str, object]:
    """A manifest of public.users declaring ``column`` (``name`` is RENAME's old shape)."""
    return {"service": "shop", "database": "main", "schemas": ["public"], "tables": [
        {"schema": "public", "name": "users", "primary_key": {"columns": ["id"]}, "columns": [
            {"name": "id", "type": "integer", "nullable": False},
            {"name": column, "type": "text", "nullable": False}]}]}  # fmt: skip


OLD, NEW = users("name"), users("full_name")
RETIRED = ((RENAME, WHEN),)  # contracted: its trigger dropped


@pytest.mark.parametrize(
    ("facts", "manifest", "expected"),
    [
        (BootFacts(locked=True, known=TRUSTED), MANIFEST, Outcome.UNCHANGED),
        (BootFacts(locked=False), MANIFEST, None),  # a heal or a contract holds a lock
        (BootFacts(locked=True, known=TRUSTED, served=True), MANIFEST, None),
        (BootFacts(locked=True, known=TRUSTED, running=True), MANIFEST, None),
        (BootFacts(locked=True, known=CHANGED), MANIFEST, None),
        (BootFacts(locked=True, known=fingerprint.Known(current=SAME)), MANIFEST, None),
        # a retired version is blocked whatever its fingerprint says
        (BootFacts(locked=True, known=TRUSTED, contracted=RETIRED), OLD, Outcome.BLOCKED),
        (BootFacts(locked=True, known=CHANGED, contracted=RETIRED), OLD, Outcome.BLOCKED),
        # the new version of the same migration is not retired
        (BootFacts(locked=True, known=TRUSTED, contracted=RETIRED), NEW, Outcome.UNCHANGED),
    ],
)
def test_the_answer_the_facts_prove(
    facts: BootFacts, manifest: dict[str, object], expected: Outcome | None
) -> None:
    result = answer(facts, boot(manifest))
    assert (result and result.outcome) == expected
    if expected is Outcome.UNCHANGED:
        assert result is not None and result.drift == (facts.known and facts.known.drift)
    if expected is Outcome.BLOCKED:
        assert result is not None and result.error_code == "version-retired"
        assert (
            result.error_message and "this version is retired: public.users" in result.error_message
        )


def test_a_manifest_declaring_migrations_is_always_healed() -> None:
    manifest = users("full_name")
    manifest["tables"][0]["columns"][1]["renamed_from"] = "name"  # type: ignore[index]
    assert answer(BootFacts(locked=True, known=TRUSTED), boot(manifest)) is None


def test_the_function_reads_every_field_of_a_group_and_no_other() -> None:
    """The function types a group's fields in one ``jsonb_to_record``: a field it does not
    declare would be NULL there, silently."""
    declared = {field.split()[0] for field in boot_check._GROUP_FIELDS.split(",")}
    assert set(boot_check._group("main", boot(), HealOptions())) == declared


pytestmark = pytest.mark.postgres


async def leases(conn: asyncpg.Connection) -> dict[str, datetime]:
    rows = await conn.fetch("SELECT instance, expires_at FROM schemaheal.leases")
    return {r["instance"]: r["expires_at"] for r in rows}


async def check_one(
    conn: asyncpg.Connection, booting: Boot, options: HealOptions, lookup: tuple[str, ...] = ()
) -> HealResult | boot_check.Seen | None:
    """:func:`boot_check.check_many` of one boot (``lookup``: the batch's request ids)."""
    results = await boot_check.check_many(conn, [booting], options, lookup=lookup)
    return results if isinstance(results, boot_check.Seen) else results[0]


async def check(
    conn: asyncpg.Connection, request_id: str, *instances: str
) -> HealResult | boot_check.Seen | None:
    pods = tuple(("shop", i) for i in instances or ("pod-a",))
    return await check_one(conn, boot(request_id=request_id, instances=pods), HealOptions())


@pytest.fixture
async def conn(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database where MANIFEST was healed and verified."""
    await healed_and_verified(database)
    connection = await connect(database.dsn)
    yield connection
    await connection.close()


@pytest.fixture
async def other(database: FreshDatabase) -> AsyncIterator[asyncpg.Connection]:
    """Another session: a heal, a contract or a second worker."""
    connection = await connect(database.dsn)
    yield connection
    await connection.close()


async def test_a_verified_manifest_is_answered_recorded_and_leased(
    conn: asyncpg.Connection,
) -> None:
    first = await check(conn, "r-1")
    assert first is not None and first.outcome is Outcome.UNCHANGED
    row = await conn.fetchrow("SELECT * FROM schemaheal.heals WHERE id = $1", first.ledger_id)
    assert (row["request_id"], row["outcome"]) == ("r-1", "unchanged")
    leased = await leases(conn)
    second = await check(conn, "r-2", "pod-a", "pod-b")
    assert second is not None and second.outcome is Outcome.UNCHANGED
    extended = await leases(conn)
    assert set(extended) == {"pod-a", "pod-b"} and extended["pod-a"] > leased["pod-a"]


@pytest.mark.parametrize("change", sorted(BEHIND_THE_BACK))
async def test_any_ddl_between_two_boots_makes_it_step_aside(
    conn: asyncpg.Connection, database: FreshDatabase, change: str
) -> None:
    assert await check(conn, "before")
    await database.execute(BEHIND_THE_BACK[change])
    assert await check(conn, "after") is None
    assert "pod-a" in await leases(conn)  # leased all the same


async def test_a_held_lock_makes_it_step_aside_and_the_lease_is_written_first(
    conn: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    key = advisory_key(await conn.fetchval("SELECT current_database()"), "shop")
    await other.execute("SELECT pg_advisory_lock($1)", key)  # as a heal or contract does
    assert await check(conn, "r-1") is None
    assert "pod-a" in await leases(other)  # committed for the contract to see
    await other.execute("SELECT pg_advisory_unlock($1)", key)
    assert await check(conn, "r-2")
    # its transaction's locks are gone with it: a heal gets them at once
    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key)


async def test_two_checks_at_once_both_answer_or_step_aside_and_both_lease(
    conn: asyncpg.Connection, other: asyncpg.Connection
) -> None:
    for round_ in range(5):
        results = await asyncio.gather(check(conn, f"a{round_}", "a"),
                                       check(other, f"b{round_}", "b"))  # fmt: skip
        for result in results:
            assert result is None or result.outcome is Outcome.UNCHANGED
        assert {"a", "b"} <= set(await leases(conn))
    # a check while another session's open transaction holds the lock steps aside
    key = advisory_key(await conn.fetchval("SELECT current_database()"), "shop")
    async with other.transaction():
        await other.execute("SELECT pg_advisory_xact_lock($1)", key)
        assert await check(conn, "c") is None


async def test_a_dead_heal_or_a_request_served_elsewhere_is_left_to_the_heal(
    conn: asyncpg.Connection,
) -> None:
    served = await check(conn, "done")
    assert served is not None
    assert await check(conn, "done") is None
    await conn.execute("UPDATE schemaheal.heals SET outcome = 'running' WHERE id = $1",
                       served.ledger_id)  # fmt: skip
    assert await check(conn, "new") is None


async def test_a_ledger_of_the_oldest_layout_is_upgraded_before_the_first_check(
    database: FreshDatabase,
) -> None:
    await healed_and_verified(database)
    await database.execute(  # as a worker of the first layout left it
        "ALTER TABLE schemaheal.statements DROP COLUMN state, DROP COLUMN catalog_check;"
        "ALTER TABLE schemaheal.heals DROP COLUMN planned, DROP COLUMN migrations"
    )
    conn = await connect(database.dsn)
    try:
        result = await check(conn, "r-1")
        assert result is not None and result.outcome is Outcome.UNCHANGED
        assert await conn.fetchval("SELECT count(*) FROM schemaheal.heals WHERE planned IS NULL")
    finally:
        await conn.close()


async def test_a_request_of_the_batch_served_before_is_seen_and_nothing_is_written(
    conn: asyncpg.Connection,
) -> None:
    served = await check(conn, "done")
    assert served is not None
    heals = await conn.fetchval("SELECT count(*) FROM schemaheal.heals")
    batch, lookup = boot(request_id="new", instances=(("shop", "pod-new"),)), ("new", "done")
    assert await check_one(conn, batch, HealOptions(), lookup) is boot_check.SEEN
    assert "pod-new" not in await leases(conn)
    assert await conn.fetchval("SELECT count(*) FROM schemaheal.heals") == heals
    # an interrupted heal answers nobody: that request is served again
    await conn.execute("UPDATE schemaheal.heals SET outcome = 'interrupted' WHERE id = $1",
                       served.ledger_id)  # fmt: skip
    result = await check_one(conn, batch, HealOptions(), lookup)
    assert isinstance(result, HealResult) and result.outcome is Outcome.UNCHANGED
    assert "pod-new" in await leases(conn)


async def test_the_answer_s_ledger_row_is_the_one_the_worker_writes_for_it(
    database: FreshDatabase,
) -> None:
    """The function writes the ledger row of an ``unchanged`` answer itself (no second round
    trip): field for field what :func:`heal_record.entry` makes of the answer, drift included."""
    manifest, _ = await healed_and_verified(database)
    await database.execute("ALTER TABLE shop.owners ADD COLUMN nickname text")  # extra: drift
    with_drift = await heal_once(database, manifest)
    assert with_drift.outcome is Outcome.UNCHANGED and with_drift.drift
    assert (await heal_once(database, manifest)).drift  # verified with it
    request = RequestInfo(request_id="full", service="shop", instance="pod-a",
                          database_alias="main", trace_id="ab" * 16,
                          record_position="service.starting:0:7")  # fmt: skip
    booting = replace(boot(), request=request)
    conn = await connect(database.dsn)
    try:
        result = await check_one(conn, booting, HealOptions())
        assert isinstance(result, HealResult) and result.outcome is Outcome.UNCHANGED
        row = await conn.fetchrow("SELECT * FROM schemaheal.heals WHERE id = $1", result.ledger_id)
    finally:
        await conn.close()
    expected = heal_record.entry(result, request, 0.0, booting.desired.realm)
    for name in ("request_id", "service", "instance", "database_alias", "manifest_hash",
                 "outcome", "error_code", "error_message", "trace_id", "record_position"):  # fmt: skip
        assert row[name] == getattr(expected, name), name
    assert tuple(row["schemas"]) == expected.schemas
    assert json.loads(row["drift"]) == list(expected.drift) != []
    assert json.loads(row["blocked"]) == list(expected.blocked)
    assert json.loads(row["migrations"]) == list(expected.migrations)
    assert (row["served_by"], row["planned"], row["lock_wait_ms"]) == (None, None, 0)
    assert row["duration_ms"] >= 0 and row["started_at"] <= row["finished_at"]


async def heal_scans(database: FreshDatabase) -> int:
    """Sequential scans of the ledger's heals so far (another session, its statistics fresh)."""
    rows = await database.fetch(
        "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'schemaheal.heals'::regclass"
    )
    return int(rows[0]["seq_scan"])


async def test_the_ledger_is_read_through_its_index_after_it_grew(
    conn: asyncpg.Connection, database: FreshDatabase
) -> None:
    """A storm grows the ledger by thousands of rows within seconds, while the check's plans were
    made for the small ledger it started with: a sequential scan then compares every row with
    each of a batch's hundreds of ids (93 ms a check in a 10,000-request storm). Its statistics
    say how small it was: a plan made from them prefers a sequential scan."""
    await conn.execute("ANALYZE schemaheal.heals")
    for i in range(8):  # plans cached while the ledger is small
        await check(conn, f"small-{i}")
    await conn.execute(
        """INSERT INTO schemaheal.heals (request_id, manifest_hash, schemas, outcome, started_at)
           SELECT 'old-' || i, 'h', '{shop}', 'unchanged', now()
             FROM generate_series(1, 20000) AS i"""
    )
    await conn.execute("SELECT pg_stat_force_next_flush()")  # its scans so far, counted
    before = await heal_scans(database)
    lookup = tuple(f"new-{i}" for i in range(500))
    result = await check_one(conn, boot(request_id="big"), HealOptions(), lookup)
    assert isinstance(result, HealResult) and result.outcome is Outcome.UNCHANGED
    await conn.execute("SELECT pg_stat_force_next_flush()")
    assert await heal_scans(database) == before


async def test_the_session_s_planner_settings_are_left_as_they_were(
    conn: asyncpg.Connection,
) -> None:
    """The function turns sequential scans off for its ledger reads only: inside a caller's
    transaction, after an answer and after a lookup that found a request, they are as before."""
    served = await check(conn, "done")
    assert served is not None
    async with conn.transaction():
        assert await check(conn, "again") is not None
        assert await conn.fetchval("SHOW enable_seqscan") == "on"
        batch = boot(request_id="new", instances=(("shop", "pod-new"),))
        seen = await check_one(conn, batch, HealOptions(), ("new", "done"))
        assert seen is boot_check.SEEN
        assert await conn.fetchval("SHOW enable_seqscan") == "on"


async def test_a_batch_s_boots_are_each_answered_or_left_to_the_heal_on_their_own(
    conn: asyncpg.Connection, other: asyncpg.Connection, database: FreshDatabase
) -> None:
    """One round trip for two boots of different schemas: a lock held on one's schema, or DDL
    behind one's back, leaves that one to the heal and the other answered, its follower's ledger
    row written with it."""
    for _ in range(2):
        await heal_once(database, load_manifest(OLD))  # healed, then verified
    follower = ("r-f", "shop", "pod-b", None, "service.starting:0:2")
    pods = (("shop", "pod-a"), ("shop", "pod-b"))
    shop = replace(boot(request_id="r-shop", instances=pods), followers=(follower,))
    users_boot = boot(OLD, "r-users")
    key = advisory_key(await conn.fetchval("SELECT current_database()"), "shop")
    await other.execute("SELECT pg_advisory_lock($1)", key)  # as a heal or contract does
    first = await boot_check.check_many(conn, [shop, users_boot], HealOptions())
    assert not isinstance(first, boot_check.Seen)
    assert first[0] is None and first[1] is not None and first[1].outcome is Outcome.UNCHANGED
    assert (
        await conn.fetchval("SELECT count(*) FROM schemaheal.heals WHERE request_id = 'r-f'") == 0
    )
    await other.execute("SELECT pg_advisory_unlock($1)", key)
    await database.execute("ALTER TABLE public.users ADD COLUMN nickname text")
    second = await boot_check.check_many(conn, [shop, users_boot], HealOptions())
    assert not isinstance(second, boot_check.Seen) and second[1] is None
    assert second[0] is not None and second[0].outcome is Outcome.UNCHANGED
    row = await conn.fetchrow(
        "SELECT outcome, served_by, record_position FROM schemaheal.heals WHERE request_id = 'r-f'"
    )
    assert tuple(row) == ("unchanged", second[0].ledger_id, "service.starting:0:2")
    assert {"pod-a", "pod-b"} <= set(await leases(conn))


async def test_a_request_served_elsewhere_gets_no_second_row_as_another_leader_s_follower(
    conn: asyncpg.Connection,
) -> None:
    """Batches differ between a delivery and its redelivery after a rebalance: a request one
    worker served as a leader can come to another as a follower of a different leader, after
    that worker's batch lookup. It got a second finished row (CI, the kill test with 3 workers:
    "a request without exactly one heal")."""
    assert await check(conn, "x") is not None  # served, as a leader
    coalesced = replace(boot(request_id="y"), followers=(("x", "shop", "pod-b", None, "p"),))
    result = await check_one(conn, coalesced, HealOptions())
    assert result is not None and not isinstance(result, boot_check.Seen)
    rows = await conn.fetch(
        "SELECT request_id FROM schemaheal.heals WHERE request_id IN ('x', 'y')"
    )
    assert sorted(r["request_id"] for r in rows) == ["x", "y"]
    # the gate answers it from its first row: the function says whom it skipped
    assert result.served_elsewhere == ("x",)
