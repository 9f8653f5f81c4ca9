"""From a Kafka record to a request the gate can serve, or a rejection that says why. Pure.

Nothing in a record is trusted: headers may be missing, null or not UTF-8, the body may not be
JSON, the manifest may be hostile, the alias may be unknown. Every such case becomes a
:class:`Rejection`; it is answered when the request can be identified (it has a ``ce_id``) and
always copied to the dead-letter topic. Nothing here touches a database.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from contracts import ManifestError, load_manifest
from contracts.events import (
    CONTENT_TYPE,
    REQUEST_TYPE,
    SPEC_VERSION,
    ServiceStarting,
    decode_headers,
)
from contracts.validation import json_path
from worker.engine.cache import BoundedCache
from worker.engine.desired import CACHED_MANIFESTS, CACHED_TABLES, Desired, prepare, weight
from worker.engine.hazards import Hazard
from worker.service.body_json import read_object
from worker.service.routing import Route

TRACE_HEADERS = ("traceparent", "tracestate")
# Every code a record can be dead-lettered with: here and the gate's refusals (the metrics
# start each at 0; tests/observability/test_metrics_zero.py keeps this list complete).
DEAD_LETTER_CODES = (
    "too-large", "not-a-cloudevent", "unknown-type", "wrong-content-type", "not-json",
    "invalid-request", "invalid-manifest", "inconsistent-request", "unknown-database",
    "reply-refused", "bad-signature", "not-allowed", "replayed-request", "internal",
)  # fmt: skip


@dataclass(slots=True, kw_only=True)
class Request:
    """A valid request: who asks, for which database alias, and its manifest, prepared."""

    request_id: str
    body: ServiceStarting
    desired: Desired
    headers: dict[str, str]
    record: Any  # the aiokafka ConsumerRecord
    received: float = field(default_factory=time.monotonic)
    hazards: frozenset[Hazard] = frozenset()  # approved for this request by the access policy
    signed: bool = False  # its service must sign, and this request's signature was checked
    route: Route | None = None  # where its reply goes (set once it was checked)
    answered: bool = False  # its reply was handed to the sink

    @property
    def alias(self) -> str:
        return self.body.database

    @property
    def manifest_hash(self) -> str:
        return self.desired.manifest_hash

    @property
    def trace_headers(self) -> dict[str, str]:
        return {k: self.headers[k] for k in TRACE_HEADERS if k in self.headers}


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """A record that cannot be served; ``request_id`` is None when nobody can be answered."""

    code: str
    message: str
    record: Any
    headers: dict[str, str]
    request_id: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """A valid manifest, prepared: the names it was sent with, its hash and desired realm."""

    service: str
    database: str
    desired: Desired


#: Manifests validated and prepared, by the sha256 of their JSON text (bounded as the realms).
LOADED: BoundedCache[bytes, Loaded] = BoundedCache(entries=CACHED_MANIFESTS, weight=CACHED_TABLES)
PREFIX = 96  # characters of a manifest's text that find the texts it may be


class ManifestTexts:
    """The exact texts of manifests validated recently, with their decoded objects, so that a
    body carrying one of them is not decoded again (see :mod:`worker.service.body_json`).
    Bounded in entries and characters; up to four texts share a prefix."""

    def __init__(self, *, entries: int, chars: int) -> None:
        self._texts: BoundedCache[str, tuple[tuple[str, Any], ...]] = BoundedCache(
            entries=entries, weight=chars
        )

    def __len__(self) -> int:
        return len(self._texts)

    def find(self, name: str, text: str, at: int) -> tuple[Any, int] | None:
        """The manifest object whose exact text starts ``text`` at ``at``, and its end."""
        if name != "manifest" or not text.startswith("{", at):
            return None
        for known, value in self._texts.get(text[at : at + PREFIX]) or ():
            if text.startswith(known, at):  # the whole text, character for character
                return value, at + len(known)
        return None

    def keep(self, text: str, value: dict[str, Any]) -> None:
        """Remember ``text`` (a JSON object's exact text) and ``value``, its decoding; a text
        shorter than the prefix is not kept (it is found by its prefix, and quick to decode)."""
        if len(text) < PREFIX:
            return
        prefix = text[:PREFIX]
        others = tuple(kept for kept in self._texts.get(prefix) or () if kept[0] != text)
        texts = ((text, value), *others[:3])
        self._texts.put(prefix, texts, sum(len(t) for t, _ in texts))

    def clear(self) -> None:
        self._texts.clear()


TEXTS = ManifestTexts(entries=CACHED_MANIFESTS, chars=8_000_000)


def load(manifest: dict[str, Any], text: str | None = None) -> Loaded:
    """Replicas of one service send the same manifest: validate and prepare each distinct text
    once. The key is the digest of the whole text (``text``, the manifest's exact text in the
    body, else ``manifest`` encoded), so any change is a new entry; a failure is not kept, so a
    bad manifest is judged every time. Raises :class:`ManifestError`."""
    whole = text if text is not None else _compact(manifest)
    key = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).digest()
    loaded = LOADED.get(key)
    if loaded is None:  # judged on its compact text, whatever the spacing it came with
        valid = load_manifest(_compact(manifest))
        loaded = Loaded(service=valid.service, database=valid.database, desired=prepare(valid))
        LOADED.put(key, loaded, weight(loaded.desired.realm))
        if text is not None:
            TEXTS.keep(text, manifest)
    return loaded


def _compact(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, separators=(",", ":"))  # ASCII: json escapes the rest


@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """A record that is a CloudEvent of an expected type with a JSON object body."""

    request_id: str
    event_type: str
    headers: dict[str, str]
    raw: dict[str, Any]
    texts: dict[str, str]  # the exact text of each member's value in the body


def parse_envelope(record: Any, *, max_bytes: int, types: frozenset[str]) -> Envelope | Rejection:
    """Check a record's size, CloudEvents headers, ``ce_type`` (one of ``types``), content type
    and JSON object body; the first problem wins."""
    headers = decode_headers(record.headers)
    request_id = headers.get("ce_id") or None

    def reject(code: str, message: str) -> Rejection:
        return Rejection(code=code, message=message, record=record, headers=headers,
                         request_id=request_id)  # fmt: skip

    size = len(record.value or b"")
    if size > max_bytes:
        return reject("too-large", f"the record is {size} bytes; the limit is {max_bytes}")
    if headers.get("ce_specversion") != SPEC_VERSION or not request_id:
        return reject(
            "not-a-cloudevent",
            "missing ce_specversion 1.0 or ce_id header: "
            "publish CloudEvents in binary mode (see the README)",
        )
    event_type = headers.get("ce_type")
    if event_type not in types:
        return reject("unknown-type", f"ce_type {event_type!r} is not {' or '.join(sorted(types))}")
    content_type = headers.get("content-type", "").split(";")[0].strip()
    if content_type != CONTENT_TYPE:
        return reject("wrong-content-type", f"content-type {content_type!r} is not {CONTENT_TYPE}")
    try:
        body = read_object(record.value or b"", TEXTS.find)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return reject("not-json", "the body is not UTF-8 JSON")
    if not isinstance(body.values, dict):
        return reject("not-json", "the body must be a JSON object")
    return Envelope(request_id=request_id, event_type=event_type, headers=headers,
                    raw=body.values, texts=body.texts)  # fmt: skip


def invalid_body(exc: ValidationError) -> str:
    return "; ".join(f"{json_path(e['loc'])}: {e['msg']}" for e in exc.errors()[:10])


def unknown_alias(alias: str) -> str:
    return (
        f"database alias {alias!r} is not configured "
        "on the worker: ask its operators to add it (--database ALIAS=DSN)"
    )


def parse_record(record: Any, *, max_bytes: int, aliases: frozenset[str]) -> Request | Rejection:
    """Check one ``service.starting`` record from the outside in; the first problem wins."""
    envelope = parse_envelope(record, max_bytes=max_bytes, types=frozenset({REQUEST_TYPE}))
    if isinstance(envelope, Rejection):
        return envelope
    request_id, headers, raw = envelope.request_id, envelope.headers, envelope.raw

    def reject(code: str, message: str, body: dict[str, Any] | None = None) -> Rejection:
        return Rejection(
            code=code,
            message=message,
            record=record,
            headers=headers,
            request_id=request_id,
            body=body,
        )

    try:
        body = ServiceStarting.model_validate(raw)
    except ValidationError as exc:
        return reject("invalid-request", invalid_body(exc), raw)
    try:
        manifest = load(body.manifest, envelope.texts.get("manifest"))
    except ManifestError as exc:
        problems = "; ".join(f"$.manifest{p.path[1:]}: {p.message}" for p in exc.problems[:20])
        return reject("invalid-manifest", problems, raw)
    if (manifest.service, manifest.database) != (body.service, body.database):
        return reject(
            "inconsistent-request",
            "the manifest's service and database must be the request's service and database",
            raw,
        )
    if body.database not in aliases:
        return reject("unknown-database", unknown_alias(body.database), raw)
    return Request(
        request_id=request_id,
        body=body,
        desired=manifest.desired,
        headers=headers,
        record=record,
    )


def position(request: Request) -> str:
    """Where the request's record is: ``topic:partition:offset`` (a redelivery has the same)."""
    record = request.record
    return f"{record.topic}:{record.partition}:{record.offset}"


def replayed(requests: list[Request], done: dict[str, dict[str, Any]]) -> list[Request]:
    """Signed requests served before from another record — in an earlier batch (the ledger
    says where) or earlier in this one — rather than redelivered from the same record."""
    first: dict[str, str] = {}
    replays = []
    for request in (r for r in requests if r.signed):
        here = position(request)
        seen = done.get(request.request_id)
        earlier = seen.get("record_position") if seen else first.get(request.request_id)
        if earlier not in (None, here):
            replays.append(request)
        first.setdefault(request.request_id, here)
    return replays


def to_serve(requests: list[Request], done: dict[str, Any]) -> list[list[Request]]:
    """The requests to serve, neither replays nor in the ledger (``done``): one group per
    manifest, and per service (its own grants), in order."""
    replays = replayed(requests, done)
    groups: dict[tuple[str, str], list[Request]] = {}
    for request in requests:
        if request.request_id not in done and request not in replays:
            groups.setdefault((request.manifest_hash, request.body.service), []).append(request)
    return list(groups.values())


def crashed(record: Any, exc: Exception) -> Rejection:
    """A record whose checking raised (a bug): rejected, answered if it has an id."""
    try:
        headers = decode_headers(record.headers)
    except Exception:  # headers that are not even (key, bytes) pairs
        headers = {}
    message = f"checking the record failed ({type(exc).__name__}: {exc})"[:2000]
    return Rejection(code="internal", message=message + "; an error in the worker, please "
                     "report it", record=record, headers=headers,
                     request_id=headers.get("ce_id") or None)  # fmt: skip
