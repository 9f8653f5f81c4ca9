"""The broker stopped for 15 s and then for 60 s, each time with a heal in flight, on Apache
Kafka with its own log directory (so the same broker, with its topics, records and committed
offsets, comes back): ``/readyz`` is false during the outage, the worker recovers without a
restart, the heal that finished during the outage is answered, and nothing is lost (issue 14)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.apache_kafka import ApacheKafka
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


async def watch_readiness(worker: Worker, seen: list[tuple[float, int | None]]) -> None:
    """``(when the answer came, /readyz status)``: a probe asked before the restart may be
    answered after it (the readiness check waits up to 3 s for the broker), so it is timed by
    its answer."""
    while True:
        status = await asyncio.to_thread(worker.status, "/readyz")
        seen.append((time.monotonic(), status))
        await asyncio.sleep(0.5)


async def heal_through_an_outage(
    stream: Stream, apache: ApacheKafka, worker: Worker, outage_s: float, version: int
) -> tuple[dict[str, list[str]], list[int | None]]:
    """A heal held mid-apply by a reader of ``items``; the broker stopped; the reader lets go
    during the outage, so the heal finishes while the broker is down."""
    dsn = stream.databases["db0"]
    reader = await asyncpg.connect(dsn)
    await reader.execute("BEGIN; SELECT count(*) FROM items")  # ACCESS SHARE until COMMIT
    request = Request(request_id=f"outage-{outage_s:.0f}", database="db0",
                      manifest=versions()[version])  # fmt: skip
    await produce(stream, [request])
    for _ in range(300):  # the worker holds its schema lock: mid-heal
        if await reader.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"):
            break
        await asyncio.sleep(0.1)
    seen: list[tuple[float, int | None]] = []
    watching = asyncio.create_task(watch_readiness(worker, seen))
    stopped = time.monotonic()
    apache.stop()  # its log directory is kept
    held_s = min(outage_s / 2, 10.0)  # within the index build's statement timeout
    await asyncio.sleep(held_s)
    await reader.execute("COMMIT")  # the heal goes on and finishes during the outage
    await reader.close()
    await asyncio.sleep(outage_s - held_s)
    restarted = time.monotonic()
    apache.start()
    found = await replies(stream, {request.request_id}, timeout_s=120)
    answered = time.monotonic()
    for _ in range(120):  # ready again, without a restart
        if seen[-1][1] == 200 and seen[-1][0] > answered:
            break
        await asyncio.sleep(0.5)
    watching.cancel()
    during = [status for at, status in seen if stopped + 8 < at < restarted]
    print(f"\nbroker down {outage_s:.0f} s with a heal in flight: replies {found}, answered "
          f"{answered - restarted:.1f} s after the restart; /readyz during: "
          f"{sorted(set(during), key=str)}, after: {seen[-1][1]}; worker RSS "
          f"{worker.rss_mb():.0f} MB")  # fmt: skip
    if set(found.get(request.request_id, [])) != {"healed"}:
        for line in await asyncio.to_thread(_ledger_dump, dsn):
            print(line)
    assert during and set(during) == {503}, during
    return found, [status for at, status in seen if at > answered]


async def test_broker_outages_of_15_and_60_s_with_a_heal_in_flight(
    stream: Stream, apache: ApacheKafka, postgres: LocalPostgres
) -> None:
    worker = await start_worker(stream)
    try:
        first = Request(request_id="before", database="db0", manifest=versions()[0])
        await produce(stream, [first])
        assert (await replies(stream, {"before"}, 60))["before"] == ["healed"]
        found: dict[str, list[str]] = {"before": ["healed"]}
        for outage_s, version in ((15.0, 2), (60.0, 4)):
            answers, after = await heal_through_an_outage(stream, apache, worker, outage_s, version)
            assert set(answers.get(f"outage-{outage_s:.0f}", [])) == {"healed"}, answers
            assert after and after[-1] == 200
            found.update(answers)
        assert worker.process.returncode is None  # recovered without a restart
        want = {"before", "outage-15", "outage-60"}
        answered_once(want, {r: found[r] for r in want})
        expected = await reference_sql(postgres, stream, [versions()[v] for v in (0, 2, 4)])
        await check_database(stream.databases["db0"], want, expected)
    finally:
        await worker.stop()


def _ledger_dump(dsn: str) -> list[str]:
    async def read() -> list[str]:
        conn = await asyncpg.connect(dsn)
        try:
            heals = await conn.fetch("SELECT id, request_id, outcome, error_message FROM "
                                     "schemaheal.heals ORDER BY id")  # fmt: skip
            statements = await conn.fetch("SELECT heal_id, ordinal, sql FROM schemaheal.statements")
            indexes = await conn.fetch("SELECT indexrelid::regclass::text AS name, indisvalid "
                                       "FROM pg_index WHERE indrelid = 'items'::regclass")  # fmt: skip
        finally:
            await conn.close()
        return [str(dict(r)) for r in [*heals, *statements, *indexes]]

    return asyncio.run(read())
