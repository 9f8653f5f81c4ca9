"""Benchmark: the boot gate over a real broker (Tansu by default).

1. Round trip of a boot with no drift (``ensure_schema``: connect, position, publish, heal
   finds nothing, reply) against a raw aiokafka ping-pong doing the same client work with the
   same settings on the same broker (connect, position as the client does, publish with
   acks=all, an echo consumer in a group replies keyed like the request). Targets (issue 17):
   p50 within 1.5x, p99 within 2x. ``--broker apache`` runs it on Apache Kafka. The two
   alternate; the first ``--warmup`` of each are not counted, and ``--repeat`` (300) are, so
   that the p99 is a percentile rather than the slowest one.
2. A boot storm: 10 services x 100 replicas (``--full``: x 1000) on one database server,
   published at once, the services spread over ``--databases`` databases. Targets: one reply per
   request, the DDL once per distinct drift (one per service), p99 under 3 s, worker memory under
   150 MB (peak RSS of the worker process), and the reply records the clients read: each
   client reads only its reply partition (``contracts.client``), from the end offsets it took
   before sending up to its own reply; printed against what it needs (the replies of its own
   database up to its own) and against reading the whole topic (the client before issue 17).
   Counted from one consumer of every partition, by offsets, rather than by 10,000 consumers.
   The storm's requests are encoded before the clock starts (one Python producer encoding
   10,000 bodies took the CPU the worker needs); each request's latency starts when it is sent.
   Printed with it: replies per second, the worker's CPU seconds over the storm (and those of
   the bench and the broker), the load average. ``SCHEMAHEAL_BENCH_PROFILE=path`` runs the
   worker under cProfile, written to ``path`` when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import every_partition, report
from bench.processes import cpu_seconds, descendants_cpu_s, peak_rss_mb, run_seconds
from contracts import ensure_schema, load_manifest
from contracts.client import _position_at_end, reply_partition
from contracts.events import REQUEST_TYPE, ServiceStarting, decode_headers, event_headers
from tests.kafka import start_kafka, topics_made
from worker.embedded.postgres import LocalPostgres, embedded_binaries

ROOT = Path(__file__).parents[1]
FAST = {"fetch_max_wait_ms": 10}  # everyone's longest fetch wait: --fetch-wait-ms
WORKER_LOG = Path(tempfile.gettempdir()) / "schemaheal-bench-worker.log"


def service_manifest(i: int, database: str = "bench") -> dict[str, Any]:
    """A small service of its own schema: three tables, keys, an index."""
    schema = f"svc{i}"
    tables = [
        {"schema": schema, "name": f"t{t}", "columns": [
            {"name": "id", "type": "uuid", "nullable": False, "default": "gen_random_uuid()"},
            {"name": "name", "type": "text", "nullable": False},
            {"name": "created_at", "type": "timestamptz", "nullable": False, "default": "now()"}],
         "primary_key": {"columns": ["id"]}, "indexes": [{"elements": ["name"]}]}
        for t in range(3)
    ]  # fmt: skip
    return {"service": f"svc{i}", "database": database, "schemas": [schema], "tables": tables}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def start_worker(
    bootstrap: str, dsns: dict[str, str], partitions: int = 3
) -> subprocess.Popen[bytes]:
    databases = [arg for alias, dsn in dsns.items() for arg in ("--database", f"{alias}={dsn}")]
    profile = os.environ.get("SCHEMAHEAL_BENCH_PROFILE")  # a path: the worker runs in cProfile
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    if profile and os.environ.get("SCHEMAHEAL_BENCH_PROFILE_CLOCK") == "cpu":
        profiler = ["-m", "bench.profiled", profile]  # CPU time, not wall
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, outside the measured part
        [sys.executable, *profiler, "-m", "worker.cli", "worker", "--bootstrap-servers", bootstrap,
         *databases, "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000",
         "--fetch-max-wait-ms", str(FAST["fetch_max_wait_ms"]),
         "--topic-partitions", str(partitions), "--health-port", "0"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=WORKER_LOG.open("wb"),
    )  # fmt: skip
    await topics_made(
        bootstrap,
        ["service.starting", "schema.healed"],
        exited=lambda: process.poll() is not None,
        see=f": see {WORKER_LOG}",
    )
    return process


async def echo(bootstrap: str, stop: asyncio.Event) -> None:
    """The raw peer of the worker: answer every ping on ``ping`` with a pong on ``pong``, keyed
    like the ping (the worker keys its reply like the request), in a consumer group of its own
    with the worker's fetch wait (the group's coordinator may take a few seconds to exist on a
    fresh Apache Kafka: ``GroupCoordinatorNotAvailable`` until then; the warm-up waits for it)."""
    consumer = AIOKafkaConsumer("ping", bootstrap_servers=bootstrap, group_id="echo",
                                auto_offset_reset="earliest", session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, **FAST)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await asyncio.gather(consumer.start(), producer.start())
    while not stop.is_set():
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for r in records:
                await producer.send(
                    "pong", r.value, key=r.key, headers=[("correlation_id", r.value)]
                )
    await asyncio.gather(consumer.stop(), producer.stop())


async def ping(bootstrap: str) -> None:
    """One raw round trip doing the client work of ensure_schema, with its settings: connect,
    take the end offsets and read only the partition the key hashes to (``contracts.client``'s
    own positioning), publish (acks=all), wait for the pong, stop."""
    ident = uuid.uuid4().hex.encode()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FAST)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await asyncio.gather(consumer.start(), producer.start())
    await _position_at_end(consumer, ident, topic="pong")
    await producer.send_and_wait("ping", ident, key=ident)
    found = False
    while not found:
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            found = found or any(
                decode_headers(r.headers).get("correlation_id") == ident.decode() for r in records
            )
    await asyncio.gather(consumer.stop(), producer.stop())


@dataclass
class Trips:
    gate: list[float] = field(default_factory=list)  # s, each counted boot
    raw: list[float] = field(default_factory=list)  # s, each counted ping-pong
    gate_cpu_s: float = 0.0  # the worker's CPU while the counted boots ran
    raw_cpu_s: float = 0.0  # ... while the counted ping-pongs ran (the worker idle)


async def round_trips(
    bootstrap: str, repeat: int, database: str, warmup: int, worker: int
) -> Trips:
    """``repeat`` boots and raw round trips, alternated, after ``warmup`` of each that are not
    counted (the first connections, the group's first fetches, the JIT of a JVM broker); the
    CPU of the process ``worker`` during each."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("ping", 3, 1), NewTopic("pong", 3, 1)])
    await admin.close()
    await topics_made(bootstrap, ["ping", "pong"])
    stop = asyncio.Event()
    echo_task = asyncio.create_task(echo(bootstrap, stop))
    manifest = load_manifest(service_manifest(0, database))
    await ensure_schema(
        manifest, bootstrap_servers=bootstrap, timeout_s=60, kafka_options={}
    )  # heals
    trips = Trips()
    for i in range(warmup + repeat):
        counted = i >= warmup
        cpu, started = run_seconds(worker), time.perf_counter()
        reply = await ensure_schema(manifest, bootstrap_servers=bootstrap, timeout_s=60, **FAST)
        if counted:
            trips.gate.append(time.perf_counter() - started)
            trips.gate_cpu_s += run_seconds(worker) - cpu
        assert reply.outcome == "unchanged"
        cpu, started = run_seconds(worker), time.perf_counter()
        await ping(bootstrap)
        if counted:
            trips.raw.append(time.perf_counter() - started)
            trips.raw_cpu_s += run_seconds(worker) - cpu
    stop.set()
    await echo_task
    return trips


@dataclass
class Storm:
    latencies: list[float] = field(default_factory=list)
    healed: int = 0
    read: int = 0  # reply records the clients read (their own partition, start to own reply)
    needed: int = 0  # ... of which replies of their own database (what they must read)
    whole_topic: int = 0  # what clients reading every partition would have read
    elapsed_s: float = 0.0  # from the first request sent to the last reply read
    publish_s: float = 0.0  # from the first request sent to the last one acknowledged
    cpu_by_process: dict[str, float] = field(default_factory=dict)  # over the storm
    worker_cpu_s: float = 0.0  # the worker's CPU time over the storm


async def storm(bootstrap: str, services: int, replicas: int, databases: int) -> Storm:
    """Publish services x replicas requests at once; wait for every reply; latencies and the
    reply records each client reads."""
    manifests = [
        load_manifest(service_manifest(i, database_name(i, databases)))
        for i in range(1, services + 1)
    ]
    replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FAST)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await asyncio.gather(replies.start(), producer.start())
    tps = await every_partition(replies, "schema.healed")  # all of them, on Apache Kafka too
    replies.assign(tps)
    starts = await replies.end_offsets(tps)
    for tp in tps:
        replies.seek(tp, starts[tp])
    prepared = []  # every request encoded before the clock starts: the bench measures the worker
    for r in range(replicas):
        for m in manifests:
            request_id = str(uuid.uuid4())
            body = ServiceStarting(service=m.service, instance=f"{m.service}-{r}",
                                   database=m.database,
                                   manifest=m.model_dump(mode="json", by_alias=True))  # fmt: skip
            headers = event_headers(event_type=REQUEST_TYPE, source="/bench", event_id=request_id,
                                    extra={"correlation_id": request_id})  # fmt: skip
            prepared.append((request_id, m.database, body.model_dump_json().encode(), headers))
    sent: dict[str, tuple[float, str]] = {}
    first_sent = time.perf_counter()
    for request_id, database, value, headers in prepared:
        sent[request_id] = (time.perf_counter(), database)  # each request's clock starts here
        await producer.send("service.starting", value, key=database.encode(), headers=headers)
    await producer.flush()
    result, total, arrived = Storm(), len(sent), 0
    result.publish_s = time.perf_counter() - first_sent
    same_key: dict[tuple[int, str], int] = {}  # replies of one database so far, per partition
    deadline = time.perf_counter() + 60 + total / 50
    while len(result.latencies) < total and time.perf_counter() < deadline:
        for tp, records in (await replies.getmany(timeout_ms=200)).items():
            for record in records:
                arrived += 1
                database = (record.key or b"").decode()
                same_key[tp.partition, database] = same_key.get((tp.partition, database), 0) + 1
                rid = decode_headers(record.headers).get("correlation_id")
                if rid not in sent:
                    continue
                started, _ = sent.pop(rid)
                result.latencies.append(time.perf_counter() - started)
                result.healed += json.loads(record.value)["outcome"] == "healed"
                assert tp.partition == reply_partition(database.encode(), len(tps))
                result.read += record.offset - starts[tp] + 1
                result.needed += same_key[tp.partition, database]
                result.whole_topic += arrived
    result.elapsed_s = time.perf_counter() - first_sent
    await asyncio.gather(replies.stop(), producer.stop())
    return result


