"""Issue 15.3: every attribute the worker uses or records is signed. Each record below was signed
by the service and then changed in flight in one attribute; before version 2 of the signature
each was served (and its forged ``ce_source`` written to the ledger). On a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.events import REQUEST_TYPE
from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.faults.test_gate_isolation import KEY, signing_policy
from tests.faults.test_gate_isolation import serve as serve_batch
from tests.service.records import Record, request_body, signed_record, with_header

ROUTED = {"reply_to": "replies.a", "kafka_replyTopic": "replies.a"}


def routed(request_id: str, offset: int) -> Record:
    binary = (("kafka_correlationId", b"\x01" * 16), ("kafka_replyPartition", b"\x00" * 4))
    return signed_record(KEY, "k1", request_id, offset, extra=ROUTED, binary=binary)


def faststream(request_id: str, offset: int) -> Record:
    """A request naming its reply topic only as FastStream does (``reply_to``)."""
    return signed_record(KEY, "k1", request_id, offset, extra={"reply_to": "replies.a"})


def resigned_elsewhere(request_id: str, offset: int) -> Record:
    """Signed as another event type, then relabelled as a request."""
    record = signed_record(KEY, "k1", request_id, offset, extra={"ce_type": "dev.example.other"})
    return with_header(record, "ce_type", REQUEST_TYPE.encode())


TAMPERED = {
    "ce_source": lambda r: with_header(r, "ce_source", b"/services/orchestrator/pod-b"),
    "ce_time": lambda r: with_header(r, "ce_time", b"2020-01-01T00:00:00.000Z"),
    "ce_id": lambda r: with_header(r, "ce_id", b"another-id"),
    "key": lambda r: Record(value=r.value, headers=r.headers, key=b"billing", offset=r.offset),
    "correlation_id": lambda r: with_header(r, "correlation_id", b"someone-else"),
    "reply_to": lambda r: with_header(r, "reply_to", b"replies.b"),
    "kafka_replyTopic": lambda r: with_header(
        with_header(r, "kafka_replyTopic", b"replies.b"), "reply_to", b"replies.b"
    ),
    "kafka_replyPartition": lambda r: with_header(r, "kafka_replyPartition", b"\x00\x00\x00\x01"),
    "kafka_correlationId": lambda r: with_header(r, "kafka_correlationId", b"\x02" * 16),
    "body": lambda r: Record(
        value=r.value.replace(b"pod-a", b"pod-b"), headers=r.headers, key=r.key, offset=r.offset
    ),
}


async def serve(database: FreshDatabase, policy: Path, batch: list[Record]) -> RecordingSink:
    allowed = frozenset({"replies.a", "replies.b"})
    return await serve_batch(database, policy, batch, allowed_reply_topics=allowed)


@pytest.mark.parametrize("attribute", sorted(TAMPERED))
async def test_a_request_changed_in_any_signed_attribute_is_refused(
    database: FreshDatabase, tmp_path: Path, attribute: str
) -> None:
    build = faststream if attribute == "reply_to" else routed
    tampered = TAMPERED[attribute](build("tampered", 2))
    request_id = "another-id" if attribute == "ce_id" else "tampered"
    sink = await serve(database, signing_policy(tmp_path), [routed("good", 1), tampered])
    assert sink.outcomes() == {"good": ["healed"], request_id: ["rejected bad-signature"]}
    assert [d.code for d in sink.dead] == ["bad-signature"]
    rows = await database.fetch("SELECT request_id FROM schemaheal.heals")
    assert [r["request_id"] for r in rows] == ["good"]


async def test_a_request_signed_as_another_event_type_is_refused(
    database: FreshDatabase, tmp_path: Path
) -> None:
    sink = await serve(database, signing_policy(tmp_path), [resigned_elsewhere("relabelled", 1)])
    assert sink.outcomes() == {"relabelled": ["rejected bad-signature"]}


async def test_a_signed_request_whose_source_names_another_service_is_refused(
    database: FreshDatabase, tmp_path: Path
) -> None:
    """Authorisation follows the body's service; a signed request must say so in ce_source."""
    batch = [
        signed_record(KEY, "k1", "elsewhere", 1, source="/services/billing/pod-a"),
        signed_record(KEY, "k1", "nowhere", 2, source="/fuzz"),
        signed_record(KEY, "k1", "bare", 3, source="/services/orchestrator"),
    ]
    sink = await serve(database, signing_policy(tmp_path), batch)
    assert sink.outcomes() == {
        "elsewhere": ["rejected not-allowed"],
        "nowhere": ["rejected not-allowed"],
        "bare": ["healed"],
    }
    assert "ce_source '/services/billing/pod-a'" in json.dumps(
        [r.error.message for r in sink.replies if r.error]
    )


async def test_version_1_signatures_are_served_only_where_the_policy_accepts_them(
    database: FreshDatabase, tmp_path: Path
) -> None:
    import base64
    import time

    from contracts.events import event_headers
    from contracts.signing import signed_bytes_v1

    def version_1(request_id: str, offset: int) -> Record:
        value = json.dumps(request_body()).encode()
        now = int(time.time())
        signature = base64.b64encode(KEY.sign(signed_bytes_v1("k1", now, request_id, value)))
        extra = {"x-schemaheal-key-id": "k1", "x-schemaheal-timestamp": str(now),
                 "x-schemaheal-signature": signature.decode()}  # fmt: skip
        headers = event_headers(event_type=REQUEST_TYPE, source="/services/orchestrator/p",
                                event_id=request_id, extra=extra)  # fmt: skip
        return Record(value=value, headers=list(headers), offset=offset)

    policy = signing_policy(tmp_path)
    sink = await serve(database, policy, [version_1("refused", 1)])
    document = json.loads(policy.read_text())
    document["services"]["orchestrator"]["signature_versions"] = [1, 2]
    policy.write_text(json.dumps(document))
    sink2 = await serve(database, policy, [version_1("accepted", 2)])
    assert sink.outcomes() == {"refused": ["rejected bad-signature"]}
    assert sink2.outcomes() == {"accepted": ["healed"]}
