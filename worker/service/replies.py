"""Building ``schema.healed`` replies and dead-letter headers. Pure."""

from __future__ import annotations

import json
import time
from typing import Any

from contracts.events import (
    AppliedStatementInfo,
    BlockedStatementInfo,
    DriftInfo,
    Durations,
    ErrorInfo,
    MigrationInfo,
    SchemaHealed,
)
from worker.engine.heal import HealResult
from worker.engine.results_json import result_json
from worker.secrets import redact
from worker.service.requests import Rejection, Request

MAX_MESSAGE = 4000  # an error message in a reply; the rest is in the worker's log


def from_result(
    request: Request, result: HealResult, *, leader: Request | None = None
) -> SchemaHealed:
    """The reply to ``request`` from a heal; ``leader`` is set when the heal ran for another
    request of the same (database, manifest) and this one was coalesced into it."""
    data = result_json(result)
    return SchemaHealed(
        request_id=request.request_id,
        outcome=result.outcome.value,
        service=request.body.service,
        instance=request.body.instance,
        database=request.alias,
        manifest_hash=request.manifest_hash,
        statements=[AppliedStatementInfo(**s) for s in data["applied"]],
        drift=[DriftInfo(**d) for d in data["drift"]],
        blocked=[BlockedStatementInfo(**b) for b in data["blocked"]],
        migrations=[MigrationInfo(**m) for m in data["migrations"]],
        error=_error(data["error"]["code"], data["error"]["message"]) if data["error"] else None,
        durations=Durations(
            total_ms=round(result.duration_s * 1000, 3),
            lock_wait_ms=round(result.lock_wait_s * 1000, 3),
            queue_ms=_queue_ms(request, result, time.monotonic()),
        ),
        coalesced=leader is not None,
        healed_by=leader.request_id if leader is not None else None,
        ledger_id=result.ledger_id,
    )


def coalesced(
    followers: list[Request], result: HealResult, *, leader: Request
) -> list[SchemaHealed]:
    """The replies to ``followers``, coalesced into ``leader``'s heal: :func:`from_result` of
    each, built once and copied with each one's own request, instance and queue time."""
    if not followers:
        return []
    template, now = from_result(followers[0], result, leader=leader), time.monotonic()
    return [
        template.model_copy(update={
            "request_id": f.request_id, "service": f.body.service, "instance": f.body.instance,
            "database": f.alias, "manifest_hash": f.manifest_hash,
            "durations": template.durations.model_copy(
                update={"queue_ms": _queue_ms(f, result, now)}
            ),
        })
        for f in followers
    ]  # fmt: skip


def of_group(
    leader: Request, followers: list[Request], result: HealResult,
    first_rows: dict[str, dict[str, Any]],
) -> tuple[SchemaHealed, list[SchemaHealed]]:  # fmt: skip
    """The replies to a served group (its leader's, then its followers'): from the first
    finished ledger row of each request in ``first_rows`` (another worker served it first),
    else from ``result``."""
    row = first_rows.get(leader.request_id)
    answer = from_result(leader, result) if row is None else from_ledger(leader, row)
    built = coalesced(followers, result, leader=leader)
    return answer, [
        reply if (row := first_rows.get(f.request_id)) is None else from_ledger(f, row)
        for f, reply in zip(followers, built, strict=True)
    ]


def _queue_ms(request: Request, result: HealResult, now: float) -> float:
    """How long ``request`` waited in the worker besides its heal."""
    return round((now - request.received) * 1000 - result.duration_s * 1000, 3)


