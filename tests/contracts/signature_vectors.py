"""Test vectors of request signatures (version 2) for implementers in other languages.

``python -m tests.contracts.signature_vectors --write`` (``make schemas``) regenerates
``contracts/schemas/signature-v2.vectors.json``; a test keeps the committed file current and
checks it against an implementation written from the README alone. The key is a published test
key (seed 00 01 … 1f): never use it for anything else.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.signing import sign, signed_bytes

PATH = Path(__file__).parents[2] / "contracts" / "schemas" / "signature-v2.vectors.json"
SEED = bytes(range(32))
KEY_ID = "test-2026"
TIMESTAMP = 1780000000
BODY = (b'{"service":"orchestrator","instance":"pod-a","database":"nexus","manifest":'
        b'{"service":"orchestrator","database":"nexus","tables":[]}}')  # fmt: skip
Headers = list[tuple[str, bytes | None]]

CASES: list[tuple[str, Headers, bytes | None, bytes]] = [
    ("the boot client: CloudEvents headers, correlation_id, a trace context, key = alias", [
        ("ce_specversion", b"1.0"), ("ce_id", b"6f1c2a52-8a0e-4f7e-9a57-3b1de1f0c0aa"),
        ("ce_source", b"/services/orchestrator/pod-a"),
        ("ce_type", b"dev.schemaheal.service.starting.v1"),
        ("ce_time", b"2026-05-28T20:26:40.000Z"), ("content-type", b"application/json"),
        ("ce_subject", b"nexus"), ("correlation_id", b"6f1c2a52-8a0e-4f7e-9a57-3b1de1f0c0aa"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ], b"nexus", BODY),
    ("Spring Kafka: a binary kafka_correlationId, kafka_replyTopic and a 4-byte partition; "
     "no key, no ce_time", [
        ("ce_specversion", b"1.0"), ("ce_id", b"req-2"), ("ce_source", b"/services/billing/x"),
        ("ce_type", b"dev.schemaheal.service.starting.v1"),
        ("content-type", b"application/json"),
        ("kafka_correlationId", bytes.fromhex("8f1e0c7b2d4a4e6f9b3c5d7e9f0a1b2c")),
        ("kafka_replyTopic", b"billing.replies"), ("kafka_replyPartition", b"\x00\x00\x00\x03"),
    ], None, b'{"service":"billing"}'),
    ("edge cases: a null header is skipped, a repeated one counts with its first value, an "
     "empty reply_to is signed as empty, non-ASCII is signed as its UTF-8 bytes, empty body", [
        ("ce_id", None), ("ce_id", "požadavek-3".encode()), ("ce_id", b"ignored"),
        ("ce_source", "/services/orchestrator/pod-ä".encode()),
        ("ce_type", b"dev.schemaheal.service.starting.v1"), ("reply_to", b""),
    ], b"", b""),
]  # fmt: skip


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def vectors() -> dict[str, Any]:
    """The vectors document: the key, then per case its inputs and outputs."""
    private_key = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    cases = []
    for description, headers, key, value in CASES:
        added = sign(private_key, KEY_ID, headers, key, value, timestamp=TIMESTAMP)
        message = signed_bytes([*headers, *added[:3]], key, value)
        cases.append({
            "description": description,
            "headers": [[name, _b64(v)] for name, v in headers],
            "key": _b64(key),
            "value": _b64(value),
            "signature_headers": [[name, v.decode()] for name, v in added],
            "signed_bytes": _b64(message),
            "signed_text": message.decode("utf-8"),
        })  # fmt: skip
    return {
        "description": "schemaheal request signature, version 2 (README: Signed requests). "
        "Header values, key, value and signed_bytes are base64 of raw bytes (null: absent); "
        "signed_text is signed_bytes as UTF-8, for reading. signature_headers are what the "
        "signer adds, the x-schemaheal-signature last.",
        "private_key_seed_hex": SEED.hex(),
        "public_key": base64.b64encode(public).decode(),
        "key_id": KEY_ID,
        "timestamp": TIMESTAMP,
        "cases": cases,
    }


def render() -> str:
    return json.dumps(vectors(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        PATH.write_text(render())
    else:
        sys.stdout.write(render())
