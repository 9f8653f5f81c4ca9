"""Benchmark: the boot gate over a real broker (Tansu by default).

1. Round trip of a boot with no drift (``ensure_schema``: connect, position, publish, heal
   finds nothing, reply) against a raw aiokafka ping-pong doing the same client work on the
   same broker (connect, position, publish, an echo consumer replies). Targets: p50 within 2x,
   p99 within 3x.
2. A boot storm: 10 services x 100 replicas on one database, published at once. Targets: 1000
   replies, the DDL once per distinct drift (10), p99 under 2 s, worker memory under 150 MB
   (peak RSS of the worker process).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import report
from contracts import ensure_schema, load_manifest
from contracts.events import REQUEST_TYPE, ServiceStarting, decode_headers, event_headers
from worker.embedded.broker import LocalBroker
from worker.embedded.postgres import LocalPostgres, embedded_binaries

ROOT = Path(__file__).parents[1]
FAST = {"fetch_max_wait_ms": 10}
WORKER_LOG = Path(tempfile.gettempdir()) / "schemaheal-bench-worker.log"


def service_manifest(i: int) -> dict[str, Any]:
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
    return {"service": f"svc{i}", "database": "bench", "schemas": [schema], "tables": tables}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def start_worker(bootstrap: str, dsn: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, outside the measured part
        [sys.executable, "-m", "worker.cli", "worker", "--bootstrap-servers", bootstrap,
         "--database", f"bench={dsn}", "--session-timeout-ms", "6000",
         "--heartbeat-interval-ms", "1000", "--fetch-max-wait-ms", "10", "--topic-partitions", "3"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=WORKER_LOG.open("wb"),
    )  # fmt: skip
    await asyncio.sleep(1)
    return process


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def echo(bootstrap: str, stop: asyncio.Event) -> None:
    """The raw peer of the worker: answer every ping on ``ping`` with a pong on ``pong``."""
    consumer = AIOKafkaConsumer("ping", bootstrap_servers=bootstrap, group_id="echo",
                                auto_offset_reset="earliest", session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, **FAST)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await asyncio.gather(consumer.start(), producer.start())
    while not stop.is_set():
        for records in (await consumer.getmany(timeout_ms=100)).values():
            for r in records:
                await producer.send("pong", r.value, headers=[("correlation_id", r.value)])
    await asyncio.gather(consumer.stop(), producer.stop())


async def ping(bootstrap: str) -> None:
    """One raw round trip with the same client work as ensure_schema."""
    ident = uuid.uuid4().hex.encode()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FAST)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await asyncio.gather(consumer.start(), producer.start())
    tps = [TopicPartition("pong", p) for p in sorted(consumer.partitions_for_topic("pong") or {0})]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    await producer.send_and_wait("ping", ident)
    found = False
    while not found:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            found = found or any(
                decode_headers(r.headers).get("correlation_id") == ident.decode() for r in records
            )
    await asyncio.gather(consumer.stop(), producer.stop())


async def round_trips(bootstrap: str, repeat: int) -> tuple[list[float], list[float]]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("ping", 3, 1), NewTopic("pong", 3, 1)])
    await admin.close()
    stop = asyncio.Event()
    echo_task = asyncio.create_task(echo(bootstrap, stop))
    manifest = load_manifest(service_manifest(0))
    await ensure_schema(
        manifest, bootstrap_servers=bootstrap, timeout_s=60, kafka_options={}
    )  # heals
    await ping(bootstrap)  # warm
    gate, raw = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        reply = await ensure_schema(
            manifest, bootstrap_servers=bootstrap, timeout_s=60, fetch_max_wait_ms=10
        )
        gate.append(time.perf_counter() - started)
        assert reply.outcome == "unchanged"
        started = time.perf_counter()
        await ping(bootstrap)
        raw.append(time.perf_counter() - started)
    stop.set()
    await echo_task
    return gate, raw


async def storm(bootstrap: str, services: int, replicas: int) -> tuple[list[float], int]:
    """Publish services x replicas requests at once; wait for every reply; latencies."""
    manifests = [load_manifest(service_manifest(i)) for i in range(1, services + 1)]
    replies = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **FAST)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
    await asyncio.gather(replies.start(), producer.start())
    tps = [
        TopicPartition("schema.healed", p)
        for p in sorted(replies.partitions_for_topic("schema.healed") or {0})
    ]
    replies.assign(tps)
    await replies.seek_to_end(*tps)
    for tp in tps:
        await replies.position(tp)
    sent: dict[str, float] = {}
    for r in range(replicas):
        for m in manifests:
            request_id = str(uuid.uuid4())
            body = ServiceStarting(service=m.service, instance=f"{m.service}-{r}", database="bench",
                                   manifest=m.model_dump(mode="json", by_alias=True))  # fmt: skip
            headers = event_headers(event_type=REQUEST_TYPE, source="/bench", event_id=request_id,
                                    extra={"correlation_id": request_id})  # fmt: skip
            sent[request_id] = time.perf_counter()
            await producer.send(
                "service.starting", body.model_dump_json().encode(), key=b"bench", headers=headers
            )
    await producer.flush()
    latencies, healed, total = [], 0, len(sent)
    deadline = time.perf_counter() + 120
    while len(latencies) < total and time.perf_counter() < deadline:
        for records in (await replies.getmany(timeout_ms=200)).values():
            for record in records:
                rid = decode_headers(record.headers).get("correlation_id")
                if rid in sent:
                    latencies.append(time.perf_counter() - sent.pop(rid))
                    healed += json.loads(record.value)["outcome"] == "healed"
    await asyncio.gather(replies.stop(), producer.stop())
    return latencies, healed


async def main(repeat: int, services: int, replicas: int) -> None:
    binaries = embedded_binaries()
    assert binaries is not None
    with LocalPostgres(binaries) as pg, LocalBroker() as broker:
        admin = await asyncpg.connect(pg.dsn)
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        dsn = pg.dsn_for("bench")
        worker = await start_worker(broker.bootstrap_servers, dsn)
        try:
            gate, raw = await round_trips(broker.bootstrap_servers, repeat)
            latencies, healed = await storm(broker.bootstrap_servers, services, replicas)
            memory = peak_rss_mb(worker.pid)
        finally:
            worker.terminate()
            worker.wait(30)
        conn = await asyncpg.connect(dsn)
        ddl = await conn.fetchval("SELECT count(DISTINCT heal_id) FROM schemaheal.statements")
        await conn.close()
    g50, g99 = statistics.median(gate) * 1000, percentile(gate, 0.99)
    r50, r99 = statistics.median(raw) * 1000, percentile(raw, 0.99)
    report(
        f"boot gate round trip, no drift ({repeat} boots) vs raw aiokafka ping-pong (Tansu)",
        [("ensure_schema p50", g50), ("ensure_schema p99", g99),
         ("raw ping-pong p50", r50), ("raw ping-pong p99", r99)],
        [("p50 gate / raw", g50 / r50, "(target <= 2)"),
         ("p99 gate / raw", g99 / r99, "(target <= 3)")],
    )  # fmt: skip
    print(f"boot storm: {services} services x {replicas} replicas = {services * replicas} requests")
    print(f"  replies                     {len(latencies):9d}      (target {services * replicas})")
    print(f"  heals that ran DDL          {ddl - 1:9d}      (target {services}: 1 per drift)")
    print(f"  replies saying healed       {healed:9d}      (coalesced requests share the heal)")
    print(f"  latency p50                 {statistics.median(latencies) * 1000:9.1f} ms")
    print(f"  latency p99                 {percentile(latencies, 0.99):9.1f} ms   (target < 2000)")
    print(f"  worker peak memory (RSS)    {memory:9.1f} MB   (target < 150)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args or [50, 10, 100])))
