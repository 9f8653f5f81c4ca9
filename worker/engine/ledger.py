"""The audit ledger: every heal, in the target database, in the worker's own schema.

Created on first use (under its own advisory lock, so two workers never race to create it) and
never inside a service's schemas. One row per heal in ``heals``, one per statement in
``statements``. ``find`` answers a redelivered or replayed request from its first finished heal.

A heal that applies anything writes its intent first (:mod:`worker.engine.ledger_intent`): a
``running`` row and every planned statement, ``planned``; each becomes ``applied`` as it commits,
and the outcome is written at the end. The next heal of an overlapping schema closes a heal that
died as ``interrupted``, settling each statement still ``planned`` from the catalog
(:mod:`worker.engine.intent`).

The tables are created by the worker; later columns are added in place (``ADD COLUMN IF NOT
EXISTS``), so a ledger written by an older worker is upgraded, never rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine.apply import AppliedStatement
from worker.engine.connection import Connection, relation_exists
from worker.engine.intent import RAN, StatementState
from worker.engine.lock import advisory_locks

DEFAULT_SCHEMA = "schemaheal"


def _ddl(schema: str) -> str:
    s = quote_ident(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.heals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id text,
    service text,
    instance text,
    database_alias text,
    manifest_hash text NOT NULL,
    schemas text[] NOT NULL,
    outcome text NOT NULL,
    error_code text,
    error_message text,
    lock_wait_ms double precision,
    duration_ms double precision,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    trace_id text,
    drift jsonb NOT NULL DEFAULT '[]',
    blocked jsonb NOT NULL DEFAULT '[]',
    served_by bigint REFERENCES {s}.heals (id),  -- a coalesced request: the heal that served it
    record_position text  -- topic:partition:offset: a redelivery has the same, a replay not
);
CREATE INDEX IF NOT EXISTS heals_request_id_idx ON {s}.heals (request_id);
CREATE INDEX IF NOT EXISTS heals_started_at_idx ON {s}.heals (started_at);
CREATE TABLE IF NOT EXISTS {s}.statements (
    heal_id bigint NOT NULL REFERENCES {s}.heals (id),
    ordinal integer NOT NULL,
    change text NOT NULL,
    sql text NOT NULL,
    hazards text[] NOT NULL,
    started_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    retries integer NOT NULL,
    PRIMARY KEY (heal_id, ordinal)
);
ALTER TABLE {s}.heals ADD COLUMN IF NOT EXISTS planned integer;  -- statements planned (intent)
CREATE INDEX IF NOT EXISTS heals_running_idx ON {s}.heals (id) WHERE outcome = 'running';
-- layout 3: every planned statement is written before the first runs; what shows it committed
ALTER TABLE {s}.statements ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'applied',
    ADD COLUMN IF NOT EXISTS catalog_check jsonb,
    ALTER COLUMN started_at DROP NOT NULL, ALTER COLUMN duration_ms DROP NOT NULL;
-- layout 4: the online migrations a heal started (kind, table, columns, phase)
ALTER TABLE {s}.heals ADD COLUMN IF NOT EXISTS migrations jsonb NOT NULL DEFAULT '[]';
"""


#: The table and column the latest ledger layout added last: absent means "upgrade in place".
_LATEST_TABLE, _LATEST_COLUMN = "heals", "migrations"
RUNNING, INTERRUPTED = "running", "interrupted"
UNFINISHED = (RUNNING, INTERRUPTED)


def finished(alias: str) -> str:
    """SQL: the heals row ``alias`` is a finished heal (it answered its request)."""
    return f"{alias}.outcome <> '{RUNNING}' AND {alias}.outcome <> '{INTERRUPTED}'"


