"""The heal cycle: lock → inspect → plan → review → apply → verify → record → unlock.

The seed's "Inspect, Repair, Heal, Validate", done once per request instead of in every replica:
the catalog is inspected only after the schema locks are held, so a replica that waited for
another's heal finds nothing left to do; verification re-inspects and requires an empty plan;
every heal — including blocked and failed ones — is written to the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from opentelemetry import trace

import contracts
from worker.engine import fingerprint, heal_record, ledger, ledger_intent
from worker.engine.apply import AppliedStatement, apply, retrying_lock_waits
from worker.engine.changes import Drift
from worker.engine.connection import (
    DATABASE_ERRORS,
    Connection,
    database_name,
    translate,
)
from worker.engine.defaults import adopt_defaults, ask, default_questions
from worker.engine.desired import Desired, prepare
from worker.engine.diff import diff, tables_to_probe
from worker.engine.expand_changed import refuse_before_expand
from worker.engine.gcpause import paused_gc
from worker.engine.heal_migrations import (
    declares_migrations,
    registered_ids,
    registering,
    retired_uses,
    statuses,
)
from worker.engine.heal_values import HealOptions, HealResult, Outcome, RequestInfo
from worker.engine.inspect import inspect, probe_rows, table_sizes
from worker.engine.lock import advisory_locks
from worker.engine.model import Realm
from worker.engine.plan import Plan, PlanSettings, make_plan
from worker.engine.policy import review, rewritten_tables
from worker.errors import MigrationRefused, SchemahealError
from worker.observability.tracing import tracer

__all__ = ["HealOptions", "HealResult", "Outcome", "RequestInfo", "current_plan", "heal"]

T = TypeVar("T")


async def current_plan(
    conn: Connection,
    desired: Realm,
    settings: PlanSettings,
    registered: frozenset[str] | None = None,
) -> Plan:
    """Inspect and plan, probing for rows only where a NOT NULL column is about to be added;
    ``registered``: see :func:`~worker.engine.plan.make_plan`."""
    with paused_gc():
        current = await inspect(conn, desired.schemas)
        probe = tables_to_probe(current, desired)
        if probe:
            current = await probe_rows(conn, current, probe)
        questions = default_questions(current, desired)
        if questions:  # defaults spelt differently: PostgreSQL says whether they are the same
            desired = adopt_defaults(desired, await ask(conn, questions))
        changes, drift = diff(current, desired)
        return make_plan(changes, drift, settings, registered)


async def heal(
    conn: Connection,
    manifest: contracts.Manifest | Desired,
    *,
    options: HealOptions | None = None,
    request: RequestInfo | None = None,
    observe: Callable[[AppliedStatement], None] | None = None,
    followers: Sequence[ledger.Follower] = (),
) -> HealResult:
    """Heal the database behind ``conn`` towards ``manifest`` (or its :class:`Desired`, when the
    caller prepared it already); never raises for heal errors. ``followers``: requests of the
    same manifest coalesced with ``request``, recorded as served by this heal."""
    options = options or HealOptions()
    target = manifest if isinstance(manifest, Desired) else prepare(manifest)
    manifest_hash = target.manifest_hash
    attributes = {"schemaheal.manifest.hash": manifest_hash, "db.system.name": "postgresql"}
    with tracer().start_as_current_span("schemaheal heal", attributes=attributes) as span:
        result = await _heal(conn, target, options, request or RequestInfo(), observe,
                             tuple(followers))  # fmt: skip
        span.set_attributes({
            "schemaheal.outcome": result.outcome.value,
            "schemaheal.statements.count": len(result.applied),
            "schemaheal.drift.count": len(result.drift),
        })  # fmt: skip
        if result.outcome is Outcome.FAILED:
            span.set_status(trace.Status(trace.StatusCode.ERROR, result.error_message))
            span.set_attribute("error.type", result.error_code or "failed")
        return replace(result, span=span.get_span_context())


async def _heal(
    conn: Connection,
    target: Desired,
    options: HealOptions,
    request: RequestInfo,
    observe: Callable[[AppliedStatement], None] | None,
    followers: tuple[ledger.Follower, ...],
) -> HealResult:
    started, clock = time.time(), time.perf_counter()
    desired, manifest_hash = target.realm, target.manifest_hash
    result = HealResult(
        outcome=Outcome.FAILED, manifest_hash=manifest_hash, plan=Plan(statements=())
    )
    intent: list[int] = []  # the ledger row written before applying, if any

    async def intend(plan: Plan) -> int | None:
        if not options.record:
            return None
        entry = heal_record.entry(replace(result, plan=plan), request, started, desired)
        schema = options.ledger_schema
        intent.append(await ledger_intent.begin(conn, entry, plan.statements, schema))
        return intent[-1]

    recorded: list[HealResult] = []

    async def finish(result: HealResult) -> HealResult:
        """The result with its duration and ledger row, and its followers' rows: written while
        the schemas' locks are still held when the heal got them, so the next heal never reads
        it as ``running``, nor any of them as not served."""
        result = replace(result, duration_s=time.perf_counter() - clock,
                         ledger_id=intent[-1] if intent else result.ledger_id)  # fmt: skip
        if options.record:
            result = await heal_record.written(conn, result, request, options, desired,
                                               started=started, intent=bool(intent),
                                               followers=followers)  # fmt: skip
        recorded.append(result)
        return result

    try:
        database = await database_name(conn)
        if options.record:
            await ledger.ensure_ledger(conn, database, options.ledger_schema)
        async with advisory_locks(
            conn, database, desired.schemas, max_wait_s=options.lock_wait_s
        ) as waited:
            try:
                before = None
                if options.record:  # a heal of these schemas that died: closed before healing
                    await ledger_intent.close_interrupted(conn, desired.schemas,
                                                          options.ledger_schema)  # fmt: skip
                    row = await ledger.served(conn, request.request_id, options.ledger_schema)
                    before = heal_record.served_before(result, row)
                result = before or await _locked(conn, desired, manifest_hash, options, observe,
                                                 waited, intend)  # fmt: skip
            except SchemahealError as exc:
                result = heal_record.failed(result, exc)
            except DATABASE_ERRORS as exc:
                result = heal_record.failed(result, translate(exc, "healing"))
            return await finish(result)
    except SchemahealError as exc:
        if recorded:  # the ledger row is written; unlocking failed afterwards
            return recorded[-1]
        result = heal_record.failed(result, exc)
    except DATABASE_ERRORS as exc:
        if recorded:
            return recorded[-1]
        result = heal_record.failed(result, translate(exc, "healing"))
    return await finish(result)


async def _locked(
    conn: Connection,
    desired: Realm,
    manifest_hash: str,
    options: HealOptions,
    observe: Callable[[AppliedStatement], None] | None,
    waited: float,
    intend: Callable[[Plan], Awaitable[int | None]],
) -> HealResult:
    timings = {"lock_wait": waited}
    now = time.time_ns()
    tracer().start_span("schemaheal lock wait", start_time=now - int(waited * 1e9)).end(now)
    mark = time.perf_counter()
    retired = await retired_uses(conn, desired, options.ledger_schema)
    if retired:  # before the fingerprint: an old version's schema may well be unchanged
        return HealResult(
            outcome=Outcome.BLOCKED,
            manifest_hash=manifest_hash,
            plan=Plan(statements=()),
            lock_wait_s=waited,
            timings=timings,
            error_code="version-retired",
            error_message="; ".join(retired),
        )
    known = await _known(conn, desired, manifest_hash, options)
    # nothing changed since verified (a manifest migrating columns is planned every time: the
    # reply says where its migrations stand)
    if known is not None and fingerprint.trusted(known) and not declares_migrations(desired):
        timings["fingerprint"] = time.perf_counter() - mark
        plan = Plan(statements=(), drift=known.drift)
        return HealResult(outcome=Outcome.UNCHANGED, manifest_hash=manifest_hash, plan=plan,
                          lock_wait_s=waited, timings=timings)  # fmt: skip
    # one lock budget for the whole heal: inspection, sizes, statements and verification
    deadline = time.monotonic() + options.retry.budget_s

    def bounded(doing: str, work: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        return retrying_lock_waits(work, doing=doing, deadline=deadline, retry=options.retry)

    with tracer().start_as_current_span("schemaheal inspect and plan") as planning:
        known_ids = await registered_ids(conn, desired, options.ledger_schema)
        plan = await bounded(
            "inspecting the catalog",
            lambda: current_plan(conn, desired, options.plan, known_ids),
        )
        planning.set_attribute("schemaheal.statements.count", len(plan.statements))
    timings["inspect_plan"] = time.perf_counter() - mark
    base = HealResult(
        outcome=Outcome.UNCHANGED,
        manifest_hash=manifest_hash,
        plan=plan,
        lock_wait_s=waited,
        timings=timings,
    )
    sizes = await bounded(
        "measuring tables to rewrite", lambda: table_sizes(conn, rewritten_tables(plan))
    )
    blocked = review(plan, options.policy, sizes)
    if blocked:
        return replace(
            base,
            outcome=Outcome.BLOCKED,
            blocked=blocked,
            error_code="needs-approval",
            error_message=f"{len(blocked)} statement(s) need approval",
        )
    try:  # a migration changing a running one, or whose swap would fail: nothing runs
        await refuse_before_expand(conn, plan, options.ledger_schema)
    except MigrationRefused as exc:
        return heal_record.failed(base, exc)
    applied: list[AppliedStatement] = []
    # the intent goes to the ledger before the first statement, each statement as it commits
    intent = await intend(plan) if plan.statements else None
    progress = (
        None if intent is None else ledger_intent.progress(conn, intent, options.ledger_schema)
    )
    progress = await registering(conn, plan, progress, options.ledger_schema)
    try:
        mark = time.perf_counter()
        with tracer().start_as_current_span("schemaheal apply"):
            observer = _collect(applied, observe)
            applied = await apply(conn, plan, retry=options.retry, observe=observer,
                                  deadline=deadline, progress=progress)  # fmt: skip
        timings["apply"] = time.perf_counter() - mark
    except SchemahealError as exc:
        return heal_record.failed(replace(base, applied=tuple(applied)), exc)
    mark = time.perf_counter()
    # Verify by inspecting again — unless nothing ran: then the plan just made is the proof.
    if applied:
        known = await _known(conn, desired, manifest_hash, options, read_only=True)
        with tracer().start_as_current_span("schemaheal verify"):
            remaining = await bounded(
                "verifying", lambda: current_plan(conn, desired, options.plan)
            )
    else:
        remaining = plan
    timings["verify"] = time.perf_counter() - mark
    result = replace(base, applied=tuple(applied), remaining=remaining)
    if not remaining.empty:
        return replace(
            result,
            outcome=Outcome.FAILED,
            error_code="verify-failed",
            error_message=f"verifying: {len(remaining.statements)} statement(s) "
            "still planned after applying; see the ledger",
        )
    if remaining.blocking_drift:
        return replace(
            result,
            outcome=Outcome.BLOCKED,
            error_code="unresolved-drift",
            error_message=f"{len(remaining.blocking_drift)} difference(s) need a "
            "person: " + "; ".join(f"{d.target}: {d.detail}" for d in remaining.blocking_drift),
        )
    await _remember(conn, known, manifest_hash, remaining.drift, options)
    migrations = await statuses(conn, remaining.migrations, options.ledger_schema, options.contract)
    outcome = Outcome.HEALED if applied else Outcome.UNCHANGED
    return replace(result, outcome=outcome, migrations=migrations)


async def _known(
    conn: Connection,
    desired: Realm,
    manifest_hash: str,
    options: HealOptions,
    *,
    read_only: bool = False,
) -> fingerprint.Known | None:
    """The catalog's fingerprint (with the last verification, unless ``read_only``); None when
    heals are not recorded: the verification is stored next to the ledger."""
    if not options.record:
        return None
    if read_only:
        return fingerprint.Known(current=await fingerprint.read(conn, desired.schemas))
    key = fingerprint.engine_key(manifest_hash)
    with tracer().start_as_current_span("schemaheal fingerprint"):
        return await fingerprint.check(conn, desired.schemas, key, options.ledger_schema)


async def _remember(
    conn: Connection,
    known: fingerprint.Known | None,
    manifest_hash: str,
    drift: tuple[Drift, ...],
    options: HealOptions,
) -> None:
    """Store the fingerprint taken before the inspection that proved the manifest satisfied."""
    if known is not None:
        await fingerprint.store(conn, key=fingerprint.engine_key(manifest_hash),
                                manifest_hash=manifest_hash, taken=known.current, drift=drift,
                                ledger_schema=options.ledger_schema)  # fmt: skip


def _collect(
    applied: list[AppliedStatement], observe: Callable[[AppliedStatement], None] | None
) -> Callable[[AppliedStatement], None]:
    """Keep what ran even when a later statement fails, and pass it on to the observer."""

    def collect(statement: AppliedStatement) -> None:
        applied.append(statement)
        if observe is not None:
            observe(statement)

    return collect
