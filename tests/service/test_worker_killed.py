"""SIGKILL in the middle of a heal: a restarted worker finishes it and the reply arrives.

The heal is held in the middle by a table lock another session keeps (the worker retries its
lock timeouts). The worker process is killed with SIGKILL; its session advisory lock dies with its
connection, and its batch was never committed. The lock is released, a new worker starts, the
request is redelivered, the heal resumes from the catalog as it is, and the client — still
waiting — gets its reply."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import IO

import asyncpg

from contracts import request_schema
from contracts.events import REPLY_TOPIC
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer, topics_made
from worker.commands.replay_command import replay_command
from worker.settings import ReplaySettings

ROOT = Path(__file__).parents[2]
NEXUS = ROOT / "examples" / "nexus"


async def start_worker(
    kafka: KafkaServer, database: FreshDatabase, log: IO[bytes] | None = None
) -> asyncio.subprocess.Process:
    """``schemaheal worker`` as it is deployed; with ``log``, its stderr (the log lines) goes
    there and its spans to stdout (``OTEL_TRACES_EXPORTER=console``), so that they carry ids."""
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console"} if log else None
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "worker",
        "--bootstrap-servers", kafka.bootstrap_servers, "--database", f"nexus={database.dsn}",
        "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000",
        "--fetch-max-wait-ms", "50", "--lock-timeout-ms", "200", "--retry-budget-s", "120",
        "--topic-partitions", "3", "--max-heal-s", "120",
        "--health-port", "0",  # not 8080: anything else on the machine may hold it
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=log or asyncio.subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    try:
        await topics_made(kafka.bootstrap_servers, [REPLY_TOPIC], timeout_s=120,
                          exited=lambda: worker.returncode is not None)  # fmt: skip
    except BaseException:
        worker.kill()
        await worker.wait()
        raise
    return worker


async def wait_for(predicate: object, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_a_killed_worker_is_replaced_and_the_heal_completes(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute((NEXUS / "old_shape.sql").read_text())
    holder = await asyncpg.connect(database.dsn)
    await holder.execute("BEGIN; SELECT * FROM tenants")  # the heal will stop at tenants
    first = await start_worker(kafka, database)
    waiting = asyncio.create_task(request_schema(
        (NEXUS / "manifest.json").read_bytes(), bootstrap_servers=kafka.bootstrap_servers, timeout_s=120
    ))  # fmt: skip

    async def stuck_at_tenants() -> bool:
        done = await database.fetch(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'credentials' AND column_name = 'category'"
        )
        return bool(done)

    try:
        await wait_for(stuck_at_tenants)
    finally:  # killed whether or not it got there: a worker left running outlives the test
        first.send_signal(signal.SIGKILL)
        await first.wait()
    # the ledger tells what the killed worker committed: its intent row, still running, and
    # one statement row per committed statement (issue 14: no row at all)
    killed = await database.fetch("SELECT id, outcome, planned FROM schemaheal.heals")
    assert [r["outcome"] for r in killed] == ["running"]
    heal_id, planned = killed[0]["id"], killed[0]["planned"]
    committed = await _statements(database, heal_id)
    assert any("category" in sql for sql in committed)  # what stuck_at_tenants saw committed
    assert not any("openai_api_key" in sql for sql in committed)
    assert 0 < len(committed) < planned

    async def no_advisory_locks() -> bool:
        return not await database.fetch("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'")

    await wait_for(no_advisory_locks, 10)  # the lock died with the killed worker's session
    await holder.execute("COMMIT")
    await holder.close()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        second = await start_worker(kafka, database, log)
        try:
            reply = await asyncio.wait_for(waiting, 120)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), 30)
    # every line the worker logs is a JSON object; what it logs inside a heal carries its ids
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    applied = [line for line in lines if line["logger"] == "schemaheal.apply"]
    assert len(applied) == len(reply.statements) > 0
    assert all(len(line["trace_id"]) == 32 and len(line["span_id"]) == 16 for line in applied)
    assert reply.outcome == "healed", reply.error
    assert any("openai_api_key" in s.sql for s in reply.statements)  # done by the second worker
    assert not any("business_assets" in s.sql for s in reply.statements)  # done before the kill
    columns = await database.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name IN ('openai_api_key', 'scope', 'category', 'customer_id')"
    )
    assert len(columns) == 4
    invalid = await database.fetch("SELECT 1 FROM pg_index WHERE NOT indisvalid")
    assert invalid == []
    # the second worker closed the killed heal, with what it had applied, and finished it
    rows = await database.fetch("SELECT id, outcome, error_message FROM schemaheal.heals "
                                "ORDER BY id")  # fmt: skip
    assert [(r["id"], r["outcome"]) for r in rows][:1] == [(heal_id, "interrupted")]
    assert [r["outcome"] for r in rows[1:]] == ["healed"]
    assert f"{len(committed)} of {planned} planned statement(s)" in rows[0]["error_message"]
    assert await _statements(database, heal_id) == committed
    assert await database.fetch("SELECT 1 FROM pg_locks WHERE locktype = 'advisory'") == []
    # and `replay` reports the interrupted heal, the boot answered by the heal that finished
    settings = ReplaySettings(bootstrap_servers=kafka.bootstrap_servers,
                              databases={"nexus": database.dsn}, replay_fetch_max_wait_ms=50)  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        code = await replay_command(settings, since="1h", fmt="json", show_progress=False)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    found = [(m["kind"], m["subject"]) for m in lines if m["type"] == "mismatch"]
    assert found == [("heal-interrupted", f"ledger #{heal_id}")], found
    assert code == 2
    boots = [line for line in lines if line["type"] == "boot"]
    assert [(b["outcome"], b["ledger_id"]) for b in boots] == [("healed", rows[1]["id"])]


async def _statements(database: FreshDatabase, heal_id: int) -> list[str]:
    rows = await database.fetch(
        "SELECT sql FROM schemaheal.statements WHERE heal_id = $1 "
        "AND state IN ('applied', 'confirmed') ORDER BY ordinal",
        heal_id,
    )
    return [row["sql"] for row in rows]
