"""The fault suite's cluster: Apache Kafka with a log directory of its own (so it can be stopped
and started again with its data), one PostgreSQL server, ``schemaheal worker`` processes as they
are deployed, the requests, and the accounting every fault test ends with."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.events import REQUEST_TYPE, event_headers
from tests.contracts.builders import column, fk, manifest, pk, table
from worker.embedded.postgres import LocalPostgres, free_port

ROOT = Path(__file__).parents[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class Stream:
    """One test's broker, topics and consumer group (the broker is shared by the module's
    tests; each test has topics and a group of its own), and its databases."""

    bootstrap: str
    name: str
    databases: dict[str, str]  # alias → DSN
    databases_file: Path

    @property
    def requests(self) -> str:
        return f"{self.name}.starting"

    @property
    def replies(self) -> str:
        return f"{self.name}.healed"

    def worker_args(self) -> list[str]:
        return ["--bootstrap-servers", self.bootstrap, "--databases-file",
                str(self.databases_file), "--request-topic", self.requests, "--reply-topic",
                self.replies, "--dead-letter-topic", f"{self.name}.dead", "--group-id",
                self.name]  # fmt: skip


def versions() -> list[dict[str, Any]]:
    """Five manifests, each adding to the one before: columns (one NOT NULL with a default),
    an index (built CONCURRENTLY, outside a transaction) and a table with a foreign key."""
    items = [column("id", "integer", nullable=False), column("name")]
    out = []
    for extra in (
        [],
        [column("c1")],
        [column("c2", "integer", nullable=False, default="0")],
        [],
        [],
    ):
        items = [*items, *extra]
        out.append(items)
    index = {"name": "items_c1_idx", "elements": [{"column": "c1"}]}
    notes = table("notes", column("id", "integer", nullable=False),
                  column("item_id", "integer"), primary_key=pk("id"),
                  foreign_keys=[fk(["item_id"], "items", ["id"])])  # fmt: skip
    return [
        manifest(
            table("items", *cols, primary_key=pk("id"), indexes=[index] if v >= 3 else []),
            *([notes] if v >= 4 else []),
        )
        for v, cols in enumerate(out)
    ]


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    database: str
    manifest: dict[str, Any]

    def record(self) -> tuple[bytes, bytes, list[tuple[str, bytes | None]]]:
        body = {"service": self.manifest["service"], "instance": self.request_id,
                "database": self.database, "manifest": {**self.manifest, "database": self.database}}  # fmt: skip
        headers = event_headers(event_type=REQUEST_TYPE, source=f"/s/{self.request_id}",
                                subject=self.database, event_id=self.request_id)  # fmt: skip
        return self.database.encode(), json.dumps(body).encode(), list(headers)


async def produce(stream: Stream, requests: Iterable[Request], pause_s: float = 0.0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stream.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for request in requests:
            key, value, headers = request.record()
            await producer.send_and_wait(stream.requests, value, key=key, headers=headers)
            await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


async def replies(stream: Stream, want: set[str], timeout_s: float) -> dict[str, list[str]]:
    """request id → every outcome it was answered with, once each of ``want`` has one (or the
    time is up), and two more seconds for late duplicates."""
    consumer = AIOKafkaConsumer(stream.replies, bootstrap_servers=stream.bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)  # fmt: skip
    await consumer.start()
    found: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for record in (r for rs in batch.values() for r in rs):
                reply = json.loads(record.value)
                error = reply.get("error") or {}
                said = " ".join(
                    [
                        reply["outcome"],
                        *([error.get("code", ""), error.get("message", "")[:200]] if error else []),
                    ]
                )
                found.setdefault(reply["request_id"], []).append(said)
            if want <= found.keys():
                deadline = min(deadline, loop.time() + 2)
    finally:
        await consumer.stop()
    return found


def answered_once(want: set[str], found: Mapping[str, list[str]]) -> tuple[int, int]:
    """Every request answered, its duplicates (if any) with the same satisfied outcome; returns
    (requests answered, duplicate replies)."""
    lost = sorted(want - found.keys())
    assert not lost, f"{len(lost)} request(s) never answered: {lost[:10]}"
    for request_id in want:
        outcomes = set(found[request_id])
        assert len(outcomes) == 1 and outcomes <= {"healed", "unchanged"}, (request_id, outcomes)
    return len(want), sum(len(found[r]) - 1 for r in want)


class Worker:
    """One ``schemaheal worker`` process, its health server on a loopback port."""

    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process, self.port = process, port

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, path: str) -> int | None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 60)


async def start_worker(stream: Stream, *extra: str) -> Worker:
    """A worker whose log lines go to ``worker-<port>.log`` beside the databases file."""
    port = free_port()
    log = stream.databases_file.parent / f"worker-{port}.log"
    with log.open("ab") as out:  # the child keeps its own handle
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "worker", *stream.worker_args(),
            "--session-timeout-ms", "6000",
            "--heartbeat-interval-ms", "1000", "--fetch-max-wait-ms", "50",
            "--topic-partitions", "3", "--lock-timeout-ms", "300", "--retry-budget-s", "120",
            "--max-heal-s", "150", "--health-host", "127.0.0.1", "--health-port", str(port), *extra,
            cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    worker = Worker(process, port)
    for _ in range(1200):
        assert process.returncode is None, f"the worker exited with {process.returncode}"
        if await asyncio.to_thread(worker.status, "/livez") == 200:
            return worker
        await asyncio.sleep(0.1)
    raise AssertionError("the worker's health server did not start within two minutes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """What one database's ledger and locks say at the end of a fault test."""

    finished: int
    interrupted: int
    statements: int


