"""What ``replay`` reads from each database — ledger rows, the optional DDL log, a read-only
re-plan — and, only with ``--reapply``, a heal through the normal path.

Reads go over connections opened with ``default_transaction_read_only``: PostgreSQL itself
refuses any write a bug might attempt. A re-applied heal is a new trace whose root span links to
the original request's trace (it is not that trace's child: the boot it served ended long ago).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind

from contracts.identifiers import quote_ident
from worker.engine import backfill_store
from worker.engine.changes import describe
from worker.engine.connection import Connection, relation_exists
from worker.engine.contract import ContractSettings
from worker.engine.contract_reason import Expand, Liveness, contract_reason
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, HealResult, RequestInfo, current_plan, heal
from worker.engine.heal_migrations import read_liveness
from worker.engine.ledger import ran
from worker.engine.plan import PlanSettings
from worker.observability.tracing import context_from_headers, tracer
from worker.replay.audit import REAPPLY_PREFIX, Boot, DdlEvent, LedgerRow, Replan, StatementRow
from worker.replay.events import MigrationRow
from worker.replay.history import Window
from worker.replay.migrations_report import contract_progress

#: Where ``deploy/ddl-audit.sql`` keeps its log (not in the ledger's schema: the worker owns that).
DDL_LOG_SCHEMA = "schemaheal_audit"


async def read_ledger(
    conn: Connection, schema: str, alias: str, window: Window, request_ids: Iterable[str]
) -> list[LedgerRow]:
    """Ledger rows that started in ``window`` or answer one of ``request_ids``, with the
    statements of each (and of the heals coalesced rows point to). No ledger: no rows."""
    if not await relation_exists(conn, f"{schema}.heals"):
        return []
    s = quote_ident(schema)
    rows = await conn.fetch(
        f"""SELECT h.*, floor(extract(epoch FROM h.started_at) * 1000)::bigint AS started_ms
            FROM {s}.heals h
            WHERE (h.started_at >= $1 AND h.started_at < $2) OR h.request_id = ANY($3::text[])
               OR h.id IN (SELECT served_by FROM {s}.heals
                           WHERE request_id = ANY($3::text[]) AND served_by IS NOT NULL)
            ORDER BY h.id""",
        _at(window.since_ms),
        _at(window.until_ms),
        sorted(set(request_ids)),
    )
    statements: dict[int, list[StatementRow]] = {}
    for st in await conn.fetch(
        f"SELECT * FROM {s}.statements WHERE heal_id = ANY($1::bigint[]) ORDER BY heal_id, ordinal",
        [row["id"] for row in rows],
    ):
        if not ran(st):  # planned, and the heal failed or stopped before it: it did not run
            continue
        statements.setdefault(st["heal_id"], []).append(
            StatementRow(
                ordinal=st["ordinal"],
                change=st["change"],
                sql=st["sql"],
                hazards=tuple(st["hazards"]),
                duration_ms=st["duration_ms"],  # None: confirmed after an interruption
                retries=st["retries"],
                state=dict(st).get("state", "applied"),  # an old ledger: only applied ones
            )
        )
    return [
        LedgerRow(
            id=row["id"],
            database=alias,
            request_id=row["request_id"],
            service=row["service"],
            instance=row["instance"],
            outcome=row["outcome"],
            manifest_hash=row["manifest_hash"],
            started_ms=row["started_ms"],
            duration_ms=row["duration_ms"] or 0.0,
            lock_wait_ms=row["lock_wait_ms"],
            served_by=row["served_by"],
            trace_id=row["trace_id"],
            error_message=row["error_message"],
            statements=tuple(statements.get(row["id"], ())),
            migrations=tuple(json.loads(dict(row).get("migrations") or "[]")),
        )
        for row in rows
    ]


async def read_migrations(
    conn: Connection, schema: str, alias: str, contract: ContractSettings | None = None
) -> list[MigrationRow]:
    """Every online migration's progress record of the database (none: no migrations table),
    with how far its contract got (the contracts record, when there is one), or else why it
    waits (judged with the worker's ``contract`` settings)."""
    if not await relation_exists(conn, f"{schema}.migrations"):
        return []
    s = quote_ident(schema)
    contracts = await relation_exists(conn, f"{schema}.contracts")
    joined = (
        f"""c.sync_dropped_at, c.column_dropped_at, c.column_kept
            FROM {s}.migrations m LEFT JOIN {s}.contracts c ON c.migration_id = m.id"""
        if contracts
        else f"""NULL::timestamptz AS sync_dropped_at, NULL::timestamptz AS column_dropped_at,
                 NULL::text AS column_kept FROM {s}.migrations m"""
    )
    rows = await conn.fetch(
        f"""SELECT m.id, m.migration, m.kind, m.schema_name, m.table_name, m.column_name,
                   m.state, m.batches, m.rows_touched, m.enforce_steps, m.error,
                   m.registered_at, m.updated_at, m.finished_at, {joined}
             ORDER BY m.registered_at, m.id"""
    )
    contract = contract or ContractSettings()
    liveness = await read_liveness(conn, schema, contract.grace_s, contract.lease_ttl_s)
    return [
        MigrationRow(
            database=alias, id=r["id"], kind=r["kind"],
            target=f"{r['schema_name']}.{r['table_name']}.{r['column_name']}",
            state=r["state"], batches=r["batches"], rows_touched=r["rows_touched"],
            enforce_steps=r["enforce_steps"], error=r["error"],
            registered_ms=_ms(r["registered_at"]), updated_ms=_ms(r["updated_at"]),
            finished_ms=_ms(r["finished_at"]) if r["finished_at"] is not None else None,
            contract=contract_progress(r["sync_dropped_at"], r["column_dropped_at"],
                                       r["column_kept"]) or _waits(r, liveness),
        )
        for r in rows
    ]  # fmt: skip


def _waits(row: Any, liveness: Liveness) -> str:
    """Why the contract of a migration it has not begun waits."""
    expand = Expand(state=row["state"], rows_done=row["rows_touched"], error=row["error"])
    m = backfill_store.decode(row["migration"], row["id"])
    return contract_reason(m, expand, None, liveness).reason


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def read_ddl_log(conn: Connection, alias: str, window: Window) -> list[DdlEvent] | None:
    """The DDL log's rows in ``window`` (``deploy/ddl-audit.sql``); None when not installed."""
    schema = DDL_LOG_SCHEMA
    if not await relation_exists(conn, f"{schema}.ddl_log"):
        return None
    rows = await conn.fetch(
        f"""SELECT floor(extract(epoch FROM at) * 1000)::bigint AS at_ms, username, application,
                   command, coalesce(object, '') AS object
            FROM {quote_ident(schema)}.ddl_log WHERE at >= $1 AND at < $2 ORDER BY id""",
        _at(window.since_ms),
        _at(window.until_ms),
    )
    return [
        DdlEvent(
            database=alias,
            time_ms=r["at_ms"],
            user=r["username"],
            application=r["application"],
            command=r["command"],
            object=r["object"],
        )
        for r in rows
    ]


async def replan(conn: Connection, boot: Boot, settings: PlanSettings) -> Replan:
    """What a heal of ``boot``'s manifest would do today (read-only: nothing is applied)."""
    event = boot.request
    assert event.manifest is not None
    assert event.database
    assert event.service
    plan = await current_plan(conn, desired_state(event.manifest), settings)
    return Replan(
        database=event.database,
        service=event.service,
        request_id=event.request_id,
        manifest_hash=event.manifest_hash or "",
        statements=tuple(s.sql for s in plan.statements),
        changes=tuple(describe(c) for c in plan.changes),
        blocking_drift=tuple(
            f"{d.kind.value} {d.target}: {d.detail}" for d in plan.drift if d.blocking
        ),
    )


async def reapply(conn: Connection, boot: Boot, options: HealOptions) -> HealResult:
    """Heal ``boot``'s manifest through the normal heal path (locks, review, ledger), with the
    worker's heal settings. Its span starts a new trace that links to the original request's."""
    event = boot.request
    assert event.manifest is not None
    original = trace.get_current_span(
        context_from_headers({"traceparent": event.traceparent or ""})
    ).get_span_context()
    links = [Link(original, {"schemaheal.link": "replayed-request"})] if original.is_valid else []
    attributes: dict[str, Any] = {
        "schemaheal.replay.of": event.request_id,
        "schemaheal.manifest.hash": event.manifest_hash or "",
        "schemaheal.database.alias": event.database or "",
        "schemaheal.service": event.service or "",
    }
    with tracer().start_as_current_span(
        "schemaheal replay reapply",
        context=otel_context.Context(),  # a root: never a child of the original boot
        kind=SpanKind.INTERNAL,
        links=links,
        attributes=attributes,
    ) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        result = await heal(
            conn,
            event.manifest,
            options=options,
            request=RequestInfo(
                request_id=f"{REAPPLY_PREFIX}{event.request_id}:{uuid.uuid4()}",
                service=event.service,
                instance="schemaheal-replay",
                database_alias=event.database,
                trace_id=trace_id if span.get_span_context().is_valid else None,
            ),
        )
        span.set_attribute("schemaheal.outcome", result.outcome.value)
        return result


def _at(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
