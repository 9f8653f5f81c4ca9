"""What a no-drift boot costs the database through the gate: counted, not timed (the time is
``bench.boot_gate``'s). Before the boot check it took 14 queries, then 3 (the batch's ledger
lookup, the boot check, the answer's ledger row); now one: the boot check looks the batch up and
writes the answer's ledger row itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.service.records import request_body, request_record
from worker.service.boots import Checked
from worker.service.gate import Gate
from worker.settings import WorkerSettings

pytestmark = pytest.mark.postgres


async def test_a_no_drift_boot_is_one_query_and_a_changed_schema_is_still_healed(
    database: FreshDatabase,
) -> None:
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    try:
        assert await gate.handle([request_record(request_body(), request_id="heals")])
        assert await gate.handle([request_record(request_body(), request_id="verifies")])
        queries: list[str] = []
        gate._connections["nexus"].add_query_logger(lambda q: queries.append(q.query))
        assert await gate.handle([request_record(request_body(), request_id="no-drift")])
        assert sink.replies[-1].outcome == "unchanged"
        assert len(queries) == 1, "\n".join(queries)
        # behind the worker's back, between two boots: noticed, healed back
        await database.execute("ALTER TABLE tenants DROP COLUMN openai_api_key")
        assert await gate.handle([request_record(request_body(), request_id="after-ddl")])
        assert sink.replies[-1].outcome == "healed"
        columns = await database.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'"
        )
        assert {c["column_name"] for c in columns} == {"id", "openai_api_key"}
        leases = await database.fetch("SELECT instance FROM schemaheal.leases")
        assert [r["instance"] for r in leases] == ["pod-a"]
    finally:
        await gate.close()


async def test_a_batch_with_a_request_served_before_answers_it_from_the_ledger(
    database: FreshDatabase,
) -> None:
    """The first boot check of a batch looks its ids up; one served before makes it step aside
    (writing nothing), and the batch takes the ledger path: that one answered from the ledger,
    the new one by the boot check."""
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    try:
        assert await gate.handle([request_record(request_body(), request_id="heals")])
        assert await gate.handle([request_record(request_body(), request_id="verifies")])
        fresh = request_record(request_body(instance="pod-b"), request_id="fresh")
        redelivered = request_record(request_body(), request_id="heals")
        assert await gate.handle([fresh, redelivered])
        answers = {r.request_id: (r.outcome, r.from_ledger) for r in sink.replies[2:]}
        assert answers == {"fresh": ("unchanged", False), "heals": ("healed", True)}
        rows = await database.fetch("SELECT request_id FROM schemaheal.heals ORDER BY id")
        assert [r["request_id"] for r in rows] == ["heals", "verifies", "fresh"]
        leases = await database.fetch("SELECT instance FROM schemaheal.leases ORDER BY 1")
        assert [r["instance"] for r in leases] == ["pod-a", "pod-b"]
    finally:
        await gate.close()


async def test_a_batch_whose_first_boot_check_failed_comes_back_whole(
    database: FreshDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's ledger lookup is in its first boot check: when that fails (the database), no
    other group is served without it (a replayed signed request would not be recognised)."""
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    lookups: list[tuple[str, ...]] = []

    async def failing(*args: Any) -> Checked:
        lookups.append(args[-1])
        return Checked(leased=False)

    try:
        monkeypatch.setattr(gate.boots, "check", failing)
        changed = request_body()
        changed["manifest"]["tables"][0]["columns"].append({"name": "plan", "type": "text"})
        batch = [request_record(request_body(), request_id="a"),
                 request_record(changed, request_id="b")]  # fmt: skip
        assert not await gate.handle(batch)
        assert lookups == [("a", "b")] and sink.replies == []
    finally:
        await gate.close()
