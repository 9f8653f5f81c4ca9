"""The heal cycle on a real PostgreSQL: data kept, locks, retries, failures, ledger, policy."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from worker.engine.apply import RetryPolicy
from worker.engine.connection import connect
from worker.engine.hazards import Hazard
from worker.engine.heal import HealOptions, Outcome, RequestInfo, heal
from worker.engine.lock import advisory_key
from worker.engine.plan import PlanSettings
from worker.engine.policy import Policy

ROOT = Path(__file__).parents[2]
NEXUS = ROOT / "examples" / "nexus"
OLD_TABLES = [
    "tenants",
    "tools",
    "credentials",
    "chat_media",
    "chat_conversations",
    "chat_messages",
]


async def snapshot(db: FreshDatabase) -> dict[str, list[dict[str, object]]]:
    """Every row of the seed's old tables, as dicts, in key order."""
    out = {}
    for name in OLD_TABLES:
        rows = await db.fetch(f"SELECT * FROM public.{name} ORDER BY id")
        out[name] = [dict(r) for r in rows]
    return out


async def test_healing_the_seeds_old_shape_keeps_every_row_and_value(
    database: FreshDatabase,
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    before = await snapshot(database)
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest((NEXUS / "manifest.json").read_bytes()))
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    after = await snapshot(database)
    for name, rows in before.items():
        assert len(after[name]) == len(rows), name
        for old, new in zip(rows, after[name], strict=True):
            assert {k: new[k] for k in old} == old  # every old value, untouched
    added = await database.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name IN ('openai_api_key', 'scope', 'category', 'customer_id') ORDER BY 1, 2"
    )
    assert [tuple(r) for r in added] == [
        ("chat_conversations", "customer_id"), ("credentials", "category"),
        ("credentials", "scope"), ("tenants", "openai_api_key"),
    ]  # fmt: skip


async def test_twenty_processes_heal_the_same_drift_once_without_deadlock(
    database: FreshDatabase,
) -> None:
    """The drift includes CREATE INDEX CONCURRENTLY, which deadlocks against a blocking
    pg_advisory_lock waiter; polling pg_try_advisory_lock must get all 20 through."""
    await database.execute((NEXUS / "old_shape.sql").read_text())
    await database.execute(
        "INSERT INTO chat_conversations (id, tenant_id, channel) "
        "SELECT gen_random_uuid(), 1, 'web' FROM generate_series(1, 20000)"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "heal", "--dsn", database.dsn,
            str(NEXUS / "manifest.json"), "--format", "json", "--lock-wait-s", "120",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )
        for _ in range(20)
    ]  # fmt: skip
    results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 180)
    codes = [p.returncode for p in processes]
    assert codes == [0] * 20, [err.decode()[-500:] for _, err in results]
    outcomes = sorted(json.loads(out)["outcome"] for out, _ in results)
    assert outcomes == ["healed"] + ["unchanged"] * 19
    ledger = await database.fetch("SELECT outcome, count(*) AS n FROM schemaheal.heals GROUP BY 1")
    assert {r["outcome"]: r["n"] for r in ledger} == {"healed": 1, "unchanged": 19}
    ran = await database.fetch("SELECT sql FROM schemaheal.statements")
    assert len(ran) == len({r["sql"] for r in ran})  # each statement ran exactly once
    locks = await database.fetch("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'")
    assert locks == []  # no stale lock


async def test_a_held_table_lock_delays_the_heal_but_never_blocks_others_long(
    database: FreshDatabase,
) -> None:
    await database.execute(
        "CREATE TABLE tenants (id integer PRIMARY KEY); INSERT INTO tenants VALUES (1)"
    )
    holder = await asyncpg.connect(database.dsn)
    reader = await asyncpg.connect(database.dsn)
    await holder.execute(
        "BEGIN; SELECT * FROM tenants"
    )  # ACCESS SHARE, held by an open transaction
    want = load_manifest(manifest(table("tenants", column("id", "integer", nullable=False),
                                        column("openai_api_key"), primary_key=pk("id"))))  # fmt: skip
    options = HealOptions(plan=PlanSettings(lock_timeout_ms=200), retry=RetryPolicy(budget_s=20))
    conn = await connect(database.dsn)
    healing = asyncio.create_task(heal(conn, want, options=options))
    waits = []
    for _ in range(15):  # other sessions keep reading while the heal waits for its lock (1.5 s)
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        await reader.fetch("SELECT * FROM tenants")
        waits.append(time.perf_counter() - started)
    await holder.execute("COMMIT")
    result = await asyncio.wait_for(healing, 30)
    await asyncio.gather(conn.close(), holder.close(), reader.close())
    assert result.outcome is Outcome.HEALED, result.error_message
    assert result.applied[0].retries >= 1
    # never blocked for the 1.5 s the lock is held: only up to lock_timeout (0.2 s) + scheduling
    assert max(waits) < 0.8, waits


