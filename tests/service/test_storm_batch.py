"""A storm's batch: many replicas send the same manifest bytes, decoded and validated once, and
one replica's corrupted copy is still that replica's own rejection. On a real PostgreSQL."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.service.records import Record, request_body, request_record
from worker.service.gate import Gate
from worker.service.requests import LOADED, TEXTS
from worker.settings import WorkerSettings

pytestmark = pytest.mark.postgres


def replica(i: int, value: bytes | None = None) -> Record:
    body = request_body(instance=f"pod-{i}")
    record = request_record(body, request_id=f"req-{i}")
    record.value, record.offset = value if value is not None else record.value, i
    return record


def corrupted(i: int, old: bytes, new: bytes) -> Record:
    good = replica(i)
    assert good.value is not None and good.value.count(old) == 1
    return replica(i, good.value.replace(old, new))


async def test_one_corrupted_copy_in_a_batch_of_identical_manifests(
    database: FreshDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="schemaheal.gate")
    LOADED.clear()
    TEXTS.clear()
    batch = [replica(i) for i in range(12)]
    batch[4] = corrupted(4, b'"nullable": false', b'"nullable": "nope"')  # still JSON
    batch[7] = corrupted(7, b'"tenants"', b'"tenants\x01"')  # no longer JSON
    batch[9] = corrupted(9, b'"tenants"', b'"tenantz"')  # a different, valid manifest
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    try:
        assert await gate.handle(batch)
    finally:
        await gate.close()
    outcomes = sink.outcomes()
    assert sorted(outcomes) == sorted(f"req-{i}" for i in range(12))  # each answered once
    assert all(len(answers) == 1 for answers in outcomes.values()), outcomes
    assert outcomes["req-4"] == ["rejected invalid-manifest"]
    assert outcomes["req-7"] == ["rejected not-json"]
    assert [r.record.offset for r in sink.dead] == [4, 7]
    healed = {f"req-{i}" for i in range(12)} - {"req-4", "req-7"}
    assert all(outcomes[r] == ["healed"] for r in healed), outcomes
    by_id = {reply.request_id: reply for reply in sink.replies}
    for i in (0, 1, 2, 3, 5, 6, 8, 9, 10, 11):  # its own instance, coalesced into its leader
        reply = by_id[f"req-{i}"]
        assert reply.instance == f"pod-{i}"
        assert reply.coalesced == (i not in (0, 9))
        assert reply.healed_by == (None if i in (0, 9) else "req-0")
    assert by_id["req-9"].manifest_hash != by_id["req-0"].manifest_hash
    logged = [getattr(r, "request_id", None) for r in caplog.records if r.msg == "replied"]
    for record in caplog.records:  # every answered request is in the log, once
        if record.msg == "replied to coalesced requests":
            assert getattr(record, "healed_by", None) == "req-0"
            logged += getattr(record, "request_ids", [])
    assert sorted(logged) == sorted(healed)
    assert {r.manifest_hash for r in sink.replies if r.coalesced} == {by_id["req-0"].manifest_hash}
    ledger = await database.fetch("SELECT id, request_id, instance, served_by, record_position,"
                                  " outcome FROM schemaheal.heals ORDER BY id")  # fmt: skip
    assert sorted(r["request_id"] for r in ledger) == sorted(healed)  # every reply has its row
    rows = {r["request_id"]: r for r in ledger}
    for request_id in healed - {"req-0", "req-9"}:  # coalesced: served by req-0's heal
        i = int(request_id.split("-")[1])
        row = rows[request_id]
        assert row["served_by"] == rows["req-0"]["id"] and row["outcome"] == "healed"
        assert (row["instance"], row["record_position"]) == (f"pod-{i}", f"service.starting:0:{i}")
    tables = await database.fetch("SELECT relname FROM pg_class WHERE relkind = 'r'"
                                  " AND relname LIKE 'tenant%' ORDER BY 1")  # fmt: skip
    assert [t["relname"] for t in tables] == ["tenants", "tenantz"]


async def test_a_repeated_manifest_is_judged_once_and_a_changed_byte_anew(
    database: FreshDatabase,
) -> None:
    LOADED.clear()
    TEXTS.clear()
    sink = RecordingSink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    try:
        assert await gate.handle([replica(i) for i in range(5)])
        assert len(LOADED) == 1 and len(TEXTS) == 1
        spaced = replica(5)
        assert spaced.value is not None
        manifest = json.dumps(request_body()["manifest"], indent=1)  # the same, spaced out
        spaced.value = json.dumps({**request_body(instance="pod-5"), "manifest": 0}).encode()
        spaced.value = spaced.value.replace(b'"manifest": 0', f'"manifest": {manifest}'.encode())
        assert await gate.handle([spaced])
    finally:
        await gate.close()
    assert len(LOADED) == 2  # another text, judged anew: the same manifest hash
    assert sink.replies[-1].outcome == "unchanged"
    assert sink.replies[-1].manifest_hash == sink.replies[0].manifest_hash
