"""Issue 19 on other people's code: real applications' models through expand, backfill and
contract, on every PostgreSQL version under test.

The old version's database is built by the application's own models (create_all) and filled;
the new version's manifest comes from the same models changed as a user would, the intent in
``Column.info["schemaheal"]`` (:mod:`tests.corpus.online`). The new version boots (expand), the
old one keeps booting and writing while the backfill runs beside writers of the new one; then
contract, first without approval to drop the old columns, then with it. Checked: every row
converted, the foreign keys valid and on the widened key, the old manifest ``unchanged`` until
contract and ``version-retired`` after, nothing lost, and the end state the catalog create_all
builds from the changed models.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from tests.corpus import catalog, online_checks, rows
from tests.corpus.harness import Corpus, drop_database, new_database
from tests.corpus.online import CASES, ROWS, Case, Writes, write
from worker.embedded.postgres import LocalPostgres
from worker.engine import lease_store
from worker.engine.backfill import BackfillSettings, Finish, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, ContractSettings, run_contracts
from worker.engine.desired import desired_state
from worker.engine.expand import ColumnMigration
from worker.engine.heal import Outcome, heal
from worker.engine.liveness import Lease, shape_of

pytestmark = pytest.mark.slow
GRACE = ContractSettings(grace_s=0.2, lease_ttl_s=0.2)
BACKFILL = BackfillSettings(batch_rows=500, pause_s=0.01)


def never(m: ColumnMigration, leases: Sequence[Lease]) -> bool:
    return False


def always(m: ColumnMigration, leases: Sequence[Lease]) -> bool:
    return True


#: the cases real models show failing today (none), each with its minimal test
EXPECTED_FAILURES: dict[str, pytest.MarkDecorator] = {}
NAMES = [pytest.param(n, marks=EXPECTED_FAILURES.get(n, ())) for n in CASES]


@pytest.mark.parametrize("name", NAMES)
async def test_real_models_through_expand_backfill_and_contract(
    name: str, corpus: Corpus, pg_server: LocalPostgres
) -> None:
    case = CASES[name]
    app = case.app
    work, reference = await new_database(pg_server), await new_database(pg_server)
    try:
        corpus.create_all(app, pg_server.dsn_for(work))
        corpus.create_all(app, pg_server.dsn_for(reference), list(case.changes))
        await _walk(case, corpus, pg_server.dsn_for(work))
        lines = catalog.differences(
            await catalog.snapshot(pg_server.dsn_for(work)),
            await catalog.snapshot(pg_server.dsn_for(reference)),
        )
        assert not lines, "after contract, differs from the new models' create_all:\n" + (
            "\n".join(lines[:40])
        )
    finally:
        await drop_database(pg_server, work)
        await drop_database(pg_server, reference)


async def _walk(case: Case, corpus: Corpus, dsn: str) -> None:
    old, new = corpus.manifest(case.app), corpus.changed(case.app, list(case.changes))
    filled = await rows.fill(dsn)
    assert not set(filled.skipped) & set(case.tables()), filled.skipped
    setup = await asyncpg.connect(dsn)  # the application's search_path
    try:
        await setup.execute(case.fill.format(n=ROWS))
    finally:
        await setup.close()
    conn = await connect(dsn)
    try:
        before = await online_checks.rows_by_key(conn, case)
        shapes = await online_checks.shapes(conn, case)
        await _boot(conn, old, Outcome.UNCHANGED)
        expanded = await _boot(conn, new, Outcome.HEALED)
        assert len(expanded.migrations) == len(case.changes), expanded.migrations
        await _boot(conn, old, Outcome.UNCHANGED)  # old replicas keep booting
        writes = await _backfill_under_writes(conn, case, dsn, len(case.changes))
        await _boot(conn, old, Outcome.UNCHANGED)
        await _boot(conn, new, Outcome.UNCHANGED)
        await online_checks.assert_converted(conn, case, shapes)
        await _contract(conn, case, old, new)
        after = await online_checks.rows_by_key(conn, case)
        online_checks.assert_nothing_lost(before, after, case, writes)
    finally:
        await conn.close()


async def _boot(conn: asyncpg.Connection, manifest: Any, outcome: Outcome) -> Any:
    result = await heal(conn, manifest)
    assert result.outcome is outcome, (result.error_message, result.drift)
    return result


async def _backfill_under_writes(
    conn: asyncpg.Connection, case: Case, dsn: str, migrations: int
) -> Writes:
    """The backfill and enforce of every migration while two old writers and one new one
    write; the writers start before it and stop only once it finished."""
    writes, stop = Writes(), asyncio.Event()
    writers = [
        asyncio.create_task(write(dsn, case.old_writes, writes, stop, first=1_000_000)),
        asyncio.create_task(write(dsn, case.old_writes, writes, stop, first=2_000_000)),
        asyncio.create_task(write(dsn, case.new_writes, writes, stop, first=3_000_000)),
    ]
    try:
        await asyncio.sleep(0.2)
        started = sum(writes.inserted.values())
        finished = await _cli_backfill(dsn) if case.cli else await run_pending(conn, BACKFILL)
        writes.during_backfill = sum(writes.inserted.values()) - started
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert list(finished.values()) == [Finish.EXPANDED] * migrations, finished
    assert writes.during_backfill > 0
    print(f"{case.app}: {writes.during_backfill} rows written during the backfill")
    return writes


async def _cli_backfill(dsn: str) -> dict[str, Finish]:
    """``schemaheal backfill --dsn …`` in its own process: each migration's finish, exit 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "backfill", "--dsn", dsn, "--format", "json",
        "--batch-rows", str(BACKFILL.batch_rows), "--pause-s", str(BACKFILL.pause_s),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    lines = [json.loads(line) for line in out.decode().splitlines()]
    return {line["migration"]: Finish(line["finish"]) for line in lines}


async def _contract(conn: asyncpg.Connection, case: Case, old: Any, new: Any) -> None:
    """An old replica's lease holds contract; once it stopped and the grace passed, contract
    without approval keeps the old columns, then with approval drops them."""
    await lease_store.ensure_store(conn)
    await conn.execute("UPDATE schemaheal.liveness SET tracked_since = now() - interval '1 day'")
    await lease_store.record_boot(conn, instances=[(case.app, "old-1")], manifest_hash="old",
                                  shape=shape_of(desired_state(old)), ttl_s=3600)  # fmt: skip
    waiting = await run_contracts(conn, always, GRACE)
    assert {f for f, _ in waiting.values()} == {ContractFinish.WAITING}, waiting
    assert await lease_store.stop(conn, service=case.app, instance="old-1")
    await asyncio.sleep(0.3)
    kept = await run_contracts(conn, never, GRACE)
    assert len(kept) == len(case.changes), kept
    for table in case.tables():
        assert await online_checks.sync_triggers(conn, table) == []
    for change in case.renamed():
        assert change["column"] in await online_checks.columns(conn, change["table"])
    for change in case.widened():
        assert f"{change['column']}__sh_old" in await online_checks.columns(conn, change["table"])
    dropped = await run_contracts(conn, always, GRACE)
    assert {f for f, _ in dropped.values()} == {ContractFinish.CONTRACTED}, dropped
    await _boot(conn, new, Outcome.UNCHANGED)
    retired = await _boot(conn, old, Outcome.BLOCKED)
    assert retired.error_code == "version-retired"