@contextmanager
def _broker(kind: str) -> Iterator[Any]:
    """A started broker: Tansu (embedded), or Apache Kafka (``tests/apache_kafka.py``)."""
    server = start_kafka(kind)
    try:
        yield server
    finally:
        server.stop()


def database_name(service: int, databases: int) -> str:
    return f"bench{service % databases}" if databases > 1 else "bench"


async def main(args: argparse.Namespace) -> None:
    binaries = embedded_binaries()
    assert binaries is not None
    names = sorted({database_name(i, args.databases) for i in range(args.services + 1)})
    with LocalPostgres(binaries) as pg, _broker(args.broker) as broker:
        admin = await asyncpg.connect(pg.dsn)
        for name in names:
            await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        dsns = {name: pg.dsn_for(name) for name in names}
        worker = await start_worker(broker.bootstrap_servers, dsns, args.partitions)
        try:
            trips = await round_trips(broker.bootstrap_servers, args.repeat,
                                      database_name(0, args.databases),
                                      args.warmup, worker.pid)  # fmt: skip
            result = Storm()
            if not args.no_storm:
                cpu_before = cpu_seconds(worker.pid)
                everyone = descendants_cpu_s(os.getpid())
                result = await storm(
                    broker.bootstrap_servers, args.services, args.replicas, args.databases
                )
                result.worker_cpu_s = cpu_seconds(worker.pid) - cpu_before
                after = descendants_cpu_s(os.getpid())
                result.cpu_by_process = {
                    name: after[name] - everyone.get(name, 0.0) for name in after
                }
            memory = peak_rss_mb(worker.pid)
        finally:
            worker.terminate()
            worker.wait(30)
        ddl = 0
        for dsn in dsns.values():
            conn = await asyncpg.connect(dsn)
            ddl += await conn.fetchval(
                "SELECT count(DISTINCT heal_id) FROM schemaheal.statements WHERE state = 'applied'"
            )
            await conn.close()
    print_results(args, trips, result, ddl - 1, memory)


