"""The values of an audit: events read from the topics, ledger rows, boots and mismatches."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from contracts.events import SchemaHealed
from contracts.manifest import Manifest
from worker.replay.history import Window

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
    REPLY_WITHOUT_REQUEST = "reply-without-request"
    UNREADABLE_RECORD = "unreadable-record"
    REQUEST_WITHOUT_ID = "request-without-id"
    HEAL_INTERRUPTED = "heal-interrupted"


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
    duration_ms: float | None  # None: not timed (confirmed from the catalog after a crash)
    retries: int
    #: ``applied``, or ``confirmed``: found in the catalog after its heal was interrupted
    state: str = "applied"


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
    #: the online migrations the heal started (kind, table, column, from, type, phase); none
    #: in a ledger from before layout 4
    migrations: tuple[dict[str, Any], ...] = ()


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
class MigrationRow:
    """An online column migration's progress record (``<ledger schema>.migrations``), as read."""

    database: str
    id: str
    kind: str
    target: str  # schema.table.column
    state: str  # backfilling, enforcing, expanded
    batches: int
    rows_touched: int
    enforce_steps: int
    error: str | None
    registered_ms: int
    updated_ms: int
    finished_ms: int | None
    #: how far contract got (from the contracts record); None: not begun
    contract: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    window: Window
    boots: tuple[Boot, ...]
    mismatches: tuple[Mismatch, ...]
    databases: tuple[str, ...] = ()  # aliases whose ledger was read
    reapplied: tuple[LedgerRow, ...] = ()  # heals an earlier ``replay --reapply`` ran
    notes: tuple[str, ...] = field(default=())
    read: tuple[tuple[str, int], ...] = ()  # records read, by class (the accounting)
    migrations: tuple[MigrationRow, ...] = ()  # online migrations of the databases read


def trace_id_of(traceparent: str | None) -> str | None:
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Unreadable:
    """A record (or a range of offsets) the replay could not read as what its topic holds."""

    position: str
    time_ms: int
    reason: str