def from_ledger(request: Request, row: dict[str, Any]) -> SchemaHealed:
    """The reply to a redelivered or replayed request, from its first heal's ledger row."""
    drift = row["drift"] if isinstance(row["drift"], list) else json.loads(row["drift"] or "[]")
    blocked = (
        row["blocked"] if isinstance(row["blocked"], list) else json.loads(row["blocked"] or "[]")
    )
    return SchemaHealed(
        request_id=request.request_id,
        outcome=row["outcome"],
        service=request.body.service,
        instance=request.body.instance,
        database=request.alias,
        manifest_hash=row["manifest_hash"],
        statements=[
            AppliedStatementInfo(
                ordinal=s["ordinal"],
                change=s["change"],
                sql=s["sql"],
                hazards=list(s["hazards"]),
                duration_ms=s["duration_ms"] or 0.0,  # None: confirmed after a crash, untimed
                retries=s["retries"],
            )
            for s in row["statements"]
        ],
        drift=[
            DriftInfo(
                blocking=d.get("blocking", True), **{k: d[k] for k in ("kind", "target", "detail")}
            )
            for d in drift
        ],
        blocked=[BlockedStatementInfo(**b) for b in blocked],
        error=_error(row["error_code"], row["error_message"] or "") if row["error_code"] else None,
        durations=Durations(
            total_ms=row["duration_ms"] or 0, lock_wait_ms=row["lock_wait_ms"] or 0
        ),
        from_ledger=True,
        coalesced=row["served_by"] is not None,
        ledger_id=row["id"],
    )


def from_rejection(rejection: Rejection) -> SchemaHealed:
    """The ``rejected`` reply (only for a rejection that has a request id)."""
    body = rejection.body or {}
    return SchemaHealed(
        request_id=rejection.request_id or "",
        outcome="rejected",
        service=_text(body.get("service")),
        instance=_text(body.get("instance")),
        database=_text(body.get("database")),
        error=_error(rejection.code, rejection.message),
    )


def from_failure(request: Request, code: str, message: str) -> SchemaHealed:
    """A ``failed`` reply for an error outside the heal itself (e.g. no database connection)."""
    return SchemaHealed(
        request_id=request.request_id,
        outcome="failed",
        service=request.body.service,
        instance=request.body.instance,
        database=request.alias,
        manifest_hash=request.manifest_hash,
        error=_error(code, message),
    )


def dead_letter_headers(rejection: Rejection) -> list[tuple[str, bytes | None]]:
    """The original headers, byte for byte, plus why the record was dead-lettered."""
    original = list(rejection.record.headers or ())  # null and non-UTF-8 values kept as they are
    return [*original, *_why(rejection)]


def _why(rejection: Rejection) -> list[tuple[str, bytes | None]]:
    """Why and from where a record was dead-lettered: its error and position."""
    return [
        ("x-schemaheal-error-code", rejection.code.encode()),
        ("x-schemaheal-error-message", rejection.message[:4000].encode()),
        ("x-schemaheal-original-topic", str(rejection.record.topic).encode()),
        ("x-schemaheal-original-partition", str(rejection.record.partition).encode()),
        ("x-schemaheal-original-offset", str(rejection.record.offset).encode()),
    ]


DeadLetter = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def dead_letter(rejection: Rejection, limit: int) -> DeadLetter:
    """The dead letter of ``rejection`` as (key, value, headers), whole when it fits in
    ``limit`` bytes (the producer's record limit); else truncated: the original headers are
    dropped when they alone are too large, the value is cut to what fits, and
    ``x-schemaheal-truncated`` says what was cut and how large the original was."""
    record = rejection.record
    key, value, headers = record.key, record.value, dead_letter_headers(rejection)
    if record_size(key, value, headers) <= limit:
        return key, value, headers
    value = value or b""
    if record_size(key, None, headers) > limit // 2:  # headers too large to keep: ours only
        headers = _why(rejection)
        key = key if record_size(key, None, headers) <= limit // 2 else None
    note = f"value {len(value)} bytes, headers {len(record.headers or ())}; cut to fit {limit}"
    headers = [*headers, ("x-schemaheal-truncated", note.encode())]
    room = limit - record_size(key, b"", headers)
    return key, value[: max(room, 0)], headers


def record_size(key: bytes | None, value: bytes | None, headers: list[Any]) -> int:
    """An upper bound of a record's size in a produce request: the record batch's own 61
    bytes, the record's framing (varints of at most 5 bytes each) and its contents."""
    framing = 61 + 5 * 7 + 10 * len(headers)
    contents = sum(len(k.encode()) + len(v or b"") for k, v in headers)
    return framing + len(key or b"") + len(value or b"") + contents


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 200 else None


def _error(code: str, message: str) -> ErrorInfo:
    """A reply's error; no password the worker knows can be in its message."""
    return ErrorInfo(code=code, message=redact(message)[:MAX_MESSAGE])
