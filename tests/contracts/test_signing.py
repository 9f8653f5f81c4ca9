"""Ed25519 request signatures: what passes, and each way to fail."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.signing import sign, verify

OLD, NEW, OTHER = (Ed25519PrivateKey.generate() for _ in range(3))
KEYS = {"2026-01": OLD.public_key(), "2026-06": NEW.public_key()}  # rotation: both valid


def test_a_request_signed_with_either_current_key_passes() -> None:
    for key, key_id in ((OLD, "2026-01"), (NEW, "2026-06")):
        headers = sign(key, key_id, "req-1", b'{"service":"orchestrator"}')
        assert verify(KEYS, headers, "req-1", b'{"service":"orchestrator"}') is None


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda h, v, r: (h, v + b" ", r), "does not match"),  # tampered body
        (lambda h, v, r: (h, v, "req-2"), "does not match"),  # re-sent under another ce_id
        (lambda h, v, r: ({**h, "x-schemaheal-key-id": "2027"}, v, r), "unknown signing key"),
        (
            lambda h, v, r: ({k: x for k, x in h.items() if k != "x-schemaheal-signature"}, v, r),
            "not signed",
        ),
        (
            lambda h, v, r: ({**h, "x-schemaheal-timestamp": str(int(time.time()) - 3600)}, v, r),
            "window",
        ),
    ],
)
def test_each_way_to_fail_is_named(change: object, says: str) -> None:
    headers = sign(NEW, "2026-06", "req-1", b"{}")
    headers, value, request_id = change(headers, b"{}", "req-1")  # type: ignore[operator]
    reason = verify(KEYS, headers, request_id, value)
    assert reason is not None
    assert says in reason


def test_a_key_the_worker_does_not_hold_cannot_sign() -> None:
    headers = sign(OTHER, "2026-06", "req-1", b"{}")  # right id, wrong key: forged
    assert "does not match" in (verify(KEYS, headers, "req-1", b"{}") or "")
