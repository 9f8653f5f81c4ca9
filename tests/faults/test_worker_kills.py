"""Workers SIGKILLed mid-stream, on Apache Kafka and PostgreSQL (issue 14, item 4).

- one worker SIGKILLed 5 times at random moments during 200 requests over 5 databases (40 each,
  walking through 5 manifest versions), each restart immediate;
- 3 workers in one group, the busiest (by CPU time) SIGKILLed mid-stream: a rebalance.

Each ends with the accounting of :mod:`tests.faults.cluster`: every request answered, duplicates
with the same outcome, one finished heal per request, every committed statement in the ledger
exactly once, nothing left running, no advisory lock left, worker memory printed and bounded."""

from __future__ import annotations

import asyncio
import random
import time

from tests.faults.cluster import (
    Request,
    Stream,
    Worker,
    answered_once,
    check_database,
    produce,
    reference_sql,
    replies,
    start_worker,
    versions,
)
from worker.embedded.postgres import LocalPostgres

PER_DATABASE = 40
MAX_RSS_MB = 400.0


def stream_of(stream: Stream) -> list[Request]:
    """40 requests per database, interleaved, moving through the manifest versions."""
    manifests = versions()
    return [
        Request(request_id=f"{alias}-{i}", database=alias, manifest=manifests[version(i)])
        for i in range(PER_DATABASE)
        for alias in sorted(stream.databases)
    ]


def version(i: int) -> int:
    return i * len(versions()) // PER_DATABASE


async def account(stream: Stream, postgres: LocalPostgres, requests: list[Request],
                  workers: list[Worker], label: str) -> None:  # fmt: skip
    want = {r.request_id for r in requests}
    found = await replies(stream, want, timeout_s=240)
    rss = [round(w.rss_mb()) for w in workers if w.process.returncode is None]
    answered, duplicates = answered_once(want, found)
    expected = await reference_sql(postgres, stream, versions())
    interrupted = statements = 0
    for alias, dsn in sorted(stream.databases.items()):
        mine = {r.request_id for r in requests if r.database == alias}
        ledger = await check_database(dsn, mine, expected)
        interrupted += ledger.interrupted
        statements += ledger.statements
    print(f"\n{label}: {answered}/{len(want)} answered, {duplicates} duplicate replies (same "
          f"outcome), 0 lost; {statements} statements in the ledgers ({len(expected)} per "
          f"database, each once), {interrupted} interrupted heal(s) closed; worker RSS {rss} MB")  # fmt: skip
    assert all(r < MAX_RSS_MB for r in rss)


async def test_a_worker_killed_5_times_during_200_requests_loses_nothing(
    stream: Stream, postgres: LocalPostgres
) -> None:
    requests = stream_of(stream)
    rng = random.Random(14)
    worker = await start_worker(stream)
    started = time.monotonic()
    sending = asyncio.create_task(produce(stream, requests, pause_s=0.1))  # about 25 s
    for moment in sorted(rng.uniform(1, 24) for _ in range(5)):
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        await worker.kill()
        worker = await start_worker(stream)  # at once
    await sending
    try:
        await account(stream, postgres, requests, [worker], "5 SIGKILLs during 200 requests")
    finally:
        await worker.stop()


async def test_the_busiest_of_3_workers_killed_mid_stream(
    stream: Stream, postgres: LocalPostgres
) -> None:
    requests = stream_of(stream)
    workers = list(await asyncio.gather(*(start_worker(stream) for _ in range(3))))
    before = {w: w.cpu_s() for w in workers}  # after start-up: what serving costs is the rest
    sending = asyncio.create_task(produce(stream, requests, pause_s=0.05))  # about 12 s
    await asyncio.sleep(6)
    serving = {w: w.cpu_s() - before[w] for w in workers}
    busiest = max(workers, key=serving.__getitem__)
    print(f"\nCPU seconds serving, per worker: {[round(s, 2) for s in serving.values()]}")
    await busiest.kill()
    await sending
    alive = [w for w in workers if w is not busiest]
    try:
        await account(stream, postgres, requests, alive, "3 workers, the busiest SIGKILLed")
    finally:
        await asyncio.gather(*(w.stop() for w in alive))
