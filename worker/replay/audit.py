"""Reconstructing boots from the gate's history and the ledger, and finding what disagrees. Pure.

An audit is two steps, kept apart so that no record can fall between them:

1. *everything read* — :func:`worker.replay.accounting.account` puts every record read into one
   class (request, reply, dead letter, unreadable, …);
2. *everything matched* — :func:`reconstruct` joins requests, replies and ledger rows into boots
   and asks each kind of mismatch (:mod:`worker.replay.mismatches`, one function each) about
   every value of its class.

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
    reply-without-request     a reply to a request that is not on the request topic
    unreadable-record         a record (or offsets) the replay could not read, with its position
    request-without-id        a request without ce_id: nobody could be answered
    heal-interrupted          a heal that stopped mid-apply (worker killed, connection lost)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from contracts.manifest import Manifest
from worker.replay import mismatches as kinds
from worker.replay.accounting import Accounting, Topics, account, parse_reply, parse_request
from worker.replay.events import (
    Audit,
    Boot,
    DdlEvent,
    LedgerRow,
    Mismatch,
    MismatchKind,
    Replan,
    ReplyEvent,
    RequestEvent,
    StatementRow,
    Unreadable,
    trace_id_of,
)
from worker.replay.history import Window
from worker.replay.manifest_changes import manifest_changes
from worker.replay.mismatches import EXPECTS_LEDGER_ROW, REAPPLY_PREFIX

__all__ = [
    "EXPECTS_LEDGER_ROW", "REAPPLY_PREFIX", "Accounting", "Audit", "Boot", "DdlEvent",
    "LedgerRow", "Mismatch", "MismatchKind", "Replan", "ReplyEvent", "RequestEvent",
    "StatementRow", "Topics", "Unreadable", "account", "latest_accepted", "parse_reply",
    "parse_request", "reconstruct", "trace_id_of",
]  # fmt: skip


def reconstruct(
    *,
    window: Window,
    accounting: Accounting,
    ledger: Mapping[str, Sequence[LedgerRow]],
    ddl: Iterable[DdlEvent] = (),
    replans: Iterable[Replan] = (),
    service: str | None = None,
) -> Audit:
    """Join the requests inside ``window``, replies and ledger rows (of the aliases in ``ledger``:
    the databases the replay could read) into boots, in time order, with every mismatch.
    ``service`` keeps one service's boots and mismatches only."""
    first, found = _first_requests(accounting.requests, service)
    boots = _boots(first, accounting.replies, ledger)
    for boot in boots:
        found += kinds.boot_mismatches(boot, ledger)
    ids = accounting.request_ids
    found += [m for r in accounting.replies for m in kinds.reply_without_request(r, ids)]
    rows = [row for rows in ledger.values() for row in rows if row.started_ms in window]
    reapplied = [row for row in rows if (row.request_id or "").startswith(REAPPLY_PREFIX)]
    heals = [row for row in rows if not (row.request_id or "").startswith(REAPPLY_PREFIX)]
    found += [m for row in heals for m in kinds.ledger_row_without_event(row, ids)]
    found += [m for row in rows for m in kinds.heal_interrupted(row)]
    found += [m for event in ddl for m in kinds.ddl_outside_worker(event, window)]
    found += [m for replan in replans for m in kinds.manifest_unsatisfied(replan, window)]
    found += [m for record in accounting.dead_letters for m in kinds.dead_lettered(record)]
    found += [m for u in accounting.unreadable for m in kinds.unreadable_record(u)]
    found += [m for record in accounting.without_id for m in kinds.request_without_id(record)]
    kept = [m for m in found if service is None or m.service in (None, service)]
    kept.sort(key=lambda m: (m.time_ms, m.kind.value, m.subject))
    reapplied = [row for row in reapplied if service is None or row.service == service]
    return Audit(window=window, boots=tuple(boots), mismatches=tuple(kept),
                 databases=tuple(sorted(ledger)), reapplied=tuple(reapplied),
                 read=accounting.counts())  # fmt: skip


def _first_requests(
    requests: Iterable[RequestEvent], service: str | None
) -> tuple[dict[str, RequestEvent], list[Mismatch]]:
    """The first request of each ce_id (of ``service``), and one mismatch per republication."""
    first: dict[str, RequestEvent] = {}
    found: list[Mismatch] = []
    for event in sorted(requests, key=lambda e: (e.time_ms, e.position)):
        if service is not None and event.service != service:
            continue
        if event.request_id in first:
            found += kinds.request_republished(event, first[event.request_id])
        else:
            first[event.request_id] = event
    return first, found


def _boots(
    first: Mapping[str, RequestEvent],
    replies: Iterable[ReplyEvent],
    ledger: Mapping[str, Sequence[LedgerRow]],
) -> list[Boot]:
    """Each request with its replies, its ledger row and the heal that served it."""
    by_request: dict[str, list[ReplyEvent]] = {}
    for reply in sorted(replies, key=lambda r: (r.time_ms, r.position)):
        by_request.setdefault(reply.request_id, []).append(reply)
    rows_by_request, rows_by_id = _ledger_index(ledger)
    boots: list[Boot] = []
    previous: dict[str, Manifest] = {}
    for event in first.values():
        answers = by_request.get(event.request_id, [])
        found = rows_by_request.get((event.database or "", event.request_id))
        served = found.served_by if found is not None else None
        heal = rows_by_id.get((found.database, served)) if found is not None and served else found
        prior = previous.get(event.service or "")
        if event.manifest is not None and event.service is not None:
            previous[event.service] = event.manifest
        boots.append(Boot(
            request=event, reply=answers[0] if answers else None, replies=len(answers),
            ledger=found, heal=heal, first_of_service=prior is None,
            changes=manifest_changes(prior, event.manifest) if event.manifest else (),
        ))  # fmt: skip
    return boots


def _ledger_index(
    ledger: Mapping[str, Sequence[LedgerRow]],
) -> tuple[dict[tuple[str, str], LedgerRow], dict[tuple[str, int], LedgerRow]]:
    """Rows by (alias, request id) (the first finished one: an interrupted heal answered
    nobody, its request was healed again) and by (alias, row id)."""
    by_request: dict[tuple[str, str], LedgerRow] = {}
    by_id: dict[tuple[str, int], LedgerRow] = {}
    for alias, rows in ledger.items():
        for row in sorted(rows, key=lambda r: r.id):
            by_id[(alias, row.id)] = row
            if row.request_id is not None and row.outcome not in kinds.UNFINISHED:
                by_request.setdefault((alias, row.request_id), row)  # the heal that answered
    return by_request, by_id


def latest_accepted(boots: Iterable[Boot]) -> list[Boot]:
    """The latest boot of each (database, service) that the worker let start: the manifest
    today's read-only re-plan checks."""
    latest: dict[tuple[str, str], Boot] = {}
    for boot in boots:
        event = boot.request
        if boot.outcome in ("healed", "unchanged") and event.database and event.service:
            latest[(event.database, event.service)] = boot
    return [latest[key] for key in sorted(latest)]