async def test_a_lock_that_is_never_released_exhausts_the_budget_with_a_clear_report(
    database: FreshDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    holder = await asyncpg.connect(database.dsn)
    await holder.execute("BEGIN; SELECT * FROM tenants")
    want = load_manifest(manifest(table("tenants", column("id", "integer", nullable=False),
                                        column("openai_api_key"), primary_key=pk("id"))))  # fmt: skip
    options = HealOptions(plan=PlanSettings(lock_timeout_ms=100), retry=RetryPolicy(budget_s=1))
    conn = await connect(database.dsn)
    try:
        with caplog.at_level(logging.WARNING, logger="schemaheal.apply"):
            result = await heal(conn, want, options=options)
    finally:
        await holder.execute("ROLLBACK")
        await asyncio.gather(conn.close(), holder.close())
    retries = [r for r in caplog.records if r.name == "schemaheal.apply"]
    assert retries, "every lock-timeout retry is logged"
    assert all(r.error == "LockNotAvailableError" for r in retries)  # type: ignore[attr-defined]
    assert result.outcome is Outcome.FAILED
    assert result.error_code == "lock-budget-exhausted"
    assert "pg_stat_activity" in (result.error_message or "")
    assert "applying statement 1 of 1" in (result.error_message or "")
    columns = await database.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'"
    )
    assert [r["column_name"] for r in columns] == ["id"]


async def test_data_that_fails_a_new_constraint_leaves_nothing_half_done(
    database: FreshDatabase,
) -> None:
    await database.execute(
        "CREATE TABLE tools (id integer PRIMARY KEY, name text, rank integer);"
        "INSERT INTO tools VALUES (1, 'a', -1), (2, 'a', 3), (3, NULL, 1)"
    )
    cases = [
        table("tools", column("id", "integer", nullable=False), column("name"), column("rank", "integer"),
              primary_key=pk("id"), checks=[{"expression": "rank >= 0"}]),
        table("tools", column("id", "integer", nullable=False), column("name"), column("rank", "integer"),
              primary_key=pk("id"), unique=[{"columns": ["name"]}]),
        table("tools", column("id", "integer", nullable=False), column("name", nullable=False),
              column("rank", "integer"), primary_key=pk("id")),
    ]  # fmt: skip
    conn = await connect(database.dsn)
    try:
        for wanted in cases:
            result = await heal(conn, load_manifest(manifest(wanted)))
            assert result.outcome is Outcome.FAILED
            assert result.error_code == "statement-failed"
            message = result.error_message or ""
            assert "ViolationError" in message and message.endswith(  # and what to do next
                "; fix the rows the error names (or change the manifest), then boot again"
            ), message
    finally:
        await conn.close()
    leftovers = await database.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'tools'::regclass AND contype IN ('c', 'u', 'f') "
        "UNION ALL SELECT relname FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "WHERE i.indrelid = 'tools'::regclass AND NOT i.indisprimary"
    )
    assert leftovers == []
    rows = await database.fetch("SELECT * FROM tools ORDER BY id")
    assert [tuple(r) for r in rows] == [(1, "a", -1), (2, "a", 3), (3, None, 1)]


async def test_rewriting_a_large_table_is_blocked_until_approved(database: FreshDatabase) -> None:
    await database.execute(
        "CREATE TABLE events (id integer PRIMARY KEY);"
        "INSERT INTO events SELECT generate_series(1, 5000)"
    )
    wanted = load_manifest(manifest(table(
        "events", column("id", "integer", nullable=False),
        column("uid", "uuid", nullable=False, default="gen_random_uuid()"), primary_key=pk("id"),
    )))  # fmt: skip
    strict = HealOptions(policy=Policy(rewrite_threshold_bytes=1024))
    conn = await connect(database.dsn)
    try:
        blocked = await heal(conn, wanted, options=strict)
        approved = await heal(conn, wanted, options=HealOptions(
            policy=Policy(rewrite_threshold_bytes=1024, allow=frozenset({Hazard.TABLE_REWRITE}))))  # fmt: skip
    finally:
        await conn.close()
    assert blocked.outcome is Outcome.BLOCKED
    assert blocked.applied == ()
    assert [b.hazard for b in blocked.blocked] == [Hazard.TABLE_REWRITE]
    assert (
        "ADD COLUMN IF NOT EXISTS uid uuid DEFAULT gen_random_uuid() NOT NULL"
        in blocked.blocked[0].statement.sql
    )
    assert approved.outcome is Outcome.HEALED
    count = await database.fetch("SELECT count(DISTINCT uid) AS n FROM events")
    assert count[0]["n"] == 5000


