"""The access policy: who may change which database, which schemas, with which hazards."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.service.records import request_body, request_record, signed_record
from worker.engine.hazards import Hazard
from worker.errors import ConfigurationError
from worker.service.access import AccessPolicy, Grant, parse_policy
from worker.service.gate import Gate
from worker.settings import WorkerSettings

POLICY = {"services": {
    "orchestrator": {"databases": {"nexus": {"schemas": ["public"], "hazards": ["table-rewrite"]}}},
    "billing": {"databases": {"billing": {"schemas": ["billing"]}}},
}}  # fmt: skip


@pytest.mark.parametrize(
    ("service", "alias", "schemas", "allowed", "says"),
    [
        ("orchestrator", "nexus", {"public"}, True, ""),
        ("orchestrator", "nexus", {"public", "audit"}, False, "schema(s) audit"),
        ("orchestrator", "billing", {"billing"}, False, "may not change database 'billing'"),
        ("billing", "nexus", {"public"}, False, "may not change database 'nexus'"),
        ("intruder", "nexus", {"public"}, False, "not in the worker's access policy"),
    ],
)
def test_decisions(service: str, alias: str, schemas: set[str], allowed: bool, says: str) -> None:
    decision = parse_policy(POLICY).decide(service, alias, frozenset(schemas))
    assert isinstance(decision, Grant) is allowed
    if not allowed:
        assert says in str(decision)


def test_grants_carry_approved_hazards() -> None:
    grant = parse_policy(POLICY).decide("orchestrator", "nexus", frozenset({"public"}))
    assert isinstance(grant, Grant)
    assert grant.hazards == {Hazard.TABLE_REWRITE}


def test_without_a_policy_everything_is_allowed() -> None:
    assert isinstance(AccessPolicy().decide("anyone", "any", frozenset({"x"})), Grant)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "expected"),
        ({"services": {"a": {"databases": []}}}, "services.a.databases"),
        (
            {"services": {"a": {"databases": {"d": {"schemas": "public"}}}}},
            "schemas must be a list",
        ),
        ({"services": {"a": {"databases": {"d": {"schemas": [], "hazards": ["yolo"]}}}}}, "known:"),
    ],
)
def test_bad_policies_say_what_and_where(document: Any, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        parse_policy(document)


Sink = RecordingSink


def write(path: Path, document: dict[str, Any], mtime: float) -> None:
    path.write_text(json.dumps(document))
    os.utime(path, (mtime, mtime))


async def test_the_gate_refuses_what_the_policy_does_not_allow_and_rules_change_without_restart(
    database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    policy = tmp_path / "access.json"
    write(
        policy, {"services": {"billing": {"databases": {"nexus": {"schemas": ["public"]}}}}}, 1000
    )
    sink = Sink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}, access_policy=policy), sink)
    try:
        assert await gate.handle([request_record(request_body(), request_id="r1")])
        [refused] = sink.replies
        assert (refused.outcome, refused.error.code if refused.error else None) == (
            "rejected",
            "not-allowed",
        )
        assert "orchestrator" in (refused.error.message if refused.error else "")
        assert [d.code for d in sink.dead] == ["not-allowed"]
        assert await database.fetch("SELECT 1 FROM pg_namespace WHERE nspname = 'schemaheal'") == []
        columns = await database.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tenants'"
        )
        assert [c["column_name"] for c in columns] == ["id"]  # untouched

        write(policy, POLICY, 2000)  # the operators grant access: no restart
        assert await gate.handle([request_record(request_body(), request_id="r2")])
        assert sink.replies[-1].outcome == "healed"
    finally:
        await gate.close()


async def test_a_broken_policy_file_stops_the_worker_at_start(tmp_path: Path) -> None:
    policy = tmp_path / "access.json"
    policy.write_text("{not json")
    with pytest.raises(ConfigurationError, match="access policy"):
        Gate(WorkerSettings(access_policy=policy), Sink())


async def test_hazards_granted_by_the_policy_are_approved_for_that_service(
    database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY); "
                           "INSERT INTO tenants SELECT generate_series(1, 5000)")  # fmt: skip
    body = request_body()
    body["manifest"]["tables"][0]["columns"].append(
        {"name": "uid", "type": "uuid", "nullable": False, "default": "gen_random_uuid()"}
    )
    outcomes = []
    for grant in ([], ["table-rewrite"]):
        policy = tmp_path / f"access-{len(grant)}.json"
        policy.write_text(json.dumps({"services": {"orchestrator": {"databases": {
            "nexus": {"schemas": ["public"], "hazards": grant}}}}}))  # fmt: skip
        sink = Sink()
        settings = WorkerSettings(databases={"nexus": database.dsn}, access_policy=policy,
                                  rewrite_threshold_mb=0.01)  # fmt: skip
        gate = Gate(settings, sink)
        try:
            await gate.handle([request_record(body, request_id=f"h{len(grant)}")])
        finally:
            await gate.close()
        outcomes.append(sink.replies[-1].outcome)
    assert outcomes == ["blocked", "healed"]


async def test_signed_services_must_sign_and_replays_are_refused(
    database: FreshDatabase, tmp_path: Path
) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY)")
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()

    def public(key: Ed25519PrivateKey) -> str:
        return base64.b64encode(
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()

    policy = tmp_path / "access.json"
    rules = {"databases": {"nexus": {"schemas": ["public"]}}, "keys": {"k1": public(old)}}
    write(policy, {"services": {"orchestrator": rules}}, 1000)
    sink = Sink()
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}, access_policy=policy), sink)
    try:
        await gate.handle([request_record(request_body(), request_id="unsigned")])
        tampered = signed_record(old, "k1", "tampered", 1)
        tampered.value = tampered.value.replace(b"pod-a", b"pod-b")
        await gate.handle([tampered])
        good = signed_record(old, "k1", "good", 2)
        await gate.handle([good])
        await gate.handle([good])  # redelivered: same record position → from the ledger
        replay = signed_record(old, "k1", "good", 3)  # the same request published again
        replay.headers, replay.value = good.headers, good.value
        await gate.handle([replay])
        write(policy, {"services": {"orchestrator": {**rules, "keys": {"k2": public(new)}}}}, 2000)
        await gate.handle([signed_record(old, "k1", "retired-key", 4)])  # rotated out, no restart
        await gate.handle([signed_record(new, "k2", "new-key", 5)])
    finally:
        await gate.close()
    seen = [
        (r.request_id, r.outcome, r.error.code if r.error else None, r.from_ledger)
        for r in sink.replies
    ]
    assert seen == [
        ("unsigned", "rejected", "bad-signature", False),
        ("tampered", "rejected", "bad-signature", False),
        ("good", "healed", None, False),
        ("good", "healed", None, True),
        ("good", "rejected", "replayed-request", False),
        ("retired-key", "rejected", "bad-signature", False),
        ("new-key", "unchanged", None, False),
    ]
