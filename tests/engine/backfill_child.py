"""A runner in its own process, for the kill tests: ``python -m tests.engine.backfill_child DSN
BATCH_ROWS PAUSE_S`` runs the database's pending migrations once, in batches of BATCH_ROWS."""

from __future__ import annotations

import asyncio
import sys

from worker.engine.backfill import BackfillSettings, run_pending
from worker.engine.connection import connect


async def main(dsn: str, batch_rows: int, pause_s: float) -> None:
    conn = await connect(dsn, application_name="schemaheal-backfill-child")
    try:
        fixed = BackfillSettings(batch_rows=batch_rows, batch_target_ms=0, pause_s=pause_s)
        print(await run_pending(conn, fixed))
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
