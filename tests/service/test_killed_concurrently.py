"""SIGKILL around a ``CREATE INDEX CONCURRENTLY``: the ledger still lists what ran (issue 14).

Such a statement cannot share a transaction with its ledger row, so a worker killed after it
committed and before its row was written used to leave an index no ledger row listed (the next
heal found it built and recorded nothing). The faults here are real: the ``schemaheal worker``
process is SIGKILLed; the database has ``client_connection_check_interval`` set, so PostgreSQL
notices the dead client and ends its orphaned session mid-statement (as it ends, sooner or
later, for a worker whose host or network died), instead of letting it finish the ledger write
on its own. What holds the worker at the chosen moment is outside it too: a trigger the test puts
on the ledger's statement table that sleeps when the index's row is marked as run, or a
transaction holding an old snapshot, which a concurrent build must wait out.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import asyncpg

from contracts import request_schema
from contracts.events import SchemaHealed
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.kafka import KafkaServer
from tests.service.test_worker_killed import start_worker, wait_for
from worker.commands.replay_command import replay_command
from worker.engine import ledger
from worker.engine.connection import connect
from worker.settings import ReplaySettings

CIC = "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON public.items USING btree"
WANTED = table(
    "items", column("id", "integer", nullable=False), column("name"), column("extra"),
    primary_key=pk("id"), indexes=[{"name": "items_name_idx", "elements": ["name"]}],
)  # fmt: skip
SLOW_LEDGER = """
CREATE SCHEMA faults;
CREATE FUNCTION faults.slow_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- the index's row marked as run (an old ledger: inserted only then, with no state)
    IF NEW.sql LIKE 'CREATE INDEX CONCURRENTLY%' AND (to_jsonb(NEW) ->> 'state') IS DISTINCT
            FROM 'planned' THEN
        PERFORM pg_sleep(60);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER slow_ledger BEFORE INSERT OR UPDATE ON schemaheal.statements
    FOR EACH ROW EXECUTE FUNCTION faults.slow_ledger();
