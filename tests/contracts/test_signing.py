"""Ed25519 request signatures (version 2): what passes, each way to fail, and version 1."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.events import REQUEST_TYPE, event_headers
from contracts.signing import SIGNED_HEADERS, sign, signed_bytes, signed_bytes_v1, verify

OLD, NEW, OTHER = (Ed25519PrivateKey.generate() for _ in range(3))
KEYS = {"2026-01": OLD.public_key(), "2026-06": NEW.public_key()}  # rotation: both valid
BODY = b'{"service":"orchestrator"}'
Headers = list[tuple[str, bytes | None]]


def request(private_key: Ed25519PrivateKey = NEW, key_id: str = "2026-06") -> Headers:
    headers: Headers = list(event_headers(
        event_type=REQUEST_TYPE, source="/services/orchestrator/pod-a", event_id="req-1",
        extra={"correlation_id": "req-1", "reply_to": "replies.a", "kafka_replyTopic": "replies.a"},
    ))  # fmt: skip
    headers.append(("kafka_correlationId", b"\x00\xff" * 8))
    headers.append(("kafka_replyPartition", b"\x00\x00\x00\x01"))
    return headers + list(sign(private_key, key_id, headers, b"nexus", BODY))


def setting(name: str, value: bytes | None) -> Callable[[Headers], Headers]:
    return lambda headers: [(n, value if n == name else v) for n, v in headers]


def test_a_request_signed_with_either_current_key_passes() -> None:
    for private_key, key_id in ((OLD, "2026-01"), (NEW, "2026-06")):
        assert verify(KEYS, request(private_key, key_id), b"nexus", BODY) is None


@pytest.mark.parametrize("name", SIGNED_HEADERS[3:])  # after the signature's own
def test_changing_any_signed_header_breaks_the_signature(name: str) -> None:
    """Issue 15.3: ce_source, ce_type, ce_time, the correlation and reply headers were not
    signed, so a changed one was served (and ce_source written to the ledger)."""
    tampered = setting(name, b"tampered")(request())
    assert "does not match" in (verify(KEYS, tampered, b"nexus", BODY) or "")
    dropped = [(n, v) for n, v in request() if n != name]
    assert "does not match" in (verify(KEYS, dropped, b"nexus", BODY) or "")


@pytest.mark.parametrize(
    ("key", "value"), [(b"billing", BODY), (None, BODY), (b"nexus", BODY + b" "), (b"nexus", b"")]
)
def test_changing_the_key_or_the_body_breaks_the_signature(key: bytes | None, value: bytes) -> None:
    assert "does not match" in (verify(KEYS, request(), key, value) or "")


def test_only_the_first_value_of_a_repeated_header_counts_as_the_worker_reads_it() -> None:
    headers = request()
    assert verify(KEYS, [*headers, ("ce_source", b"/services/billing/x")], b"nexus", BODY) is None
    assert verify(KEYS, [("ce_source", b"/services/billing/x"), *headers], b"nexus", BODY)
    assert verify(KEYS, [("ce_source", None), *headers], b"nexus", BODY) is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (setting("x-schemaheal-key-id", b"2027"), "unknown signing key"),
        (setting("x-schemaheal-signature", None), "not signed"),
        (setting("x-schemaheal-timestamp", str(int(time.time()) - 3600).encode()), "window"),
        (setting("x-schemaheal-timestamp", "²".encode()), "not signed"),
        (setting("x-schemaheal-signature-version", b"3"), "unknown signature version"),
        (setting("x-schemaheal-signature-version", None), "version 1 is not accepted"),
        (setting("x-schemaheal-signature-version", b"1"), "version 1 is not accepted"),
    ],
)
def test_each_way_to_fail_is_named(change: Callable[[Headers], Headers], says: str) -> None:
    assert says in (verify(KEYS, change(request()), b"nexus", BODY) or "")


def test_a_key_the_worker_does_not_hold_cannot_sign() -> None:
    forged = request(OTHER, "2026-06")  # right id, wrong key
    assert "does not match" in (verify(KEYS, forged, b"nexus", BODY) or "")


def test_a_version_2_signature_cannot_be_passed_off_as_version_1() -> None:
    downgraded = setting("x-schemaheal-signature-version", b"1")(request())
    both = frozenset({1, 2})
    assert "does not match" in (verify(KEYS, downgraded, b"nexus", BODY, versions=both) or "")


def version_1(ce_source: bytes) -> Headers:
    """A request as a boot client before version 2 signed it (no version header)."""
    now = int(time.time())
    signature = NEW.sign(signed_bytes_v1("2026-06", now, "req-1", BODY))
    return [("ce_id", b"req-1"), ("ce_source", ce_source), ("x-schemaheal-key-id", b"2026-06"),
            ("x-schemaheal-timestamp", str(now).encode()),
            ("x-schemaheal-signature", base64.b64encode(signature))]  # fmt: skip


def test_version_1_is_accepted_only_where_the_policy_says_so() -> None:
    old = version_1(b"/services/orchestrator/pod-a")
    assert "version 1 is not accepted" in (verify(KEYS, old, b"nexus", BODY) or "")
    assert verify(KEYS, old, b"nexus", BODY, versions=frozenset({1, 2})) is None
    # what version 1 does not cover is why it is retired: its ce_source can be changed
    moved = setting("ce_source", b"/services/billing/x")(old)
    assert verify(KEYS, moved, b"billing", BODY, versions=frozenset({1, 2})) is None
    assert "does not match" in (verify(KEYS, setting("ce_id", b"req-2")(old), None, BODY,
                                       versions=frozenset({1})) or "")  # fmt: skip


def test_the_signed_bytes_are_one_line_per_signed_header_then_the_key_and_body() -> None:
    lines = signed_bytes([("ce_id", b"a\nb"), ("ce_time", b"")], None, b"{}\n").split(b"\n")
    assert lines[0] == b"schemaheal-request-v2"
    assert lines[1 : len(SIGNED_HEADERS) + 1] == [
        n.encode() + b":" + {"ce_id": b"YQpi", "ce_time": b""}.get(n, b"-") for n in SIGNED_HEADERS
    ]
    assert lines[len(SIGNED_HEADERS) + 1 :] == [b"kafka-key:-", b"{}", b""]


def test_the_signatures_own_headers_are_signed_and_a_record_is_signed_once() -> None:
    moved = setting("x-schemaheal-timestamp", str(int(time.time()) - 1).encode())(request())
    assert "does not match" in (verify(KEYS, moved, b"nexus", BODY) or "")
    with pytest.raises(ValueError, match="signed already"):
        sign(NEW, "2026-06", request(), b"nexus", BODY)