async def check_database(
    dsn: str, want: set[str], expected_sql: Iterable[str], ledger_schema: str = "schemaheal"
) -> Ledger:
    """Each request of ``want`` has one finished heal; nothing is left running, no statement left
    ``planned``; every statement of ``expected_sql`` is in the ledger as run exactly once (DDL
    once per change, none unrecorded); no advisory lock is left."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f"SELECT request_id, outcome FROM {ledger_schema}.heals ORDER BY id"
        )
        states = await conn.fetch(f"SELECT sql, state FROM {ledger_schema}.statements")
        locks = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    finally:
        await conn.close()
    wrong = not_one_finished(rows, want)
    assert not wrong, f"requests without exactly one finished heal (their rows): {wrong}"
    assert [r["outcome"] for r in rows if r["outcome"] == "running"] == []
    # every statement settled: ran (applied, or confirmed from the catalog) or did not
    unsettled = [
        r["sql"] for r in states if r["state"] not in ("applied", "confirmed", "not-applied")
    ]
    assert unsettled == [], "statements left planned or unconfirmed"
    sql = [r["sql"] for r in states if r["state"] in ("applied", "confirmed")]
    counts = Counter(sql)
    assert [s for s, n in counts.items() if n > 1] == [], "DDL ran more than once"
    assert sorted(counts) == sorted(expected_sql), "the ledger misses a committed statement"
    assert locks == 0, f"{locks} advisory lock(s) left"
    interrupted = sum(1 for r in rows if r["outcome"] == "interrupted")
    finished = sum(1 for r in rows if r["outcome"] not in UNFINISHED)
    return Ledger(finished=finished, interrupted=interrupted, statements=len(sql))


UNFINISHED = ("running", "interrupted")


def not_one_finished(rows: Iterable[Mapping[str, Any]], want: set[str]) -> dict[str, list[str]]:
    """The requests of ``want`` without exactly one finished ledger row (``rows``: the ledger's
    ``request_id`` and ``outcome``), each with the outcomes of all its rows, in order."""
    outcomes: dict[str, list[str]] = {}
    for row in rows:
        outcomes.setdefault(row["request_id"], []).append(row["outcome"])
    return {
        r: outcomes.get(r, [])
        for r in sorted(want)
        if sum(o not in UNFINISHED for o in outcomes.get(r, [])) != 1
    }


async def reference_sql(
    postgres: LocalPostgres, stream: Stream, manifests: list[dict[str, Any]]
) -> list[str]:
    """The statements healing an empty database through ``manifests`` in order runs (in
    process, on a scratch database): what each fault test's ledger must hold, once each."""
    from contracts import load_manifest
    from worker.engine.connection import connect
    from worker.engine.heal import HealOptions, heal

    scratch = f"{stream.name}_ref{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(postgres.dsn)
    await admin.execute(f"CREATE DATABASE {scratch}")
    await admin.close()
    conn = await connect(postgres.dsn_for(scratch))
    try:
        applied: list[str] = []
        for want in manifests:
            result = await heal(conn, load_manifest(json.dumps(want)),
                                options=HealOptions(record=False))  # fmt: skip
            assert result.satisfied, result.error_message
            applied += [a.sql for a in result.applied]
        return applied
    finally:
        await conn.close()