def print_results(
    args: argparse.Namespace, trips: Trips, result: Storm, ddl: int, memory: float
) -> None:
    gate, raw = trips.gate, trips.raw
    g50, g99 = statistics.median(gate) * 1000, percentile(gate, 0.99)
    r50, r99 = statistics.median(raw) * 1000, percentile(raw, 0.99)
    report(
        f"boot gate round trip, no drift ({args.repeat} boots after {args.warmup} not counted)"
        f" vs raw aiokafka ping-pong ({args.broker}, fetch wait {args.fetch_wait_ms} ms)",
        [("ensure_schema p50", g50), ("ensure_schema p99", g99),
         ("ensure_schema max", max(gate) * 1000),
         ("raw ping-pong p50", r50), ("raw ping-pong p99", r99),
         ("raw ping-pong max", max(raw) * 1000)],
        [("p50 gate / raw", g50 / r50, "(target <= 1.5)"),
         ("p99 gate / raw", g99 / r99, "(target <= 2)")],
    )  # fmt: skip
    print_worker_cpu(trips)
    if args.no_storm:
        return
    requests, latencies = args.services * args.replicas, result.latencies
    print(f"boot storm: {args.services} services x {args.replicas} replicas = {requests} requests"
          f" over {args.databases} database(s), {args.partitions} reply partitions")  # fmt: skip
    print(f"  replies                     {len(latencies):9d}      (target {requests})")
    print(f"  heals that ran DDL          {ddl:9d}      (target {args.services}: 1 per drift)")
    print(f"  replies saying healed       {result.healed:9d}      (coalesced requests share it)")
    print(f"  latency p50                 {statistics.median(latencies) * 1000:9.1f} ms")
    print(f"  latency p99                 {percentile(latencies, 0.99):9.1f} ms   (target < 3000)")
    rate = len(latencies) / max(result.elapsed_s, 1e-9)
    print(f"  requests published in       {result.publish_s:9.2f} s    (one producer)")
    print(f"  replies per second          {rate:9.0f}      (first request sent to last reply)")
    per_request = result.worker_cpu_s / max(1, len(latencies)) * 1000
    print(f"  worker CPU                  {result.worker_cpu_s:9.2f} s    "
          f"({per_request:.3f} ms per request)")  # fmt: skip
    shares = sorted(result.cpu_by_process.items(), key=lambda item: -item[1])
    print("  CPU s over the storm        " + ", ".join(f"{n} {s:.2f}" for n, s in shares[:5]))
    print(f"  load average                {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"  worker peak memory (RSS)    {memory:9.1f} MB   (target < 150)")
    print(f"  reply records read, clients {result.read:9d}      (all clients together)")
    print(f"  ... of which they needed    {result.needed:9d}      "
          f"(ratio {result.read / max(1, result.needed):.2f}, target <= 2)")  # fmt: skip
    print(f"  ... reading the whole topic {result.whole_topic:9d}      (the client before)")


def print_worker_cpu(trips: Trips) -> None:
    """The worker's CPU per boot: while the boots ran, less what it spends idle (its polls,
    measured while the ping-pongs ran) over the same time."""
    per_boot = trips.gate_cpu_s / len(trips.gate) * 1000
    idle = trips.raw_cpu_s / max(1e-9, sum(trips.raw))  # CPU s per s, the worker idle
    own = per_boot - idle * statistics.mean(trips.gate) * 1000
    print(f"  worker CPU per boot         {per_boot:9.2f} ms   (idle polls included)")
    print(f"  worker CPU idle             {idle * 1000:9.1f} ms/s (during the ping-pongs)")
    print(f"  worker CPU per boot, own    {own:9.2f} ms   (less the idle rate)")
    print(f"  load average                {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=300, help="round trips measured")
    parser.add_argument("--warmup", type=int, default=20, help="round trips of each not counted")
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--databases", type=int, default=1, help="services spread over these")
    parser.add_argument("--partitions", type=int, default=3, help="of the worker's topics")
    parser.add_argument("--full", action="store_true", help="issue 17: 10 services x 1000")
    parser.add_argument("--broker", choices=("tansu", "apache"), default="tansu")
    parser.add_argument("--no-storm", action="store_true", help="the round trips only")
    parser.add_argument("--fetch-wait-ms", type=int, default=10,
                        help="longest fetch wait: worker, clients, raw peer")  # fmt: skip
    options = parser.parse_args()
    FAST["fetch_max_wait_ms"] = options.fetch_wait_ms
    if options.full:
        options.services, options.replicas = 10, 1000
    asyncio.run(main(options))