async def test_every_heal_is_recorded_in_the_ledger_outside_the_services_schemas(
    database: FreshDatabase,
) -> None:
    wanted = load_manifest(
        manifest(table("t", column("id", "uuid", nullable=False), primary_key=pk("id")))
    )
    request = RequestInfo(request_id="req-1", service="orchestrator", instance="pod-a",
                          database_alias="nexus", trace_id="4bf92f3577b34da6a3ce929d0e0e4736")  # fmt: skip
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, wanted, request=request)
    finally:
        await conn.close()
    [row] = await database.fetch("SELECT * FROM schemaheal.heals")
    assert (row["request_id"], row["service"], row["instance"], row["outcome"], row["trace_id"]) == (
        "req-1", "orchestrator", "pod-a", "healed", "4bf92f3577b34da6a3ce929d0e0e4736",
    )  # fmt: skip
    assert row["manifest_hash"] == result.manifest_hash
    assert row["id"] == result.ledger_id
    statements = await database.fetch(
        "SELECT ordinal, change, hazards FROM schemaheal.statements ORDER BY 1"
    )
    assert [s["change"] for s in statements] == ["AddTable public.t"]
    public = await database.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert [r["tablename"] for r in public] == ["t"]


async def test_a_transactions_statements_reach_the_ledger_in_one_round_trip(
    database: FreshDatabase,
) -> None:
    """The ledger rows of a transaction's statements go in one round trip before it commits
    (they were one each: 2000 more round trips for a 1000-table heal), and every one is there."""
    tables = [table(f"t{i}", column("id", "integer", nullable=False), column("name"),
                    primary_key=pk("id"), indexes=[{"elements": ["name"]}]) for i in range(5)]  # fmt: skip
    conn = await connect(database.dsn)
    writes: list[str] = []
    conn.add_query_logger(
        lambda q: writes.append(q.query) if "INTO schemaheal.statements" in q.query else None
    )
    try:
        result = await heal(conn, load_manifest(manifest(*tables)), request=RequestInfo())
    finally:
        await conn.close()
    assert result.outcome is Outcome.HEALED, result.error_message
    transactions = {s.group for s in result.plan.statements}
    assert len(result.applied) == 10 and len(transactions) < len(result.applied)
    progress = [w for w in writes if "ON CONFLICT" in w]  # the rest: the intent, written first
    assert len(progress) == len(transactions) and len(writes) - len(progress) == 1
    rows = await database.fetch("SELECT ordinal, sql FROM schemaheal.statements ORDER BY 1")
    assert [(r["ordinal"], r["sql"]) for r in rows] == [(a.ordinal, a.sql) for a in result.applied]


async def test_a_request_another_worker_finished_gets_that_heals_answer(
    database: FreshDatabase,
) -> None:
    """Redelivered to a second worker after the first one recorded its heal: the second, holding
    the locks, answers with the recorded outcome and ledger row, and runs nothing again."""
    wanted = load_manifest(manifest(table("t", column("id", "integer", nullable=False),
                                          primary_key=pk("id"))))  # fmt: skip
    conn = await connect(database.dsn)
    try:
        first = await heal(conn, wanted, request=RequestInfo(request_id="again"))
        second = await heal(conn, wanted, request=RequestInfo(request_id="again"))
        other = await heal(conn, wanted, request=RequestInfo(request_id="other"))
    finally:
        await conn.close()
    assert (first.outcome, first.served_before) == (Outcome.HEALED, False)
    assert (second.outcome, second.ledger_id, second.served_before) == (
        Outcome.HEALED, first.ledger_id, True,
    )  # fmt: skip
    assert (other.outcome, other.served_before) == (Outcome.UNCHANGED, False)
    rows = await database.fetch("SELECT request_id FROM schemaheal.heals ORDER BY id")
    assert [r["request_id"] for r in rows] == ["again", "other"]


