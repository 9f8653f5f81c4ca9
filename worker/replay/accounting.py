"""Step one of an audit, *everything read*: every record of the history goes into exactly one
class (request, nearby request, request without ``ce_id``, reply, dead letter, unreadable), and
:func:`account` checks that none fell through. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contracts.errors import ContractError
from contracts.events import REPLY_TYPE, SchemaHealed, ServiceStarting
from contracts.validation import load_manifest, manifest_hash
from worker.replay.events import ReplyEvent, RequestEvent, Unreadable
from worker.replay.history import History, HistoryRecord, Window


@dataclass(frozen=True, slots=True, kw_only=True)
class Topics:
    request: str = "service.starting"
    reply: str = "schema.healed"
    dead_letter: str = "service.starting.dlq"


@dataclass(frozen=True, slots=True, kw_only=True)
class Accounting:
    """Every record read, each in one class."""

    read: int  # records the reader returned
    requests: tuple[RequestEvent, ...] = ()  # inside the window: the boots
    nearby: tuple[RequestEvent, ...] = ()  # read around the window, to match replies and rows
    without_id: tuple[HistoryRecord, ...] = ()  # requests nobody could answer
    replies: tuple[ReplyEvent, ...] = ()
    dead_letters: tuple[HistoryRecord, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()  # records, and offsets that could not be read
    gaps: int = 0  # how many of ``unreadable`` are offsets, not records

    @property
    def classified(self) -> int:
        parts = (self.requests, self.nearby, self.without_id, self.replies, self.dead_letters)
        return sum(map(len, parts)) + len(self.unreadable) - self.gaps

    def counts(self) -> tuple[tuple[str, int], ...]:
        """How many records of each class (offsets that could not be read apart)."""
        return (("records", self.read), ("requests", len(self.requests)),
                ("requests near the window", len(self.nearby)),
                ("requests without ce_id", len(self.without_id)),
                ("replies", len(self.replies)), ("dead letters", len(self.dead_letters)),
                ("unreadable", len(self.unreadable)))  # fmt: skip

    @property
    def request_ids(self) -> frozenset[str]:
        """Ids of every request read (never a reply's: a reply is no proof of a request)."""
        return frozenset(e.request_id for e in (*self.requests, *self.nearby))


class AccountingError(AssertionError):
    """A record fell through the classes: a bug in schemaheal, never in the data."""


def account(history: History, topics: Topics, window: Window) -> Accounting:
    """Classify every record read; raise :class:`AccountingError` if one is left over."""
    parts: dict[str, list[Any]] = {k: [] for k in ("requests", "nearby", "without_id", "replies",
                                                   "dead_letters", "unreadable")}  # fmt: skip
    for record in history.records:
        kind, value = classify(record, topics, window)
        parts[kind].append(value)
    gaps = [Unreadable(position=g.position, time_ms=window.since_ms,
                       reason="these offsets could not be read (a write the broker never "
                              "finished, a transaction marker, or records removed by retention)")
            for g in history.gaps]  # fmt: skip
    parts["unreadable"] += gaps
    found = Accounting(read=len(history.records), gaps=len(gaps),
                       **{k: tuple(v) for k, v in parts.items()})  # fmt: skip
    if found.classified != found.read:
        raise AccountingError(f"{found.read} records read, {found.classified} classified")
    return found


def classify(record: HistoryRecord, topics: Topics, window: Window) -> tuple[str, Any]:
    """The class of one record, and its value in that class."""
    if record.topic == topics.request:
        if not record.headers.get("ce_id"):
            return "without_id", record
        request = parse_request(record)
        return ("requests" if record.timestamp_ms in window else "nearby"), request
    if record.topic == topics.reply:
        reply = parse_reply(record)
        return ("replies", reply) if isinstance(reply, ReplyEvent) else ("unreadable", reply)
    if record.topic == topics.dead_letter:
        return "dead_letters", record
    return "unreadable", _unreadable(record, f"a record of topic {record.topic}, not read here")


def parse_request(record: HistoryRecord) -> RequestEvent:
    """A request record (with a ``ce_id``) as an event; a body that cannot be read stays a boot
    that says why."""
    headers = record.headers
    base: dict[str, Any] = {
        "request_id": headers.get("ce_id", ""),
        "time_ms": record.timestamp_ms,
        "position": record.position,
        "source": headers.get("ce_source"),
        "traceparent": headers.get("traceparent"),
        "key_id": headers.get("x-schemaheal-key-id"),
    }
    try:
        body = ServiceStarting.model_validate_json(record.value or b"")
    except ValueError as exc:
        return RequestEvent(**base, problem=f"unreadable body: {_first_line(exc)}")
    who: dict[str, Any] = {
        "service": body.service,
        "instance": body.instance,
        "database": body.database,
    }
    try:
        manifest = load_manifest(json.dumps(body.manifest))
    except (ContractError, ValueError) as exc:
        return RequestEvent(**base, **who, problem=f"invalid manifest: {_first_line(exc)}")
    return RequestEvent(**base, **who, manifest=manifest, manifest_hash=manifest_hash(manifest))


def parse_reply(record: HistoryRecord) -> ReplyEvent | Unreadable:
    """A reply record as an event, or why it is not one."""
    kind = record.headers.get("ce_type")
    if kind != REPLY_TYPE:
        return _unreadable(record, f"ce_type {kind!r}, not {REPLY_TYPE}")
    try:
        reply = SchemaHealed.model_validate_json(record.value or b"")
    except ValueError as exc:
        return _unreadable(record, f"not a schema.healed body: {_first_line(exc)}")
    return ReplyEvent(request_id=reply.request_id, time_ms=record.timestamp_ms,
                      position=record.position, reply=reply)  # fmt: skip


def _unreadable(record: HistoryRecord, reason: str) -> Unreadable:
    return Unreadable(position=record.position, time_ms=record.timestamp_ms, reason=reason)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0]
