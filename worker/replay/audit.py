"""Reconstructing boots from the gate's history and the ledger, and finding what disagrees. Pure.

A *boot* is one ``service.starting`` request, with the ``schema.healed`` reply that answered it and
the ledger row of the heal that served it. A *mismatch* is anything an auditor must look at:

    request-without-reply     nobody answered (the worker was down, or lost it)
    request-republished       the same ce_id was published again from another record
    reply-without-ledger-row  the worker said it healed, and the database has no record of it
    outcome-differs           the reply and the ledger disagree on how the heal ended
    ledger-row-without-event  a heal the topics have no request for (the CLI, or a lost event)
    ddl-outside-worker        the DDL log shows a schema change by someone else
    manifest-unsatisfied      the database no longer satisfies the latest manifest (re-plan)
    dead-lettered             a record the worker could not serve
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts.errors import ContractError
from contracts.events import REPLY_TYPE, SchemaHealed, ServiceStarting
from contracts.manifest import Manifest
from contracts.validation import load_manifest, manifest_hash
from worker.replay.history import HistoryRecord, Window
from worker.replay.manifest_changes import manifest_changes

#: Request ids of heals that ``replay --reapply`` ran: ``replay-of:<original ce_id>:<uuid>``.
REAPPLY_PREFIX = "replay-of:"
EXPECTS_LEDGER_ROW = frozenset({"healed", "unchanged", "blocked"})


class MismatchKind(StrEnum):
    REQUEST_WITHOUT_REPLY = "request-without-reply"
    REQUEST_REPUBLISHED = "request-republished"
    REPLY_WITHOUT_LEDGER_ROW = "reply-without-ledger-row"
    OUTCOME_DIFFERS = "outcome-differs"
    LEDGER_ROW_WITHOUT_EVENT = "ledger-row-without-event"
    DDL_OUTSIDE_WORKER = "ddl-outside-worker"
    MANIFEST_UNSATISFIED = "manifest-unsatisfied"
    DEAD_LETTERED = "dead-lettered"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEvent:
    request_id: str
    time_ms: int
    position: str
    service: str | None = None
    instance: str | None = None
    database: str | None = None
    source: str | None = None
    traceparent: str | None = None
    key_id: str | None = None  # the signing key, when signed
    manifest: Manifest | None = None
    manifest_hash: str | None = None
    problem: str | None = None  # why the body could not be read

    @property
    def trace_id(self) -> str | None:
        return trace_id_of(self.traceparent)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyEvent:
    request_id: str
    time_ms: int
    position: str
    reply: SchemaHealed


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementRow:
    ordinal: int
    change: str
    sql: str
    hazards: tuple[str, ...]
    duration_ms: float
    retries: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerRow:
    id: int
    database: str  # the alias the replay read it from
    request_id: str | None
    service: str | None
    instance: str | None
    outcome: str
    manifest_hash: str
    started_ms: int
    duration_ms: float
    lock_wait_ms: float | None
    served_by: int | None
    trace_id: str | None
    error_message: str | None = None
    statements: tuple[StatementRow, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DdlEvent:
    """One row of the optional DDL log (``deploy/ddl-audit.sql``)."""

    database: str
    time_ms: int
    user: str
    application: str
    command: str
    object: str

    @property
    def by_worker(self) -> bool:
        return self.application.startswith("schemaheal")


@dataclass(frozen=True, slots=True, kw_only=True)
class Replan:
    """A read-only re-plan today of one (database, service)'s latest manifest in the window."""

    database: str
    service: str
    request_id: str
    manifest_hash: str
    statements: tuple[str, ...]
    #: what the statements would do, one short name per change (``AddColumn public.t.c``)
    changes: tuple[str, ...]
    blocking_drift: tuple[str, ...]

    @property
    def satisfied(self) -> bool:
        return not self.statements and not self.blocking_drift


@dataclass(frozen=True, slots=True, kw_only=True)
class Boot:
    request: RequestEvent
    reply: ReplyEvent | None = None
    replies: int = 0  # replies seen (more than one: the request was redelivered)
    ledger: LedgerRow | None = None
    heal: LedgerRow | None = None  # the row whose statements ran (the leader's, if coalesced)
    changes: tuple[str, ...] = ()  # since this service's previous manifest in the window
    first_of_service: bool = False

    @property
    def outcome(self) -> str:
        if self.reply is not None:
            return self.reply.reply.outcome
        return self.ledger.outcome if self.ledger is not None else "no reply"

    @property
    def statements(self) -> tuple[StatementRow, ...]:
        if self.heal is not None and self.heal.statements:
            return self.heal.statements
        if self.reply is None:
            return ()
        return tuple(
            StatementRow(ordinal=s.ordinal, change=s.change, sql=s.sql, hazards=tuple(s.hazards),
                         duration_ms=s.duration_ms, retries=s.retries)
            for s in self.reply.reply.statements
        )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Mismatch:
    kind: MismatchKind
    time_ms: int
    database: str | None
    subject: str  # a request id, a ledger id, an object
    detail: str
    service: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    window: Window
    boots: tuple[Boot, ...]
    mismatches: tuple[Mismatch, ...]
    databases: tuple[str, ...] = ()  # aliases whose ledger was read
    reapplied: tuple[LedgerRow, ...] = ()  # heals an earlier ``replay --reapply`` ran
    notes: tuple[str, ...] = field(default=())