async def test_a_heal_records_its_followers_and_says_whom_another_worker_served(
    database: FreshDatabase,
) -> None:
    """The followers' rows are the heal's (written under its locks): one served already gets
    none and is named in ``served_elsewhere``; a follower of a leader served before as a
    follower itself points at the heal that ran, whose statements it is answered with."""
    wanted = load_manifest(manifest(table("t", column("id", "integer", nullable=False),
                                          primary_key=pk("id"))))  # fmt: skip

    def follower(request_id: str) -> tuple[str, str, str, None, str]:
        return (request_id, "svc", f"pod-{request_id}", None, f"starting:0:{request_id}")

    conn = await connect(database.dsn)
    try:
        first = await heal(conn, wanted, request=RequestInfo(request_id="a"),
                           followers=[follower("b")])  # fmt: skip
        again = await heal(conn, wanted, request=RequestInfo(request_id="c"),
                           followers=[follower("b"), follower("d")])  # fmt: skip
        served = await heal(conn, wanted, request=RequestInfo(request_id="b"),
                            followers=[follower("e")])  # fmt: skip
    finally:
        await conn.close()
    assert (first.outcome, first.served_elsewhere) == (Outcome.HEALED, ())
    assert (again.outcome, again.served_elsewhere) == (Outcome.UNCHANGED, ("b",))
    assert (served.outcome, served.served_before, served.served_elsewhere) == (
        Outcome.HEALED, True, ()
    )  # fmt: skip
    rows = await database.fetch(
        "SELECT h.request_id, h.outcome, h.served_by, h.record_position,"
        " (SELECT count(*) FROM schemaheal.statements s WHERE s.heal_id = h.served_by) AS ran"
        " FROM schemaheal.heals h ORDER BY h.id"
    )
    assert [tuple(r) for r in rows] == [
        ("a", "healed", None, None, 0),
        ("b", "healed", first.ledger_id, "starting:0:b", 1),
        ("c", "unchanged", None, None, 0),
        ("d", "unchanged", again.ledger_id, "starting:0:d", 0),
        ("e", "healed", first.ledger_id, "starting:0:e", 1),  # not b's row: the heal that ran
    ]


async def test_a_heal_left_to_a_later_attempt_answers_nobody_and_the_retry_heals(
    database: FreshDatabase,
) -> None:
    """A retryable failure (the schema's lock held too long, a table's lock budget spent) is
    retried by the gate and redelivered by Kafka: it must not be a finished ledger row, or the
    retry finds it "served before" and the request is answered ``failed`` for good. Its intent
    row is closed ``interrupted`` (its statements settled), as a dead heal's would be."""
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    want = load_manifest(manifest(table("tenants", column("id", "integer", nullable=False),
                                        column("openai_api_key"), primary_key=pk("id"))))  # fmt: skip
    quick = HealOptions(lock_wait_s=0.3, plan=PlanSettings(lock_timeout_ms=100),
                        retry=RetryPolicy(budget_s=1))  # fmt: skip
    conn, holder = await connect(database.dsn), await asyncpg.connect(database.dsn)
    try:
        key = advisory_key(database.name, "public")
        await holder.execute("SELECT pg_advisory_lock($1)", key)  # another heal, too long
        waited = await heal(conn, want, options=quick, request=RequestInfo(request_id="w"))
        await holder.execute("SELECT pg_advisory_unlock($1)", key)
        await holder.execute("BEGIN; SELECT * FROM tenants")  # the ALTER's lock: never granted
        spent = await heal(conn, want, options=quick, request=RequestInfo(request_id="b"))
        await holder.execute("ROLLBACK")
        again = {r: await heal(conn, want, request=RequestInfo(request_id=r))
                 for r in ("w", "b")}  # fmt: skip
    finally:
        await asyncio.gather(conn.close(), holder.close())
    assert (waited.error_code, spent.error_code) == ("lock-wait-timeout", "lock-budget-exhausted")
    assert [(r.outcome, r.served_before) for r in again.values()] == [
        (Outcome.HEALED, False), (Outcome.UNCHANGED, False)
    ]  # fmt: skip
    rows = await database.fetch("SELECT request_id, outcome FROM schemaheal.heals ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("b", "interrupted"), ("w", "healed"), ("b", "unchanged")
    ]  # fmt: skip
    states = await database.fetch("SELECT state FROM schemaheal.statements ORDER BY heal_id")
    assert [r["state"] for r in states] == ["not-applied", "applied"]


@pytest.mark.parametrize("version_sensitive", ["nulls_not_distinct"])
async def test_unique_nulls_not_distinct_is_supported_from_postgresql_15(
    database: FreshDatabase, version_sensitive: str
) -> None:
    wanted = load_manifest(manifest(table(
        "t", column("a", "integer"), unique=[{"columns": ["a"], "nulls_not_distinct": True}],
    )))  # fmt: skip
    conn = await connect(database.dsn)
    try:
        assert (await heal(conn, wanted)).outcome is Outcome.HEALED
        assert (await heal(conn, wanted)).outcome is Outcome.UNCHANGED
    finally:
        await conn.close()
