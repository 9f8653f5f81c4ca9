"""What a no-drift boot costs the database through the gate: counted, not timed (the time is
``bench.boot_gate``'s). Before the boot check it took 14 queries, then 3 (the batch's ledger
lookup, the boot check, the answer's ledger row); now one: the boot check looks the batch up and
writes the answer's ledger row itself."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.faults.sink import RecordingSink
from tests.service.records import Record, request_body, request_record
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


def service_boot(service: str, replica: int, batch: str) -> Record:
    """A replica of ``service``, owning the schema of its name in the database nexus."""
    items = table("items", column("id", "integer", nullable=False), column("name"),
                  primary_key=pk("id"), schema=service)  # fmt: skip
    body = request_body(service=service, instance=f"{service}-{replica}",
                        manifest=manifest(items, service=service, schemas=[service]))  # fmt: skip
    return request_record(body, request_id=f"{batch}-{service}-{replica}")


async def test_a_batch_of_several_services_is_one_query_and_each_one_s_ddl_is_noticed(
    database: FreshDatabase,
) -> None:
    """The boot check of a batch's groups (one per service here) is one round trip for them all,
    the ledger rows of every request included; DDL behind one service's back makes only that one
    step aside (then healed), the others are answered by the check."""
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    services = ("svc_a", "svc_b", "svc_c")
    try:
        for batch in ("heals", "verifies"):
            assert await gate.handle([service_boot(s, 0, batch) for s in services])
        queries: list[str] = []
        gate._connections["nexus"].add_query_logger(lambda q: queries.append(q.query))
        storm = [service_boot(s, r, "storm") for r in range(3) for s in services]
        assert await gate.handle(storm)
        assert len(queries) == 1, "\n".join(queries)
        assert [r.outcome for r in sink.replies[-9:]] == ["unchanged"] * 9
        rows = await database.fetch(
            "SELECT h.request_id, h.outcome, l.request_id AS leader FROM schemaheal.heals h"
            " LEFT JOIN schemaheal.heals l ON l.id = h.served_by"
            " WHERE h.request_id LIKE 'storm-%' ORDER BY h.id"
        )
        assert {r["request_id"]: (r["outcome"], r["leader"]) for r in rows} == {
            f"storm-{s}-{i}": ("unchanged", None if i == 0 else f"storm-{s}-0")
            for s in services for i in range(3)
        }  # fmt: skip
        leases = await database.fetch("SELECT instance FROM schemaheal.leases")
        assert len(leases) == 9
        await database.execute("ALTER TABLE svc_b.items DROP COLUMN name")
        assert await gate.handle([service_boot(s, 0, "after") for s in services])
        outcomes = {r.request_id: r.outcome for r in sink.replies[-3:]}
        assert outcomes == {"after-svc_a-0": "unchanged", "after-svc_b-0": "healed",
                            "after-svc_c-0": "unchanged"}  # fmt: skip
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

    async def failing(*args: Any) -> list[Checked]:
        lookups.append(args[-1])
        return [Checked(leased=False)] * len(args[2])

    try:
        monkeypatch.setattr(gate.boots, "check_all", failing)
        changed = request_body()
        changed["manifest"]["tables"][0]["columns"].append({"name": "plan", "type": "text"})
        batch = [request_record(request_body(), request_id="a"),
                 request_record(changed, request_id="b")]  # fmt: skip
        assert not await gate.handle(batch)
        assert lookups == [("a", "b")] and sink.replies == []
    finally:
        await gate.close()
