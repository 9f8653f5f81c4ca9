"""The write load of ``bench.backfill``, in its own process (so the runner's event loop and the
writers' never delay each other): ``python -m bench.backfill_load DSN RATE CONNECTIONS ROWS``.

Each connection writes at ``RATE / CONNECTIONS`` operations per second on a fixed schedule (an
open-loop load: a slow answer does not lower the offered rate), in autocommit: updates of random
existing rows and inserts, as an old replica writes them (it does not know the new column), to
``TABLE`` (default ``bench.users``) under ``SEARCH_PATH`` (pgroll's old version: its version
schema's view). A write that fails is counted, never retried. It stops when its stdin closes
and prints one JSON line: ``{"samples": [[start_epoch_s, latency_ms], …], "errors": {error:
count}}``.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import asyncpg


async def writer(
    dsn: str, interval_s: float, rows: int, out: list[list[float]], errors: dict[str, int]
) -> None:
    settings = {"application_name": "bench-writer"}  # bench.backfill_waits tells them apart
    if SEARCH_PATH:
        settings["search_path"] = SEARCH_PATH
    conn = await asyncpg.connect(dsn, server_settings=settings)
    update = f"UPDATE {TABLE} SET name = $2 WHERE id = $1"
    insert = f"INSERT INTO {TABLE} (name) VALUES ($1)"
    next_at = time.monotonic() + random.uniform(0, interval_s)
    try:
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval_s
            started, wall = time.perf_counter(), time.time()
            try:  # asyncpg's statement cache prepares them (again after a migration)
                if random.random() < 0.8:
                    await conn.execute(update, random.randint(1, rows), f"w{random.random():.6f}")
                else:
                    await conn.execute(insert, "inserted")
            except asyncpg.PostgresError as exc:
                name = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"  # not the row
                errors[name] = errors.get(name, 0) + 1
                continue
            out.append([wall, (time.perf_counter() - started) * 1000])
    finally:
        await conn.close()


async def main(dsn: str, rate: float, connections: int, rows: int) -> None:
    samples: list[list[float]] = []
    errors: dict[str, int] = {}
    tasks = [
        asyncio.create_task(writer(dsn, connections / rate, rows, samples, errors))
        for _ in range(connections)
    ]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"samples": samples, "errors": errors}))


TABLE = sys.argv[5] if len(sys.argv) > 5 else "bench.users"
SEARCH_PATH = sys.argv[6] if len(sys.argv) > 6 else ""

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
