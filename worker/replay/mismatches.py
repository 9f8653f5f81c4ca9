"""One small function per kind of mismatch. Pure; each takes what it judges and returns the
mismatches it finds (none, or one, for a single value)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from worker.replay.events import (
    Boot,
    DdlEvent,
    LedgerRow,
    Mismatch,
    MismatchKind,
    Replan,
    ReplyEvent,
    RequestEvent,
    Unreadable,
)
from worker.replay.history import HistoryRecord, Window

#: Request ids of heals that ``replay --reapply`` ran: ``replay-of:<original ce_id>:<uuid>``.
REAPPLY_PREFIX = "replay-of:"
EXPECTS_LEDGER_ROW = frozenset({"healed", "unchanged", "blocked"})
#: Ledger outcomes of heals that did not finish (``worker.engine.ledger``): they answered nobody.
UNFINISHED = frozenset({"running", "interrupted"})


def _about(event: RequestEvent, kind: MismatchKind, detail: str) -> list[Mismatch]:
    return [Mismatch(kind=kind, time_ms=event.time_ms, subject=event.request_id, detail=detail,
                     database=event.database, service=event.service)]  # fmt: skip


def request_republished(event: RequestEvent, first: RequestEvent) -> list[Mismatch]:
    return _about(event, MismatchKind.REQUEST_REPUBLISHED,
                  f"published again at {event.position} (first at {first.position}): a replay, "
                  "or a client retry that reused its ce_id")  # fmt: skip


def request_without_reply(boot: Boot) -> list[Mismatch]:
    if boot.reply is not None:
        return []
    event = boot.request
    return _about(event, MismatchKind.REQUEST_WITHOUT_REPLY,
                  f"no reply to the request at {event.position}")  # fmt: skip


def reply_without_ledger_row(boot: Boot, ledgers_read: Collection[str]) -> list[Mismatch]:
    if boot.reply is None or boot.ledger is not None or boot.request.database not in ledgers_read:
        return []
    reply = boot.reply.reply
    if reply.outcome not in EXPECTS_LEDGER_ROW and reply.ledger_id is None:
        return []
    return _about(boot.request, MismatchKind.REPLY_WITHOUT_LEDGER_ROW,
                  f"the reply says {reply.outcome} (ledger id {reply.ledger_id}) and the ledger "
                  "has no row for this request")  # fmt: skip


def outcome_differs(boot: Boot) -> list[Mismatch]:
    if boot.reply is None or boot.ledger is None:
        return []
    said, row = boot.reply.reply.outcome, boot.ledger
    if said == row.outcome:
        return []
    return _about(boot.request, MismatchKind.OUTCOME_DIFFERS,
                  f"the reply says {said}, ledger #{row.id} says {row.outcome}")  # fmt: skip


def reply_without_request(reply: ReplyEvent, request_ids: Collection[str]) -> list[Mismatch]:
    if reply.request_id in request_ids:
        return []
    said = reply.reply
    return [Mismatch(kind=MismatchKind.REPLY_WITHOUT_REQUEST, time_ms=reply.time_ms,
                     database=said.database, service=said.service, subject=reply.request_id,
                     detail=f"a {said.outcome} reply at {reply.position} answers a request "
                            "that is not on the request topic near the window (a lost request, "
                            "or one answered long after it was made)")]  # fmt: skip


def ledger_row_without_event(row: LedgerRow, request_ids: Collection[str]) -> list[Mismatch]:
    if row.request_id is not None and row.request_id in request_ids:
        return []
    how = (
        "run from the command line (schemaheal heal), not through the gate"
        if row.request_id is None
        else f"request {row.request_id} is not on the topics in this window"
    )
    return [Mismatch(kind=MismatchKind.LEDGER_ROW_WITHOUT_EVENT, time_ms=row.started_ms,
                     database=row.database, service=row.service, subject=f"ledger #{row.id}",
                     detail=f"{row.outcome} heal of {row.manifest_hash[:12]}, {how}")]  # fmt: skip


def heal_interrupted(row: LedgerRow) -> list[Mismatch]:
    if row.outcome not in UNFINISHED:
        return []
    how = (
        "closed by the next heal of its schemas"
        if row.outcome == "interrupted"
        else "still marked running: its worker died and no heal of its schemas has run since, "
        "or it is running now"
    )
    ran = "; ".join(s.sql.splitlines()[0][:80] for s in row.statements[:5])
    # committed, but its row was not written before the heal stopped: the catalog showed it
    confirmed = [s.sql.splitlines()[0] for s in row.statements if s.state == "confirmed"]
    if confirmed:
        how += f"; {len(confirmed)} confirmed from the catalog: " + "; ".join(confirmed)
    return [Mismatch(kind=MismatchKind.HEAL_INTERRUPTED, time_ms=row.started_ms,
                     database=row.database, service=row.service, subject=f"ledger #{row.id}",
                     detail=f"a heal of {row.manifest_hash[:12]} for request {row.request_id} "
                            f"stopped mid-apply after {len(row.statements)} committed "
                            f"statement(s) ({how})" + (f": {ran}" if ran else ""))]  # fmt: skip


def ddl_outside_worker(event: DdlEvent, window: Window) -> list[Mismatch]:
    if event.time_ms not in window or event.by_worker:
        return []
    return [Mismatch(kind=MismatchKind.DDL_OUTSIDE_WORKER, time_ms=event.time_ms,
                     database=event.database, subject=event.object or event.command,
                     detail=f"{event.command} by {event.user} "
                            f"(application {event.application or 'unnamed'!r})")]  # fmt: skip


def manifest_unsatisfied(replan: Replan, window: Window) -> list[Mismatch]:
    if replan.satisfied:
        return []
    # Changes by name, not their SQL: an auditor reads what is missing, `plan` shows how
    what = [*replan.changes[:5], *replan.blocking_drift[:3]]
    more = len(replan.changes) + len(replan.blocking_drift) - len(what)
    return [Mismatch(kind=MismatchKind.MANIFEST_UNSATISFIED, time_ms=window.until_ms,
                     database=replan.database, service=replan.service, subject=replan.request_id,
                     detail=f"today the database needs {len(replan.statements)} statement(s) and "
                            f"has {len(replan.blocking_drift)} blocking drift for manifest "
                            f"{replan.manifest_hash[:12]}: " + "; ".join(what)
                            + (f"; … {more} more" if more > 0 else ""))]  # fmt: skip


def dead_lettered(record: HistoryRecord) -> list[Mismatch]:
    code = record.headers.get("x-schemaheal-error-code", "unknown")
    message = record.headers.get("x-schemaheal-error-message", "")
    return [Mismatch(kind=MismatchKind.DEAD_LETTERED, time_ms=record.timestamp_ms,
                     database=(record.key or b"").decode("utf-8", "replace") or None,
                     subject=record.headers.get("ce_id") or record.position,
                     detail=f"{code}: {message[:300]}")]  # fmt: skip


def unreadable_record(unreadable: Unreadable) -> list[Mismatch]:
    return [Mismatch(kind=MismatchKind.UNREADABLE_RECORD, time_ms=unreadable.time_ms,
                     database=None, subject=unreadable.position,
                     detail=unreadable.reason)]  # fmt: skip


def request_without_id(record: HistoryRecord) -> list[Mismatch]:
    return [Mismatch(kind=MismatchKind.REQUEST_WITHOUT_ID, time_ms=record.timestamp_ms,
                     database=(record.key or b"").decode("utf-8", "replace") or None,
                     subject=record.position,
                     detail="a request without a ce_id header: nobody can be answered, so the "
                            "worker dead-letters it; fix the client that sent it")]  # fmt: skip


def boot_mismatches(boot: Boot, ledger: Mapping[str, Sequence[LedgerRow]]) -> list[Mismatch]:
    """What one boot's request, reply and ledger row disagree on."""
    return [*request_without_reply(boot), *reply_without_ledger_row(boot, ledger),
            *outcome_differs(boot)]  # fmt: skip
