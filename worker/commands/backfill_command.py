"""``schemaheal backfill``: run a database's pending online migrations once, without a worker.

For databases healed by ``schemaheal heal`` alone, for operators who turned the worker's runner
off, and to let a stopped migration go on (``--retry ID`` clears its error first). The same
runner as the worker's, under the same per-table lock: running it beside workers is safe.

``--abandon ID`` instead abandons one migration (:mod:`worker.engine.abandon`): without
``--apply`` it only checks and shows what it would drop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from worker.engine import backfill_store as store
from worker.engine.abandon import Abandonment, abandon
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import DATABASE_ERRORS, connect, translate
from worker.engine.pooler import ProxyMode, require_direct

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


async def backfill_command(
    dsn: str,
    settings: BackfillSettings,
    *,
    retry: list[str],
    fmt: str,
    proxy: ProxyMode = "refuse",
) -> int:
    """Exit 0 when every pending migration is expanded, 2 when some wait (another runner holds
    the table, or locks kept timing out), 1 when one stopped (its error says what to do)."""
    try:
        conn = await connect(dsn, application_name="schemaheal backfill")
    except DATABASE_ERRORS as exc:
        raise translate(exc, "connecting to the database") from exc
    try:
        await require_direct(conn, "(--dsn)", proxy)  # the per-table lock is a session lock
        for migration_id in retry:
            await store.retry(conn, migration_id, settings.store_schema)
        finished = await run_pending(conn, settings)
        records = {i: await store.progress(conn, i, settings.store_schema) for i in finished}
    except DATABASE_ERRORS as exc:
        raise translate(exc, "running the backfills") from exc
    finally:
        await conn.close()
    for migration_id, finish in finished.items():
        record = records[migration_id]
        line = {
            "migration": migration_id,
            "finish": finish.value,
            "rows": record.rows_scanned if record else None,
            "batches": record.batches if record else None,
            "error": record.error if record else None,
        }
        print(json.dumps(line) if fmt == "json" else _text(line))
    if any(f is Finish.STOPPED for f in finished.values()):
        return EXIT_ERROR
    done = (Finish.EXPANDED, Finish.ABANDONED)
    return EXIT_PENDING if any(f not in done for f in finished.values()) else EXIT_OK


async def abandon_command(
    dsn: str,
    migration_id: str,
    *,
    apply: bool,
    ignore_leases: bool,
    store_schema: str,
    fmt: str,
    proxy: ProxyMode = "refuse",
) -> int:
    """Exit 0 when the migration can be abandoned (without ``apply``) or was; a refusal raises
    :class:`~worker.errors.AbandonRefused`, which says why and what to do."""
    try:
        conn = await connect(dsn, application_name="schemaheal backfill --abandon")
    except DATABASE_ERRORS as exc:
        raise translate(exc, "connecting to the database") from exc
    try:
        await require_direct(conn, "(--dsn)", proxy)  # the locks are session locks
        found = await abandon(conn, migration_id, apply=apply, ignore_leases=ignore_leases,
                              schema=store_schema)  # fmt: skip
    except DATABASE_ERRORS as exc:
        raise translate(exc, f"abandoning migration {migration_id}") from exc
    finally:
        await conn.close()
    print(json.dumps(_abandon_json(found)) if fmt == "json" else _abandon_text(found))
    return EXIT_OK


def _abandon_json(found: Abandonment) -> dict[str, object]:
    return {
        "migration": found.migration.id,
        "state": found.state,
        "applied": found.applied,
        "statements": list(found.statements),
        "warnings": list(found.warnings),
    }


def _abandon_text(found: Abandonment) -> str:
    m = found.migration
    head = "abandoned" if found.applied else "would abandon (dry run; add --apply to do it)"
    lines = [f"{head}: {m.id} ({m.kind.value} of {m.schema}.{m.table}, was {found.state})"]
    lines += [f"  {sql};" for sql in found.statements]
    lines += [f"  warning: {w}" for w in found.warnings]
    if found.applied:
        lines.append("  a heal of a manifest that declares this migration starts it afresh")
    return "\n".join(lines)


def _text(line: Mapping[str, object]) -> str:
    text = f"{line['migration']}: {line['finish']} ({line['rows']} rows, {line['batches']} batches)"
    return text + (f"\n  {line['error']}" if line["error"] else "")
