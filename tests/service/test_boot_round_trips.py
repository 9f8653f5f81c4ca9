"""What a no-drift boot costs the database through the gate: counted, not timed (the time is
``bench.boot_gate``'s). Before the boot check it took 14 queries; now the batch's ledger lookup,
the boot check and the answer's ledger row."""

from __future__ import annotations

import pytest

from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.service.records import request_body, request_record
from worker.service.gate import Gate
from worker.settings import WorkerSettings

pytestmark = pytest.mark.postgres


async def test_a_no_drift_boot_is_three_queries_and_a_changed_schema_is_still_healed(
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
        assert len(queries) == 3, "\n".join(queries)
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
