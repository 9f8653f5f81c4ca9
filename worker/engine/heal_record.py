"""A heal's ledger row: written at the end of every heal (blocked and failed ones too), and by
the boot check (:mod:`worker.engine.boot_check`) for a boot it answers without a heal."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from worker.engine import ledger, ledger_intent
from worker.engine.connection import (
    DATABASE_ERRORS,
    Connection,
    connection_lost,
    database_name,
)
from worker.engine.heal_migrations import started_migrations
from worker.engine.heal_values import HealOptions, HealResult, Outcome, RequestInfo
from worker.engine.lock import advisory_locks
from worker.engine.model import Realm
from worker.errors import RETRYABLE_CODES, DatabaseUnavailable, LockWaitTimeout, SchemahealError
from worker.observability.tracing import tracer

__all__ = [
    "entry", "failed", "interrupted", "record", "served_before", "written", "written_locked",
]  # fmt: skip

log = logging.getLogger("schemaheal.heal")


async def written(
    conn: Connection, result: HealResult, request: RequestInfo, options: HealOptions,
    desired: Realm, *, started: float, intent: bool, followers: Sequence[ledger.Follower],
) -> HealResult:  # fmt: skip
    """``result`` with its ledger row and its followers' rows written (holding the schemas'
    locks when the heal got them). A result left to a later attempt (retryable) writes no
    finished row, or the retry would find it served: its intent row (``intent``), if any, is
    closed ``interrupted``. A request another worker served first (``served_before``) has its
    row already."""
    if result.error_code in RETRYABLE_CODES:
        if intent and result.error_code != DatabaseUnavailable.code:  # the locks are held
            await interrupted(conn, desired.schemas, options.ledger_schema)
        return result
    if not result.served_before:
        with tracer().start_as_current_span("schemaheal ledger write"):
            ledger_id = await record(conn, result, request, options, started, desired)
        result = replace(result, ledger_id=ledger_id)
    return await _followers(conn, result, followers, options.ledger_schema)


async def written_locked(
    conn: Connection, result: HealResult, request: RequestInfo, options: HealOptions,
    desired: Realm, *, started: float, followers: Sequence[ledger.Follower],
) -> HealResult | None:  # fmt: skip
    """:func:`written` for a result decided without the heal (the boot check's ``blocked``):
    under the schemas' locks as the heal writes its rows, after looking whether another worker
    served the request meanwhile (then that row is the answer). None: a heal or contract holds
    the locks now (the heal decides; this never waits, the batch's other boots wait for it)."""
    try:
        database = await database_name(conn)
        async with advisory_locks(conn, database, desired.schemas, max_wait_s=0):
            row = await ledger.served(conn, request.request_id, options.ledger_schema)
            result = served_before(result, row) or result
            return await written(conn, result, request, options, desired, started=started,
                                 intent=False, followers=followers)  # fmt: skip
    except LockWaitTimeout:
        return None


async def record(
    conn: Connection,
    result: HealResult,
    request: RequestInfo,
    options: HealOptions,
    started: float,
    desired: Realm,
) -> int | None:
    """Write ``result``'s ledger row (finishing its intent row when it has one); its id."""
    row = entry(result, request, started, desired)
    try:
        if result.ledger_id is not None:  # its intent row, and its statements, are written
            return await ledger_intent.finish(conn, result.ledger_id, row, options.ledger_schema)
        return await ledger.record(conn, row, options.ledger_schema)
    except DATABASE_ERRORS as exc:  # a lost connection must not hide the heal's own result
        if not connection_lost(exc):
            raise
        log.error("recording the heal in the ledger failed: %s", exc)
        return result.ledger_id


async def _followers(
    conn: Connection, result: HealResult, requests: Sequence[ledger.Follower], schema: str
) -> HealResult:
    """Write the rows of ``requests``, coalesced into ``result``'s heal, while the schemas' locks
    are held: another worker's heal of one of them then finds it served. ``result`` says whom
    another worker served already (``served_elsewhere``)."""
    if not requests or result.ledger_id is None:
        return result
    try:
        skipped = await ledger.record_served(conn, result.ledger_id, requests, schema)
    except DATABASE_ERRORS as exc:  # the replies matter more than their ledger rows
        log.error("recording coalesced requests failed: %s", exc)
        return result
    return replace(result, served_elsewhere=skipped)


async def interrupted(conn: Connection, schemas: Collection[str], schema: str) -> None:
    """Close this heal's intent row as ``interrupted`` (its statements settled from the catalog),
    as the next heal would close a dead heal's: it answers nobody, and the request is healed
    again. Holding the schemas' locks (then the only ``running`` row is this heal's)."""
    try:
        await ledger_intent.close_interrupted(conn, schemas, schema)
    except DATABASE_ERRORS as exc:  # the next heal of these schemas closes it
        log.error("closing an interrupted heal failed: %s", exc)


def entry(
    result: HealResult, request: RequestInfo, started: float, desired: Realm
) -> ledger.HealRecord:
    """``result`` as its ledger row."""
    return ledger.HealRecord(
        manifest_hash=result.manifest_hash,
        schemas=tuple(sorted(desired.schemas)),
        outcome=result.outcome.value,
        started_at=started,
        duration_s=result.duration_s,
        lock_wait_s=result.lock_wait_s,
        request_id=request.request_id,
        service=request.service,
        instance=request.instance,
        database_alias=request.database_alias,
        error_code=result.error_code,
        error_message=result.error_message,
        trace_id=request.trace_id,
        record_position=request.record_position,
        drift=tuple(
            {"kind": d.kind.value, "target": d.target, "detail": d.detail} for d in result.drift
        ),
        blocked=tuple(
            {"sql": b.statement.sql, "hazard": b.hazard.value, "reason": b.reason}
            for b in result.blocked
        ),
        statements=result.applied,
        migrations=started_migrations(result.plan, result.migrations),
    )


def served_before(result: HealResult, row: dict[str, Any] | None) -> HealResult | None:
    """The finished heal of this request id that another worker recorded while we waited for
    the locks — its outcome, not a second heal's ``unchanged``: a redelivered request gets the
    same answer whichever worker serves it."""
    if row is None:
        return None
    return replace(result, outcome=Outcome(row["outcome"]), error_code=row["error_code"],
                   error_message=row["error_message"], ledger_id=row["id"],
                   served_before=True)  # fmt: skip


def failed(result: HealResult, exc: SchemahealError) -> HealResult:
    return replace(result, outcome=Outcome.FAILED, error_code=exc.code, error_message=str(exc))