@dataclass(frozen=True, slots=True, kw_only=True)
class HealRecord:
    """One ledger row and its statements."""

    manifest_hash: str
    schemas: tuple[str, ...]
    outcome: str
    started_at: float
    duration_s: float
    lock_wait_s: float | None = None
    request_id: str | None = None
    service: str | None = None
    instance: str | None = None
    database_alias: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    trace_id: str | None = None
    drift: tuple[dict[str, str], ...] = ()
    blocked: tuple[dict[str, str], ...] = ()
    statements: tuple[AppliedStatement, ...] = field(default=())
    served_by: int | None = None
    record_position: str | None = None
    #: the online migrations this heal started: id, kind, table, column, from, type, phase
    migrations: tuple[dict[str, Any], ...] = ()


_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def ensure_ledger(conn: Connection, database: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Create the ledger's schema and tables unless they exist (checked once per connection)."""
    if schema in _READY.get(conn, ()):
        return
    current = await conn.fetchval(
        """SELECT EXISTS (SELECT FROM pg_attribute
               WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped)""",
        f"{schema}.{_LATEST_TABLE}",
        _LATEST_COLUMN,
    )
    if not current:
        async with advisory_locks(conn, database, [f"\0ledger\0{schema}"]), conn.transaction():
            await conn.execute(_ddl(schema))
    _READY.setdefault(conn, set()).add(schema)


async def record(conn: Connection, entry: HealRecord, schema: str = DEFAULT_SCHEMA) -> int:
    """Write one finished heal and its statements; return its id."""
    # one row alone is atomic; a transaction only when statements are written with it
    atomic = conn.transaction() if entry.statements else contextlib.nullcontext()
    async with atomic:
        heal_id = await insert_heal(conn, entry, quote_ident(schema))
        if entry.statements:
            await conn.executemany(  # type: ignore[attr-defined]
                insert_statement(quote_ident(schema)),
                [statement_row(heal_id, a) for a in entry.statements],
            )
    return heal_id


async def insert_heal(
    conn: Connection, entry: HealRecord, s: str, planned: int | None = None
) -> int:
    heal_id: int = await conn.fetchval(
        f"""INSERT INTO {s}.heals (request_id, service, instance, database_alias,
                manifest_hash, schemas, outcome, error_code, error_message, lock_wait_ms,
                duration_ms, started_at, trace_id, drift, blocked, served_by, record_position,
                planned, migrations)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                    $18, $19)
            RETURNING id""",
        entry.request_id,
        entry.service,
        entry.instance,
        entry.database_alias,
        entry.manifest_hash,
        list(entry.schemas),
        entry.outcome,
        entry.error_code,
        entry.error_message,
        None if entry.lock_wait_s is None else entry.lock_wait_s * 1000,
        entry.duration_s * 1000,
        ts(entry.started_at),
        entry.trace_id,
        json.dumps(list(entry.drift)),
        json.dumps(list(entry.blocked)),
        entry.served_by,
        entry.record_position,
        planned,
        json.dumps(list(entry.migrations)),
    )
    return heal_id


def insert_statement(s: str) -> str:
    return f"""INSERT INTO {s}.statements (heal_id, ordinal, change, sql, hazards, started_at,
                   duration_ms, retries)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


def statement_row(heal_id: int, a: AppliedStatement) -> tuple[object, ...]:
    hazards = [h.value for h in a.hazards]
    return (heal_id, a.ordinal, a.change, a.sql, hazards, ts(a.started_at),
            a.duration_s * 1000, a.retries)  # fmt: skip


#: a coalesced request's ledger row: request id, service, instance, trace id, record position
Follower = tuple[str, str | None, str | None, str | None, str | None]


async def record_served(
    conn: Connection, served_by: int, requests: Sequence[Follower], schema: str = DEFAULT_SCHEMA
) -> tuple[str, ...]:
    """Record coalesced ``requests`` as served by the heal ``served_by``, with its outcome: every
    reply has its ledger row. Returns those skipped: another worker had served them already
    (their reply is their first finished row's). Run it under the schemas' locks (the heal
    does): another worker's heal of one of them then waits, and finds its row."""
    if not requests:
        return ()
    columns = [list(column) for column in zip(*requests, strict=True)]
    statement = served_statement(quote_ident(schema), *(f"${i}::text[]" for i in range(1, 6)),
                                 served_by="$6")  # fmt: skip
    skipped = await conn.fetchval(statement, *columns, served_by)  # one statement for the group
    return tuple(skipped)


def served_statement(
    s: str, request_ids: str, services: str, instances: str, trace_ids: str, positions: str, *,
    served_by: str, into: str = "",
) -> str:  # fmt: skip
    """The statement of :func:`record_served` in schema ``s`` (quoted), with the given arrays
    and ledger id: the boot check runs it too (``into``: its PL/pgSQL ``INTO`` target). The rows
    are written in the order given, each pointing at the heal that ran (``served_by`` may be a
    coalesced row itself: a request served before as a follower). A request that already has a
    finished row gets none: another worker served it (as a leader, or coalesced under another
    leader, in a batch a rebalance handed over) while this one had it too, and the ledger keeps
    one finished heal per request. The statement's value: the ids it skipped."""
    return f"""WITH written AS (
            INSERT INTO {s}.heals (request_id, service, instance, database_alias, manifest_hash,
                schemas, outcome, error_code, error_message, lock_wait_ms, duration_ms,
                started_at, finished_at, trace_id, drift, blocked, served_by, record_position,
                migrations)
            SELECT r.request_id, r.service, r.instance, h.database_alias, h.manifest_hash,
                   h.schemas, h.outcome, h.error_code, h.error_message, 0, 0, now(), now(),
                   r.trace_id, h.drift, h.blocked, coalesce(h.served_by, h.id),
                   r.record_position, h.migrations
            FROM unnest({request_ids}, {services}, {instances}, {trace_ids}, {positions})
                     WITH ORDINALITY AS r(request_id, service, instance, trace_id,
                                          record_position, ordinal)
            CROSS JOIN {s}.heals h WHERE h.id = {served_by}
              AND NOT EXISTS (SELECT FROM {s}.heals d WHERE d.request_id = r.request_id
                                 AND {finished("d")})
            ORDER BY r.ordinal
            RETURNING request_id)
        SELECT ARRAY(SELECT f FROM unnest({request_ids}) AS f
                      WHERE NOT EXISTS (SELECT FROM written w WHERE w.request_id = f)) {into}"""


async def find_many(
    conn: Connection, request_ids: list[str], schema: str = DEFAULT_SCHEMA
) -> dict[str, dict[str, Any]]:
    """The first finished heal recorded for each of ``request_ids`` (those found), with its
    statements. A ``running`` or ``interrupted`` row answers nobody: that request is healed again.

    For a coalesced request the statements are those of the heal that served it."""
    s = quote_ident(schema)
    if not request_ids:
        return {}
    if schema not in _READY.get(conn, ()) and not await relation_exists(conn, f"{schema}.heals"):
        return {}
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (request_id) * FROM {s}.heals
            WHERE request_id = ANY($1::text[]) AND outcome <> ALL($2::text[])
            ORDER BY request_id, id""",
        request_ids,
        list(UNFINISHED),
    )
    found = {row["request_id"]: dict(row) for row in rows}
    if not found:  # the usual case: a new request; its statements need no second round trip
        return {}
    heal_ids = {row["served_by"] or row["id"] for row in found.values()}
    statements: dict[int, list[dict[str, Any]]] = {}
    for st in await conn.fetch(
        f"SELECT * FROM {s}.statements WHERE heal_id = ANY($1::bigint[]) ORDER BY heal_id, ordinal",
        list(heal_ids),
    ):
        if ran(st):
            statements.setdefault(st["heal_id"], []).append(dict(st))
    for row in found.values():
        row["statements"] = statements.get(row["served_by"] or row["id"], [])
    return found


async def served(
    conn: Connection, request_id: str | None, schema: str = DEFAULT_SCHEMA
) -> dict[str, Any] | None:
    """The first finished heal of ``request_id`` (with its statements), or None."""
    if request_id is None:
        return None
    return (await find_many(conn, [request_id], schema)).get(request_id)


def ran(statement_row: Any) -> bool:
    """True for a statement row that ran (a ledger from before the states has only those)."""
    return dict(statement_row).get("state", StatementState.APPLIED) in RAN


def ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