def trace_id_of(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def parse_request(record: HistoryRecord) -> RequestEvent | None:
    """A request record as an event; None when it has no ``ce_id`` (nobody could be answered)."""
    headers = record.headers
    request_id = headers.get("ce_id")
    if not request_id:
        return None
    base: dict[str, Any] = {
        "request_id": request_id,
        "time_ms": record.timestamp_ms,
        "position": record.position,
        "source": headers.get("ce_source"),
        "traceparent": headers.get("traceparent"),
        "key_id": headers.get("x-schemaheal-key-id"),
    }
    try:
        body = ServiceStarting.model_validate_json(record.value or b"")
    except ValueError as exc:
        return RequestEvent(**base, problem=f"unreadable body: {str(exc).splitlines()[0]}")
    who: dict[str, Any] = {
        "service": body.service,
        "instance": body.instance,
        "database": body.database,
    }
    try:
        manifest = load_manifest(json.dumps(body.manifest))
    except (ContractError, ValueError) as exc:
        return RequestEvent(**base, **who, problem=f"invalid manifest: {str(exc).splitlines()[0]}")
    return RequestEvent(**base, **who, manifest=manifest, manifest_hash=manifest_hash(manifest))


def parse_reply(record: HistoryRecord) -> ReplyEvent | None:
    """A reply record as an event; None for anything that is not a readable reply."""
    if record.headers.get("ce_type") != REPLY_TYPE:
        return None
    try:
        reply = SchemaHealed.model_validate_json(record.value or b"")
    except ValueError:
        return None
    return ReplyEvent(
        request_id=reply.request_id,
        time_ms=record.timestamp_ms,
        position=record.position,
        reply=reply,
    )


def reconstruct(
    *,
    window: Window,
    requests: Iterable[RequestEvent],
    replies: Iterable[ReplyEvent],
    ledger: Mapping[str, Sequence[LedgerRow]],
    ddl: Iterable[DdlEvent] = (),
    replans: Iterable[Replan] = (),
    dead_letters: Iterable[HistoryRecord] = (),
    service: str | None = None,
) -> Audit:
    """Join requests (inside ``window``), replies and ledger rows (of the aliases in
    ``ledger``: the databases the replay could read) into boots, in time order, with every
    mismatch. ``service`` keeps one service's boots and mismatches only."""
    first: dict[str, RequestEvent] = {}
    mismatches: list[Mismatch] = []
    for event in sorted(requests, key=lambda e: (e.time_ms, e.position)):
        if service is not None and event.service != service:
            continue
        if event.request_id in first:
            mismatches.append(Mismatch(
                kind=MismatchKind.REQUEST_REPUBLISHED, time_ms=event.time_ms,
                database=event.database, service=event.service, subject=event.request_id,
                detail=f"published again at {event.position} (first at "
                       f"{first[event.request_id].position}): a replay, or a client retry "
                       "that reused its ce_id",
            ))  # fmt: skip
            continue
        first[event.request_id] = event
    reply_by_id: dict[str, list[ReplyEvent]] = {}
    for reply in sorted(replies, key=lambda r: (r.time_ms, r.position)):
        reply_by_id.setdefault(reply.request_id, []).append(reply)
    rows_by_request: dict[tuple[str, str], LedgerRow] = {}
    rows_by_id: dict[tuple[str, int], LedgerRow] = {}
    for alias, rows in ledger.items():
        for row in sorted(rows, key=lambda r: r.id):
            rows_by_id[(alias, row.id)] = row
            if row.request_id is not None:
                rows_by_request.setdefault((alias, row.request_id), row)

    boots: list[Boot] = []
    previous: dict[str, Manifest] = {}
    for event in first.values():
        answers = reply_by_id.get(event.request_id, [])
        answer = answers[0] if answers else None
        found = rows_by_request.get((event.database or "", event.request_id))
        served = found.served_by if found is not None else None
        heal = rows_by_id.get((found.database, served)) if found and served else found
        prior = previous.get(event.service or "")
        if event.manifest is not None and event.service is not None:
            previous[event.service] = event.manifest
        boots.append(Boot(
            request=event, reply=answer, replies=len(answers), ledger=found, heal=heal,
            changes=manifest_changes(prior, event.manifest) if event.manifest else (),
            first_of_service=prior is None,
        ))  # fmt: skip
        mismatches += _boot_mismatches(boots[-1], ledger)

    seen_ids = set(first) | set(reply_by_id)
    reapplied: list[LedgerRow] = []
    for alias, rows in ledger.items():
        for row in rows:
            if row.started_ms not in window or (service is not None and row.service != service):
                continue
            if (row.request_id or "").startswith(REAPPLY_PREFIX):
                reapplied.append(row)
                continue
            if row.request_id is None or row.request_id not in seen_ids:
                how = (
                    "run from the command line (schemaheal heal), not through the gate"
                    if row.request_id is None
                    else f"request {row.request_id} is not on the topics in this window"
                )
                mismatches.append(Mismatch(
                    kind=MismatchKind.LEDGER_ROW_WITHOUT_EVENT, time_ms=row.started_ms,
                    database=alias, service=row.service, subject=f"ledger #{row.id}",
                    detail=f"{row.outcome} heal of {row.manifest_hash[:12]}, {how}",
                ))  # fmt: skip
    for ddl_event in ddl:
        if ddl_event.time_ms in window and not ddl_event.by_worker:
            mismatches.append(Mismatch(
                kind=MismatchKind.DDL_OUTSIDE_WORKER, time_ms=ddl_event.time_ms,
                database=ddl_event.database, subject=ddl_event.object or ddl_event.command,
                detail=f"{ddl_event.command} by {ddl_event.user} "
                       f"(application {ddl_event.application or 'unnamed'!r})",
            ))  # fmt: skip
    for replan in replans:
        if replan.satisfied or (service is not None and replan.service != service):
            continue
        # Changes by name, not their SQL: an auditor reads what is missing, `plan` shows how
        what = [*replan.changes[:5], *replan.blocking_drift[:3]]
        more = len(replan.changes) + len(replan.blocking_drift) - len(what)
        mismatches.append(Mismatch(
            kind=MismatchKind.MANIFEST_UNSATISFIED, time_ms=window.until_ms,
            database=replan.database, service=replan.service, subject=replan.request_id,
            detail=f"today the database needs {len(replan.statements)} statement(s) and has "
                   f"{len(replan.blocking_drift)} blocking drift for manifest "
                   f"{replan.manifest_hash[:12]}: " + "; ".join(what)
                   + (f"; … {more} more" if more > 0 else ""),
        ))  # fmt: skip
    for record in dead_letters:
        code = record.headers.get("x-schemaheal-error-code", "unknown")
        message = record.headers.get("x-schemaheal-error-message", "")
        mismatches.append(Mismatch(
            kind=MismatchKind.DEAD_LETTERED, time_ms=record.timestamp_ms,
            database=(record.key or b"").decode("utf-8", "replace") or None,
            subject=record.headers.get("ce_id") or record.position,
            detail=f"{code}: {message[:300]}",
        ))  # fmt: skip
    mismatches.sort(key=lambda m: (m.time_ms, m.kind.value, m.subject))
    return Audit(
        window=window,
        boots=tuple(boots),
        mismatches=tuple(mismatches),
        databases=tuple(sorted(ledger)),
        reapplied=tuple(reapplied),
    )


def _boot_mismatches(boot: Boot, ledger: Mapping[str, Sequence[LedgerRow]]) -> list[Mismatch]:
    event = boot.request

    def mismatch(kind: MismatchKind, detail: str) -> list[Mismatch]:
        where = {"database": event.database, "service": event.service}
        return [Mismatch(kind=kind, time_ms=event.time_ms, subject=event.request_id,
                         detail=detail, **where)]  # fmt: skip

    if boot.reply is None:
        return mismatch(
            MismatchKind.REQUEST_WITHOUT_REPLY, f"no reply to the request at {event.position}"
        )
    reply = boot.reply.reply
    if event.database not in ledger:
        return []  # this replay cannot read that database's ledger
    expects_row = reply.outcome in EXPECTS_LEDGER_ROW or reply.ledger_id is not None
    if boot.ledger is None and expects_row:
        return mismatch(
            MismatchKind.REPLY_WITHOUT_LEDGER_ROW,
            f"the reply says {reply.outcome} (ledger id {reply.ledger_id}) and the ledger has "
            "no row for this request",
        )
    if boot.ledger is not None and boot.ledger.outcome != reply.outcome:
        return mismatch(
            MismatchKind.OUTCOME_DIFFERS,
            f"the reply says {reply.outcome}, ledger #{boot.ledger.id} says {boot.ledger.outcome}",
        )
    return []


def latest_accepted(boots: Iterable[Boot]) -> list[Boot]:
    """The latest boot of each (database, service) that the worker let start: the manifest
    today's read-only re-plan checks."""
    latest: dict[tuple[str, str], Boot] = {}
    for boot in boots:
        event = boot.request
        if boot.outcome in ("healed", "unchanged") and event.database and event.service:
            latest[(event.database, event.service)] = boot
    return [latest[key] for key in sorted(latest)]
