"""Signed requests: Ed25519 over every attribute the worker uses or records, and the body.

Ed25519 rather than a shared HMAC secret, so the worker — which holds only public keys — cannot
forge a service's request. The signature travels in headers next to the CloudEvents ones:

    x-schemaheal-signature-version  "2" (absent: the retired version 1)
    x-schemaheal-key-id             which of the service's keys signed (several allow rotation)
    x-schemaheal-timestamp          unix seconds, 1 to 18 ASCII digits; outside the window: refused
    x-schemaheal-signature          base64 of Ed25519(signed_bytes(...))

The signed bytes of version 2, for another language to reproduce (``contracts/schemas/
signature-v2-vectors.json`` holds test vectors)::

    schemaheal-request-v2 LF
    NAME ":" FIELD LF          for each NAME of SIGNED_HEADERS, in that order
    "kafka-key:" FIELD LF      the record's Kafka key
    BODY                       the record value, byte for byte

FIELD is "-" when the header (or key) is absent or null, else the standard base64 (with
padding) of its raw bytes: empty for an empty value. A repeated header counts with its first
non-null value — the one the worker reads. Binding the ``ce_id`` means a captured request cannot
be re-sent under a new id; re-sent under its own id, the worker recognises it as a replay.
Binding ``ce_source``, the key and the reply headers means none of them can be changed in flight.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.events import first_values

__all__ = [
    "SIGNATURE_HEADERS",
    "SIGNED_HEADERS",
    "VERSION",
    "VERSION_HEADER",
    "load_private_key",
    "load_public_key",
    "sign",
    "signed_bytes",
    "signed_bytes_v1",
    "verify",
]

VERSION_HEADER = "x-schemaheal-signature-version"
KEY_ID_HEADER = "x-schemaheal-key-id"
TIMESTAMP_HEADER = "x-schemaheal-timestamp"
SIGNATURE_HEADER = "x-schemaheal-signature"
SIGNATURE_HEADERS = (VERSION_HEADER, KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
VERSION = 2
#: the headers version 2 signs, in order (then the Kafka key, then the body)
SIGNED_HEADERS = (
    VERSION_HEADER, KEY_ID_HEADER, TIMESTAMP_HEADER,
    "ce_id", "ce_source", "ce_type", "ce_time",
    "correlation_id", "reply_to", "kafka_correlationId", "kafka_replyTopic", "kafka_replyPartition",
)  # fmt: skip
_DOMAIN = {1: b"schemaheal-request-v1", 2: b"schemaheal-request-v2"}
_TIMESTAMP = re.compile(r"[0-9]{1,18}")
RawHeaders = Iterable[tuple[str, bytes | None]]


def _field(value: bytes | None) -> bytes:
    return b"-" if value is None else base64.b64encode(value)


def signed_bytes(headers: RawHeaders, key: bytes | None, value: bytes) -> bytes:
    """What version 2 signs: the domain tag, the signed headers and the key, then the body."""
    first = first_values(headers)
    lines = [_DOMAIN[2]] + [name.encode() + b":" + _field(first.get(name))
                            for name in SIGNED_HEADERS]  # fmt: skip
    lines.append(b"kafka-key:" + _field(key))
    return b"\n".join(lines) + b"\n" + value


def signed_bytes_v1(key_id: str, timestamp: int, request_id: str, value: bytes) -> bytes:
    """What the retired version 1 signed: key id, timestamp and ce_id, then the body."""
    head = [_DOMAIN[1], key_id.encode(), str(timestamp).encode(), request_id.encode()]
    return b"\n".join(head) + b"\n" + value


def sign(
    private_key: Ed25519PrivateKey, key_id: str, headers: RawHeaders, key: bytes | None,
    value: bytes, *, timestamp: int | None = None,
) -> list[tuple[str, bytes]]:  # fmt: skip
    """The signature headers to add to a record with these ``headers``, ``key`` and ``value``
    (set every other header first: those in SIGNED_HEADERS cannot change afterwards)."""
    headers = list(headers)
    if any(name in SIGNATURE_HEADERS for name, _ in headers):
        raise ValueError("the record is signed already: sign a record once, after its headers")
    own = [
        (VERSION_HEADER, str(VERSION).encode()),
        (KEY_ID_HEADER, key_id.encode()),
        (TIMESTAMP_HEADER, str(int(time.time()) if timestamp is None else timestamp).encode()),
    ]
    signature = private_key.sign(signed_bytes([*headers, *own], key, value))
    return [*own, (SIGNATURE_HEADER, base64.b64encode(signature))]


def load_private_key(data: bytes) -> Ed25519PrivateKey:
    """A private key from a PEM file's bytes (``openssl genpkey -algorithm ed25519``)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private_key = load_pem_private_key(data, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return private_key


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from base64 of its 32 raw bytes (what the access policy file holds)."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def verify(
    keys: Mapping[str, Ed25519PublicKey], headers: RawHeaders, key: bytes | None, value: bytes,
    *, versions: frozenset[int] = frozenset({VERSION}), window_s: int = 300,
    now: float | None = None,
) -> str | None:  # fmt: skip
    """None when the record is signed by one of ``keys``, in one of ``versions``, within the
    window; else why not."""
    headers = list(headers)
    text = _texts(first_values(headers))
    raw_version = text.get(VERSION_HEADER, "1")
    key_id, raw_time = text.get(KEY_ID_HEADER), text.get(TIMESTAMP_HEADER, "")
    raw_signature = text.get(SIGNATURE_HEADER)
    # ASCII digits only, and few: "²".isdigit() is True, and int() refuses it and 5000 digits
    if not key_id or not raw_signature or not _TIMESTAMP.fullmatch(raw_time):
        return "the request is not signed: this service's requests must carry a signature"
    version = int(raw_version) if raw_version in ("1", "2") else None
    if version is None:
        return f"unknown signature version {raw_version[:20]!r}: sign version {VERSION}"
    if version not in versions:
        return (f"signature version {version} is not accepted for this service: sign version "
                f"{VERSION} (a current boot client does), or list {version} in the policy's "
                "signature_versions while clients are upgraded")  # fmt: skip
    public_key = keys.get(key_id)
    if public_key is None:
        return f"unknown signing key {key_id[:100]!r} for this service"
    if abs((now or time.time()) - int(raw_time)) > window_s:
        return f"the signature's timestamp is outside the {window_s} s window (expired or replayed)"
    if version == 1:
        message = signed_bytes_v1(key_id, int(raw_time), text.get("ce_id", ""), value)
    else:
        message = signed_bytes(headers, key, value)
    try:
        public_key.verify(base64.b64decode(raw_signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return "the signature does not match the request"
    return None


def _texts(first: dict[str, bytes]) -> dict[str, str]:
    """The signature's own headers as text (those not UTF-8 are left out)."""
    out = {}
    for name in (*SIGNATURE_HEADERS, "ce_id"):
        try:
            out[name] = first[name].decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
    return out
