"""The committed signature test vectors are current, and follow from the README's description
alone (an implementation written here from it, not from contracts.signing)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.signing import load_public_key, verify
from tests.contracts.signature_vectors import PATH, render

COMMITTED = json.loads(PATH.read_text())
FIELDS = ["x-schemaheal-signature-version", "x-schemaheal-key-id", "x-schemaheal-timestamp",
          "ce_id", "ce_source", "ce_type", "ce_time", "correlation_id", "reply_to",
          "kafka_correlationId", "kafka_replyTopic", "kafka_replyPartition"]  # fmt: skip


def test_the_committed_vectors_are_current() -> None:
    assert PATH.read_text() == render(), "run: make schemas"


def raw(pairs: list[list[Any]]) -> list[tuple[str, bytes | None]]:
    return [(n, None if v is None else base64.b64decode(v)) for n, v in pairs]


def from_the_readme(
    headers: list[tuple[str, bytes | None]], key: bytes | None, value: bytes
) -> bytes:
    """The signed bytes as the README describes them."""
    first: dict[str, bytes] = {}
    for name, v in headers:
        if v is not None:
            first.setdefault(name, v)

    def field(v: bytes | None) -> str:
        return "-" if v is None else base64.b64encode(v).decode()

    text = "schemaheal-request-v2\n"
    text += "".join(f"{name}:{field(first.get(name))}\n" for name in FIELDS)
    return (text + f"kafka-key:{field(key)}\n").encode() + value


@pytest.mark.parametrize("case", COMMITTED["cases"], ids=lambda c: c["description"][:30])
def test_each_vector_follows_from_the_description(case: dict[str, Any]) -> None:
    headers = raw(case["headers"])
    added = [(n, v.encode()) for n, v in case["signature_headers"]]
    key = None if case["key"] is None else base64.b64decode(case["key"])
    value = base64.b64decode(case["value"])
    message = from_the_readme([*headers, *added], key, value)
    assert base64.b64encode(message).decode() == case["signed_bytes"]
    assert message.decode() == case["signed_text"]
    private_key = Ed25519PrivateKey.from_private_bytes(
        bytes.fromhex(COMMITTED["private_key_seed_hex"])
    )
    signature = base64.b64encode(private_key.sign(message)).decode()  # Ed25519 is deterministic
    assert added[-1] == ("x-schemaheal-signature", signature.encode())
    keys = {COMMITTED["key_id"]: load_public_key(COMMITTED["public_key"])}
    assert verify(keys, [*headers, *added], key, value, now=COMMITTED["timestamp"]) is None
    assert verify(keys, [*headers, *added], key, value + b" ", now=COMMITTED["timestamp"])