"""


async def _prepare(database: FreshDatabase) -> None:
    """The table without its new column and index, a ledger, and a server that ends the
    session of a client that died."""
    await database.execute(
        "CREATE TABLE items (id integer PRIMARY KEY, name text);"
        "INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 1000) i;"
        f"ALTER DATABASE {database.name} SET client_connection_check_interval = 100"
    )
    conn = await connect(database.dsn)
    try:
        await ledger.ensure_ledger(conn, database.name)
    finally:
        await conn.close()


async def _kill_when(
    database: FreshDatabase, kafka: KafkaServer, where: str
) -> tuple[asyncio.Task[Any], int]:
    """Start a worker, send the request, SIGKILL the worker once one of its sessions matches
    ``where`` (on pg_stat_activity), and wait until PostgreSQL ended that session."""
    worker = await start_worker(kafka, database)
    request = json.dumps(manifest(WANTED)).encode()
    waiting = asyncio.create_task(
        request_schema(request, bootstrap_servers=kafka.bootstrap_servers, timeout_s=180)
    )
    query = f"SELECT pid FROM pg_stat_activity WHERE datname = '{database.name}' AND {where}"
    pids: list[int] = []

    async def matched() -> bool:
        pids[:] = [r["pid"] for r in await database.fetch(query)]
        return bool(pids)

    try:
        await wait_for(matched, 90)
    finally:  # killed whether or not it got there: a worker left running would hold the topics
        worker.send_signal(signal.SIGKILL)
        await worker.wait()

    async def ended() -> bool:
        return not await database.fetch(
            "SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1::int[]) UNION ALL "
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory'",
            pids,
        )

    await wait_for(ended, 30)
    return waiting, pids[0]


async def _serve_again(
    kafka: KafkaServer, database: FreshDatabase, waiting: Any, log_path: Path
) -> SchemaHealed:
    """A new worker: the request, never acknowledged, is redelivered and answered."""
    with log_path.open("wb") as log:
        worker = await start_worker(kafka, database, log)
        try:
            reply: SchemaHealed = await asyncio.wait_for(waiting, 180)
        except Exception as exc:  # what the worker said, to see why
            raise AssertionError(f"no reply; the worker logged: {_tail(log_path)}") from exc
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(worker.wait(), 30)
    assert code in (0, -signal.SIGTERM), _tail(log_path)
    return reply


def _tail(log_path: Path) -> str:
    return log_path.read_text()[-3000:]


async def _statements(database: FreshDatabase) -> list[tuple[int, str, str]]:
    rows = await database.fetch(
        # a ledger from before the statement states (the old code) lists applied ones only
        "SELECT heal_id, sql, coalesce(to_jsonb(s) ->> 'state', 'applied') AS state "
        "FROM schemaheal.statements s ORDER BY heal_id, ordinal"
    )
    return [(r["heal_id"], r["sql"].split(" (")[0], r["state"]) for r in rows]


async def _heals(database: FreshDatabase) -> list[asyncpg.Record]:
    return await database.fetch(
        "SELECT id, outcome, planned, error_message FROM schemaheal.heals ORDER BY id"
    )


async def _index_valid(database: FreshDatabase) -> bool | None:
    rows = await database.fetch(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('public.items_name_idx')"
    )
    return rows[0]["indisvalid"] if rows else None


async def _replay_mismatches(kafka: KafkaServer, database: FreshDatabase) -> list[dict[str, Any]]:
    settings = ReplaySettings(bootstrap_servers=kafka.bootstrap_servers,
                              databases={"nexus": database.dsn}, replay_fetch_max_wait_ms=50)  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        await replay_command(settings, since="1h", fmt="json", show_progress=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if line["type"] == "mismatch"]


async def test_an_index_built_before_the_worker_died_is_confirmed_in_the_ledger(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    """Killed between the index's commit and its ledger row: the next heal finds the index built
    and valid, and records it as applied (confirmed), exactly once; replay reports it."""
    await _prepare(database)
    await database.execute(SLOW_LEDGER)
    waiting, _ = await _kill_when(
        database, kafka, "wait_event = 'PgSleep' AND application_name LIKE 'schemaheal%'"
    )
    assert await _index_valid(database) is True  # committed before the worker died
    await database.execute("DROP TRIGGER slow_ledger ON schemaheal.statements")
    (dead,) = await _heals(database)
    assert dead["outcome"] == "running"
    reply = await _serve_again(kafka, database, waiting, tmp_path / "worker.log")
    assert reply.outcome == "unchanged", reply.error  # the dead worker had done everything
    heals = await _heals(database)
    assert [(h["id"], h["outcome"]) for h in heals] == [(dead["id"], "interrupted"),
                                                        (heals[1]["id"], "unchanged")]  # fmt: skip
    ran = [s for s in await _statements(database) if s[2] in ("applied", "confirmed")]
    assert ran == [
        (dead["id"], "ALTER TABLE public.items ADD COLUMN IF NOT EXISTS extra text", "applied"),
        (dead["id"], CIC, "confirmed"),
    ]
    message = heals[0]["error_message"]
    assert "2 of 2 planned statement(s) committed (1 confirmed from the catalog" in message
    assert CIC in message
    (mismatch,) = await _replay_mismatches(kafka, database)
    assert (mismatch["kind"], mismatch["subject"]) == ("heal-interrupted", f"ledger #{dead['id']}")
    assert f"1 confirmed from the catalog: {CIC}" in mismatch["detail"]


async def test_an_index_still_building_when_the_worker_died_is_rebuilt_and_recorded(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    """Killed while the build waits out an older snapshot (the index exists, INVALID): the
    next heal records it as not applied, drops and rebuilds it, and lists both statements."""
    await _prepare(database)
    holder = await asyncpg.connect(database.dsn)
    try:
        # an older snapshot, on no table the heal touches: the build's last phase waits for it
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM pg_class")
        waiting, _ = await _kill_when(
            database, kafka, "query LIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'"
        )
        assert await _index_valid(database) is False  # left halfway
        await holder.execute("COMMIT")
    finally:
        await holder.close()
    (dead,) = await _heals(database)
    reply = await _serve_again(kafka, database, waiting, tmp_path / "worker.log")
    assert reply.outcome == "healed", reply.error
    assert await _index_valid(database) is True
    heals = await _heals(database)
    assert [h["outcome"] for h in heals] == ["interrupted", "healed"]
    assert await _statements(database) == [
        (dead["id"], "ALTER TABLE public.items ADD COLUMN IF NOT EXISTS extra text", "applied"),
        (dead["id"], CIC, "not-applied"),
        (heals[1]["id"], "DROP INDEX CONCURRENTLY IF EXISTS public.items_name_idx", "applied"),
        (heals[1]["id"], CIC, "applied"),
    ]
    assert "1 of 2 planned statement(s) committed, listed in" in heals[0]["error_message"]
    assert [s.sql.split(" (")[0] for s in reply.statements] == [
        "DROP INDEX CONCURRENTLY IF EXISTS public.items_name_idx",
        CIC,
    ]
