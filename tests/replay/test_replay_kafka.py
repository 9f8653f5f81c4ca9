"""``schemaheal replay`` on Apache Kafka (Tansu ignores timestamps in offset lookups): a day of
synthetic boots with known timestamps, a ledger that disagrees with it in every way, and a
database in the seed's old shape.

    hour  0 2 4 … 22   orchestrator boots (healed), one every two hours
    hour  1 3 5 … 23   billing boots (rejected: no ledger rows expected)
    hour  4            no reply                          → request-without-reply
    hour  8            no ledger row                     → reply-without-ledger-row
    hour  9:30         a ledger row nobody asked for     → ledger-row-without-event
    hour 10            the ledger says failed            → outcome-differs
    hour 11:15         a dead letter                     → dead-lettered
    hour 14, 15:30     one ce_id published twice         → request-republished
    today              the old-shape database            → manifest-unsatisfied
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.conftest import BROKERS
from tests.replay.builders import (
    HOUR_MS,
    hash_of,
    reply_headers,
    reply_value,
    request_headers,
    request_value,
)
from worker.commands.replay_command import replay_command
from worker.embedded.postgres import LocalPostgres
from worker.engine import ledger
from worker.replay.history import Window
from worker.replay.report import iso
from worker.service.app import ensure_topics
from worker.settings import ReplaySettings, WorkerSettings

ROOT = Path(__file__).parents[2]
NEXUS = ROOT / "examples" / "nexus"

pytestmark = pytest.mark.skipif(
    "apache" not in BROKERS, reason="needs Apache Kafka (tier 2): a JDK and Maven"
)


def _nexus(without: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((NEXUS / "manifest.json").read_text())
    if without is not None:  # an older manifest: one column fewer
        for table in document["tables"]:
            table["columns"] = [c for c in table["columns"] if c["name"] != without]
    return document


BILLING = {"service": "billing", "database": "nexus",
           "tables": [{"name": "invoices", "columns": [{"name": "id", "type": "uuid"}]}]}  # fmt: skip


@dataclass
class Day:
    settings: ReplaySettings
    day0: int
    dsn: str
    bootstrap: str

    def at(self, hours: float) -> str:
        return iso(self.day0 + int(hours * HOUR_MS))


@pytest.fixture(scope="module")
def kafka_server(pg_server: LocalPostgres) -> Iterator[Any]:
    """A broker per day (so per PostgreSQL version): both days publish the same hours to the
    same topics, and one broker for both made the second day's windows hold both days' boots."""
    from tests.apache_kafka import ApacheKafka

    server = ApacheKafka().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def day(kafka_server: Any, pg_server: LocalPostgres) -> AsyncIterator[Day]:
    name = f"replay_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(pg_server.dsn)
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    dsn = pg_server.dsn_for(name)
    conn = await asyncpg.connect(dsn)
    await conn.execute((NEXUS / "old_shape.sql").read_text())
    await ensure_topics(WorkerSettings(bootstrap_servers=kafka_server.bootstrap_servers,
                                       topic_partitions=3))  # fmt: skip
    day0 = int(time.time() * 1000) // 86_400_000 * 86_400_000 - 2 * 86_400_000
    await _publish_day(kafka_server.bootstrap_servers, day0)
    await _write_ledger(conn, day0)
    await conn.close()
    settings = ReplaySettings(bootstrap_servers=kafka_server.bootstrap_servers,
                              databases={"nexus": dsn}, replay_fetch_max_wait_ms=50)  # fmt: skip
    yield Day(settings, day0, dsn, kafka_server.bootstrap_servers)
    admin = await asyncpg.connect(pg_server.dsn)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.close()


def _orchestrator_manifest(hour: int) -> dict[str, Any]:
    return _nexus() if hour >= 10 else _nexus(without="scope")


async def _publish_day(bootstrap: str, day0: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()

    async def send(topic: str, hours: float, value: bytes, headers: Any) -> None:
        await producer.send_and_wait(topic, value, key=b"nexus", headers=headers,
                                     timestamp_ms=day0 + int(hours * HOUR_MS))  # fmt: skip

    try:
        for hour in range(24):
            request_id = f"r{hour:02d}"
            document = _orchestrator_manifest(hour) if hour % 2 == 0 else BILLING
            outcome = "healed" if hour % 2 == 0 else "rejected"
            await send("service.starting", hour, request_value(document),
                       request_headers(request_id, document["service"], hour))  # fmt: skip
            if hour != 4:
                await send("schema.healed", hour + 2 / 3600,
                           reply_value(request_id, outcome, document, 1000 + hour),
                           reply_headers(request_id))  # fmt: skip
        await send("service.starting", 15.5, request_value(_orchestrator_manifest(14)),
                   request_headers("r14", "orchestrator", 14))  # fmt: skip
        await send("service.starting.dlq", 11.25, b"{not json",
                   [("ce_id", b"poison-1"), ("x-schemaheal-error-code", b"bad-json"),
                    ("x-schemaheal-error-message", b"the body is not JSON")])  # fmt: skip
    finally:
        await producer.stop()


async def _write_ledger(conn: Any, day0: int) -> None:
    await ledger.ensure_ledger(conn, "nexus")

    async def row(request_id: str | None, hours: float, outcome: str, manifest: str) -> None:
        await ledger.record(conn, ledger.HealRecord(
            request_id=request_id, service="orchestrator", instance="pod-a",
            database_alias="nexus", manifest_hash=manifest, schemas=("public",),
            outcome=outcome, started_at=(day0 + hours * HOUR_MS) / 1000, duration_s=0.02,
        ))  # fmt: skip

    for hour in range(0, 24, 2):
        if hour != 8:
            outcome = "failed" if hour == 10 else "healed"
            await row(
                f"r{hour:02d}", hour + 1 / 3600, outcome, hash_of(_orchestrator_manifest(hour))
            )
    await row("ghost", 9.5, "healed", "0" * 64)


async def _replay(
    day: Day, since: str, until: str, **options: Any
) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = await replay_command(day.settings, since=since, until=until, fmt="json",
                                    show_progress=False, **options)  # fmt: skip
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def _mismatches(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((m["kind"], m["subject"]) for m in lines if m["type"] == "mismatch")


async def test_a_window_returns_exactly_the_boots_inside_it_and_its_mismatches(day: Day) -> None:
    code, lines = await _replay(day, day.at(6), day.at(12))
    boots = [line for line in lines if line["type"] == "boot"]
    assert [b["request_id"] for b in boots] == [f"r{h:02d}" for h in range(6, 12)]
    assert code == 2
    ledger_ids = {m[1] for m in _mismatches(lines) if m[0] == "ledger-row-without-event"}
    assert [m for m in _mismatches(lines) if m[0] != "ledger-row-without-event"] == [
        ("dead-lettered", "poison-1"),
        ("manifest-unsatisfied", "r10"),  # the latest boot the worker let start
        ("outcome-differs", "r10"),
        ("reply-without-ledger-row", "r08"),
    ]
    assert len(ledger_ids) == 1  # the ghost at 9:30, and nothing else
    r10 = next(b for b in boots if b["request_id"] == "r10")
    assert r10["manifest_changes"] == ["+ column public.credentials.scope character varying(64)"]
    assert next(b for b in boots if b["request_id"] == "r06")["first_manifest_in_window"]
    assert r10["trace_id"] == f"{11:032x}" and r10["statements"] == []
    billing = next(b for b in boots if b["request_id"] == "r07")
    assert billing["outcome"] == "rejected" and billing["service"] == "billing"
    [summary] = [line for line in lines if line["type"] == "summary"]
    assert summary["boots"] == 6 and summary["ledgers_read"] == ["nexus"]


async def test_the_whole_day_finds_every_kind_of_mismatch(day: Day) -> None:
    code, lines = await _replay(day, day.at(0), day.at(24))
    assert code == 2
    assert len([line for line in lines if line["type"] == "boot"]) == 24
    kinds = {kind for kind, _ in _mismatches(lines)}
    assert kinds == {"request-without-reply", "request-republished", "reply-without-ledger-row",
                     "ledger-row-without-event", "outcome-differs", "dead-lettered",
                     "manifest-unsatisfied"}  # fmt: skip
    assert ("request-without-reply", "r04") in _mismatches(lines)
    assert ("request-republished", "r14") in _mismatches(lines)


async def test_an_empty_window_has_no_boots(day: Day) -> None:
    code, lines = await _replay(day, day.at(-5), day.at(-1))
    assert [line["type"] for line in lines] == ["summary"]
    assert code == 0


async def test_replay_leaves_consumer_groups_and_the_database_untouched(day: Day) -> None:
    tps = [TopicPartition("service.starting", p) for p in range(3)]
    worker = AIOKafkaConsumer(bootstrap_servers=day.bootstrap, group_id="schemaheal",
                              enable_auto_commit=False)  # fmt: skip
    await worker.start()
    worker.assign(tps)
    await worker.commit(dict.fromkeys(tps, 3))
    await worker.stop()
    before_groups = await _group_offsets(day.bootstrap)
    before_db = await _snapshot(day.dsn)
    await _replay(day, day.at(0), day.at(24))
    assert await _group_offsets(day.bootstrap) == before_groups
    assert before_groups["schemaheal"] and not before_groups["schemaheal-replay"]
    assert await _snapshot(day.dsn) == before_db


async def test_ddl_outside_the_worker_is_reported_and_a_reapply_is_not(day: Day) -> None:
    """One test, not two: the reapply's checks read the DDL log and the human's change made
    here, and test processes (pytest-xdist) may split a module's tests between them — a second
    test that relied on this one failed when it ran in another process."""
    conn = await asyncpg.connect(day.dsn)
    await conn.execute((ROOT / "deploy" / "ddl-audit.sql").read_text())
    await conn.close()
    human = await asyncpg.connect(day.dsn, server_settings={"application_name": "psql"})
    await human.execute("ALTER TABLE public.tools ADD COLUMN nickname text")
    await human.close()
    code, lines = await _replay(day, "1h", "now")
    assert code == 2, lines
    [ddl] = [m for m in lines if m["type"] == "mismatch" and m["kind"] == "ddl-outside-worker"]
    assert ddl["subject"] == "public.tools" and "psql" in ddl["detail"]

    # a reapply heals through the normal path, and its own DDL is the worker's
    code, lines = await _replay(day, day.at(0), day.at(24), reapply_unsatisfied=True)
    assert code == 0
    [summary] = [line for line in lines if line["type"] == "summary"]
    assert any(note.startswith("reapplied orchestrator@nexus") and "healed" in note
               for note in summary["notes"]), summary["notes"]  # fmt: skip
    assert "manifest-unsatisfied" not in {kind for kind, _ in _mismatches(lines)}
    conn = await asyncpg.connect(day.dsn)
    rows = await conn.fetch("SELECT outcome FROM schemaheal.heals WHERE request_id LIKE "
                            "'replay-of:r22:%'")  # fmt: skip
    apps = await conn.fetch("SELECT DISTINCT application FROM schemaheal_audit.ddl_log "
                            "WHERE application LIKE 'schemaheal%'")  # fmt: skip
    await conn.close()
    assert [r["outcome"] for r in rows] == ["healed"]
    assert [a["application"] for a in apps] == ["schemaheal replay"]
    # the reapply's own DDL is the worker's, not someone else's
    _, after = await _replay(day, "1h", "now")
    outside = [m for m in after if m["type"] == "mismatch" and m["kind"] == "ddl-outside-worker"]
    assert [m["subject"] for m in outside] == ["public.tools"]  # only the human's change


async def test_the_command_line_writes_an_html_report(day: Day, tmp_path: Path) -> None:
    report = tmp_path / "audit.html"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "replay", "--since", day.at(6), "--until", day.at(12),
        "--bootstrap-servers", day.bootstrap, "--database", f"nexus={day.dsn}",
        "--replay-fetch-max-wait-ms", "50", "--format", "html", "-o", str(report),
        cwd=ROOT, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2, err.decode()
    page = report.read_text()
    assert page.count("<circle") == 6 and "outcome-differs" in page and "<svg" in page
    assert day.dsn not in page and day.dsn not in err.decode()  # a DSN is a secret


async def _group_offsets(bootstrap: str) -> dict[str, dict[Any, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {
            group: {tp: meta.offset for tp, meta in
                    (await admin.list_consumer_group_offsets(group)).items()}
            for group in ("schemaheal", "schemaheal-replay")
        }  # fmt: skip
    finally:
        await admin.close()


async def _snapshot(dsn: str) -> tuple[Any, ...]:
    conn = await asyncpg.connect(dsn)
    try:
        return (
            await conn.fetch("SELECT * FROM schemaheal.heals ORDER BY id"),
            await conn.fetch("SELECT * FROM schemaheal.statements ORDER BY heal_id, ordinal"),
            await conn.fetch("""SELECT table_name, column_name, data_type
                                FROM information_schema.columns WHERE table_schema = 'public'
                                ORDER BY 1, 2"""),
        )
    finally:
        await conn.close()


def test_the_window_type_is_half_open() -> None:  # a guard for the boundary the tests rely on
    assert 0 in Window(0, 1) and 1 not in Window(0, 1)


async def test_the_worker_creates_its_topics_with_a_year_of_time_based_retention(day: Day) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=day.bootstrap)
    await admin.start()
    try:
        topics = ("service.starting", "schema.healed", "service.starting.dlq")
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in topics]
        )
    finally:
        await admin.close()
    for resource in response.resources:
        configs = {entry[0]: entry[1] for entry in resource[4]}
        assert configs["cleanup.policy"] == "delete", resource[3]
        assert configs["retention.ms"] == str(365 * 86_400_000), resource[3]
