"""Heartbeat records (:mod:`worker.service.heartbeats`): checked like requests, a bad one is
rejected with its reason (dead-lettered by the handler), a good one is a heartbeat or a stop."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.events import HEARTBEAT_TYPE, REQUEST_TYPE, ServiceHeartbeat, event_headers
from contracts.heartbeat import liveness_record
from tests.service.records import Record
from worker.service.access import PolicyFile
from worker.service.heartbeats import Beat, Heartbeats, parse_beat
from worker.service.requests import Rejection
from worker.settings import WorkerSettings

BODY = ServiceHeartbeat(service="orchestrator", instance="pod-a", database="nexus")
ALIASES = frozenset({"nexus"})


def beat_record(stopped: bool = False, signer: Any = None, **headers: str) -> Record:
    key, value, raw = liveness_record(BODY, stopped=stopped, signer=signer)
    raw = [(k, v) for k, v in raw if k not in headers] + [(k, v.encode()) for k, v in
                                                          headers.items()]  # fmt: skip
    return Record(value=value, headers=list(raw), key=key, topic="service.heartbeat")


def parse(record: Record, access: PolicyFile | None = None) -> Beat | Rejection:
    return parse_beat(record, aliases=ALIASES, access=access or PolicyFile(None))


def headers_of(event_type: str) -> list[tuple[str, bytes | None]]:
    return list(event_headers(event_type=event_type, source="/services/orchestrator/pod-a"))


def test_a_heartbeat_and_a_stop() -> None:
    assert parse(beat_record()) == Beat(body=BODY, stopped=False)
    assert parse(beat_record(stopped=True)) == Beat(body=BODY, stopped=True)


@pytest.mark.parametrize(
    ("record", "code", "says"),
    [
        (Record(value=b"{}", headers=[]), "not-a-cloudevent", "ce_specversion"),
        (Record(value=b"{}", headers=headers_of(REQUEST_TYPE)), "unknown-type",
         "dev.schemaheal.service.heartbeat.v1 or dev.schemaheal.service.stopped.v1"),
        (Record(value=b"\xff", headers=headers_of(HEARTBEAT_TYPE)), "not-json", "UTF-8 JSON"),
        (Record(value=b"[]", headers=headers_of(HEARTBEAT_TYPE)), "not-json", "JSON object"),
        (Record(value=json.dumps({"service": "orchestrator"}).encode(),
                headers=headers_of(HEARTBEAT_TYPE)), "invalid-request", "$.instance"),
        (Record(value=json.dumps({**BODY.model_dump(), "database": "other"}).encode(),
                headers=headers_of(HEARTBEAT_TYPE)), "unknown-database", "'other'"),
        (Record(value=b"x" * 70_000, headers=headers_of(HEARTBEAT_TYPE)), "too-large", "limit"),
    ],
)  # fmt: skip
def test_bad_records_are_rejected_with_the_reason(record: Record, code: str, says: str) -> None:
    rejected = parse(record)
    assert isinstance(rejected, Rejection)
    assert (rejected.code, says in rejected.message) == (code, True), rejected.message


def _policy(path: Path, key: Ed25519PrivateKey | None, service: str = "orchestrator") -> PolicyFile:
    rules: dict[str, Any] = {"databases": {"nexus": {"schemas": ["public"]}}}
    if key is not None:
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        rules["keys"] = {"k1": base64.b64encode(raw).decode()}
    path.write_text(json.dumps({"services": {service: rules}}))
    return PolicyFile(path)


def test_the_access_policy_applies(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    signed = _policy(tmp_path / "signed.json", key)
    assert parse(beat_record(signer=(key, "k1")), signed) == Beat(body=BODY, stopped=False)
    unsigned = parse(beat_record(), signed)
    assert isinstance(unsigned, Rejection) and unsigned.code == "bad-signature"
    other = Ed25519PrivateKey.generate()
    forged = parse(beat_record(signer=(other, "k1")), signed)
    assert isinstance(forged, Rejection) and forged.code == "bad-signature"
    elsewhere = parse(beat_record(), _policy(tmp_path / "other.json", None, service="billing"))
    assert isinstance(elsewhere, Rejection) and elsewhere.code == "not-allowed"


async def test_the_handler_dead_letters_bad_records_and_goes_on() -> None:
    """Only bad records here: the batch is served (True) without touching any database."""
    letters: list[Rejection] = []

    async def dead_letter(rejection: Rejection) -> None:
        letters.append(rejection)

    handler = Heartbeats(WorkerSettings(databases={"nexus": "postgresql://x@127.0.0.1:1/x"}),
                         dead_letter)  # fmt: skip
    bad = [Record(value=b"[]", headers=headers_of(HEARTBEAT_TYPE)), object()]
    assert await handler.handle(bad) is True
    assert [r.code for r in letters] == ["not-json", "internal"]
