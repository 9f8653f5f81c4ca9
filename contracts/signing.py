"""Signed requests: Ed25519 over the exact record bytes, a timestamp, the key id and the ce_id.

Ed25519 rather than a shared HMAC secret, so the worker — which holds only public keys — cannot
forge a service's request. The signature travels in headers next to the CloudEvents ones:

    x-schemaheal-key-id      which of the service's keys signed (several allow rotation)
    x-schemaheal-timestamp   unix seconds; the worker refuses requests outside its window
    x-schemaheal-signature   base64 of Ed25519(signed_bytes(...))

Binding the ``ce_id`` into the signature means a captured request cannot be re-sent under a new
id; re-sent under its own id, the worker recognises it as a replay.
"""

from __future__ import annotations

import base64
import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "SIGNATURE_HEADERS",
    "load_private_key",
    "load_public_key",
    "sign",
    "signed_bytes",
    "verify",
]

SIGNATURE_HEADERS = ("x-schemaheal-key-id", "x-schemaheal-timestamp", "x-schemaheal-signature")
_DOMAIN = b"schemaheal-request-v1"
_TIMESTAMP = re.compile(r"[0-9]{1,18}")


def signed_bytes(key_id: str, timestamp: int, request_id: str, value: bytes) -> bytes:
    """What is signed: a domain tag, key id, timestamp and ce_id, then the record value."""
    head = b"\n".join([_DOMAIN, key_id.encode(), str(timestamp).encode(), request_id.encode()])
    return head + b"\n" + value


def sign(key: Ed25519PrivateKey, key_id: str, request_id: str, value: bytes) -> dict[str, str]:
    """The signature headers for one request record."""
    timestamp = int(time.time())
    signature = key.sign(signed_bytes(key_id, timestamp, request_id, value))
    return {
        "x-schemaheal-key-id": key_id,
        "x-schemaheal-timestamp": str(timestamp),
        "x-schemaheal-signature": base64.b64encode(signature).decode(),
    }


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """A private key from a PEM file's bytes (``openssl genpkey -algorithm ed25519``)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its 32 raw bytes (what the access policy file holds)."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def verify(
    keys: dict[str, Ed25519PublicKey],
    headers: dict[str, str],
    request_id: str,
    value: bytes,
    *,
    window_s: int = 300,
    now: float | None = None,
) -> str | None:
    """None when the request is signed by one of ``keys`` within the window; else why not."""
    key_id = headers.get("x-schemaheal-key-id")
    raw_time = headers.get("x-schemaheal-timestamp", "")
    raw_signature = headers.get("x-schemaheal-signature")
    # ASCII digits only, and few: "²".isdigit() is True, and int() refuses it and 5000 digits
    if not key_id or not raw_signature or not _TIMESTAMP.fullmatch(raw_time):
        return "the request is not signed: this service's requests must carry a signature"
    key = keys.get(key_id)
    if key is None:
        return f"unknown signing key {key_id!r} for this service"
    if abs((now or time.time()) - int(raw_time)) > window_s:
        return f"the signature's timestamp is outside the {window_s} s window (expired or replayed)"
    try:
        key.verify(base64.b64decode(raw_signature, validate=True),
                   signed_bytes(key_id, int(raw_time), request_id, value))  # fmt: skip
    except (InvalidSignature, ValueError):
        return "the signature does not match the request"
    return None
