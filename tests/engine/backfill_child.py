"""A runner in its own process, for the kill tests: ``python -m tests.engine.backfill_child DSN
BATCH_ROWS PAUSE_S`` runs the database's pending migrations once."""

from __future__ import annotations

import asyncio
import sys

from worker.engine.backfill import BackfillSettings, run_pending
from worker.engine.connection import connect


async def main(dsn: str, batch_rows: int, pause_s: float) -> None:
    conn = await connect(dsn, application_name="schemaheal-backfill-child")
    try:
        print(await run_pending(conn, BackfillSettings(batch_rows=batch_rows, pause_s=pause_s)))
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
