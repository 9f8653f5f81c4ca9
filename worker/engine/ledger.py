"""The audit ledger: every heal, in the target database, in the worker's own schema.

Created on first use (under its own advisory lock, so two workers never race to create it) and
never inside a service's schemas. One row per heal in ``heals``, one per statement in
``statements``. ``find`` answers a redelivered or replayed request from its first finished heal.

A heal that applies anything writes its intent first: a ``running`` row (:func:`begin`), then one
statement row per statement as it commits — the rows of a transaction's statements in one round
trip before it commits, right after it for ``CONCURRENTLY`` statements, which cannot run in one
(:func:`progress`) — and
its outcome at the end (:func:`finish`). A worker killed mid-apply so leaves a ``running`` row that
lists what committed; the next heal of an overlapping schema, holding its advisory locks (which
the dead heal held while alive), closes it as ``interrupted`` (:func:`settle`).

The tables are created by the worker; later columns are added in place (``ADD COLUMN IF NOT
EXISTS``), so a ledger written by an older worker is upgraded, never rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine.apply import AppliedStatement
from worker.engine.connection import Connection
from worker.engine.lock import advisory_locks

DEFAULT_SCHEMA = "schemaheal"
log = logging.getLogger("schemaheal.ledger")


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
"""


#: The column the latest ledger layout added last: its absence means "upgrade in place".
_LATEST_COLUMN = "planned"
RUNNING, INTERRUPTED = "running", "interrupted"
UNFINISHED = (RUNNING, INTERRUPTED)


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


_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def ensure_ledger(conn: Connection, database: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Create the ledger's schema and tables unless they exist (checked once per connection)."""
    if schema in _READY.get(conn, ()):
        return
    current = await conn.fetchval(
        """SELECT to_regclass($1) IS NOT NULL AND EXISTS (SELECT FROM pg_attribute
               WHERE attrelid = to_regclass($2) AND attname = $3 AND NOT attisdropped)""",
        f"{schema}.statements",
        f"{schema}.heals",
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
        heal_id = await _insert_heal(conn, entry, quote_ident(schema))
        if entry.statements:
            await conn.executemany(  # type: ignore[attr-defined]
                _insert_statement(quote_ident(schema)),
                [_statement_row(heal_id, a) for a in entry.statements],
            )
    return heal_id


async def begin(
    conn: Connection, entry: HealRecord, planned: int, schema: str = DEFAULT_SCHEMA
) -> int:
    """Record the intent of a heal about to apply ``planned`` statements: a ``running`` row,
    committed before the first statement runs. Return its id."""
    return await _insert_heal(conn, replace(entry, outcome=RUNNING), quote_ident(schema), planned)


def progress(
    conn: Connection, heal_id: int, schema: str = DEFAULT_SCHEMA
) -> Callable[[Sequence[AppliedStatement]], Awaitable[None]]:
    """Record statements of the heal ``heal_id`` (one round trip), called in their own
    transaction (so they commit or roll back together). A retried group records its statements
    again: each row then says how many retries it took."""
    sql = _insert_statement(quote_ident(schema)) + (
        " ON CONFLICT (heal_id, ordinal) DO UPDATE SET started_at = excluded.started_at,"
        " duration_ms = excluded.duration_ms, retries = excluded.retries"
    )

    async def write(applied: Sequence[AppliedStatement]) -> None:
        if applied:  # executemany pipelines its rows: one round trip for all of them
            await conn.executemany(  # type: ignore[attr-defined]
                sql, [_statement_row(heal_id, a) for a in applied]
            )

    return write


async def finish(
    conn: Connection, heal_id: int, entry: HealRecord, schema: str = DEFAULT_SCHEMA
) -> int:
    """Close the ``running`` row ``heal_id`` with the heal's outcome (its statements are already
    recorded, one by one). Return its id."""
    s = quote_ident(schema)
    await conn.execute(
        f"""UPDATE {s}.heals SET outcome = $2, error_code = $3, error_message = $4,
                lock_wait_ms = $5, duration_ms = $6, finished_at = now(), drift = $7,
                blocked = $8
            WHERE id = $1""",
        heal_id,
        entry.outcome,
        entry.error_code,
        entry.error_message,
        None if entry.lock_wait_s is None else entry.lock_wait_s * 1000,
        entry.duration_s * 1000,
        json.dumps(list(entry.drift)),
        json.dumps(list(entry.blocked)),
    )
    return heal_id


def _close_interrupted_sql(s: str) -> str:
    """$1: the schemas; $2: the ledger schema's name (for the message)."""
    return f"""UPDATE {s}.heals h SET outcome = '{INTERRUPTED}', error_code = '{INTERRUPTED}',
                finished_at = now(),
                error_message = format('the heal stopped before it finished (worker killed or '
                    'its database connection lost): %s of %s planned statement(s) committed, '
                    'listed in %s.statements; the next heal finished the rest',
                    (SELECT count(*) FROM {s}.statements st WHERE st.heal_id = h.id),
                    coalesce(h.planned::text, '?'), $2::text)
            WHERE outcome = '{RUNNING}' AND schemas && $1::text[]
            RETURNING id"""


async def settle(
    conn: Connection, schemas: Collection[str], request_id: str | None,
    schema: str = DEFAULT_SCHEMA,
) -> tuple[list[int], dict[str, Any] | None]:  # fmt: skip
    """What a heal does first, holding its locks, in one round trip: close as ``interrupted``
    every ``running`` heal of any of ``schemas`` (return their ids), and find the first finished
    heal of ``request_id`` (``id``, ``outcome``, ``error_code``, ``error_message``), which another
    worker may have recorded while this one waited.

    A live heal holds the locks of all its schemas from before its row is written until after
    it is finished, so a ``running`` row sharing a schema with ours belongs to a heal that died
    (worker killed, connection lost)."""
    s = quote_ident(schema)
    row = await conn.fetchrow(
        f"""WITH closed AS ({_close_interrupted_sql(s)})
            SELECT ARRAY(SELECT id FROM closed ORDER BY id) AS closed, f.*
              FROM (SELECT) AS one LEFT JOIN LATERAL (
                   SELECT id, outcome, error_code, error_message FROM {s}.heals
                    WHERE request_id = $3 AND outcome <> ALL($4::text[]) ORDER BY id LIMIT 1
              ) AS f ON true""",
        sorted(schemas),
        schema,
        request_id,
        list(UNFINISHED),
    )
    served = None if row["id"] is None else {k: row[k] for k in ("id", "outcome", "error_code",
                                                                 "error_message")}  # fmt: skip
    return _closed(list(row["closed"])), served


def _closed(ids: list[int]) -> list[int]:
    if ids:
        log.warning("closed interrupted heal(s) %s", ids, extra={"ledger_ids": ids})
    return ids


async def _insert_heal(
    conn: Connection, entry: HealRecord, s: str, planned: int | None = None
) -> int:
    heal_id: int = await conn.fetchval(
        f"""INSERT INTO {s}.heals (request_id, service, instance, database_alias,
                manifest_hash, schemas, outcome, error_code, error_message, lock_wait_ms,
                duration_ms, started_at, trace_id, drift, blocked, served_by, record_position,
                planned)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                    $18)
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
        _ts(entry.started_at),
        entry.trace_id,
        json.dumps(list(entry.drift)),
        json.dumps(list(entry.blocked)),
        entry.served_by,
        entry.record_position,
        planned,
    )
    return heal_id


def _insert_statement(s: str) -> str:
    return f"""INSERT INTO {s}.statements (heal_id, ordinal, change, sql, hazards, started_at,
                   duration_ms, retries)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


def _statement_row(heal_id: int, a: AppliedStatement) -> tuple[object, ...]:
    hazards = [h.value for h in a.hazards]
    return (heal_id, a.ordinal, a.change, a.sql, hazards, _ts(a.started_at),
            a.duration_s * 1000, a.retries)  # fmt: skip


async def record_served(
    conn: Connection,
    served_by: int,
    requests: Sequence[tuple[str, str | None, str | None, str | None, str | None]],
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Record coalesced requests ``(request_id, service, instance, trace_id, position)`` as
    served by the heal ``served_by``, with its outcome: every reply has its ledger row."""
    s = quote_ident(schema)
    await conn.executemany(  # type: ignore[attr-defined]
        f"""INSERT INTO {s}.heals (request_id, service, instance, database_alias, manifest_hash,
                schemas, outcome, error_code, error_message, lock_wait_ms, duration_ms,
                started_at, finished_at, trace_id, drift, blocked, served_by, record_position)
            SELECT $1, $2, $3, database_alias, manifest_hash, schemas, outcome, error_code,
                   error_message, 0, 0, now(), now(), $4, drift, blocked, id, $5
            FROM {s}.heals WHERE id = $6""",
        [(*request, served_by) for request in requests],
    )


async def find_many(
    conn: Connection, request_ids: list[str], schema: str = DEFAULT_SCHEMA
) -> dict[str, dict[str, Any]]:
    """The first finished heal recorded for each of ``request_ids`` (those found), with its
    statements. A ``running`` or ``interrupted`` row answers nobody: that request is healed again.

    For a coalesced request the statements are those of the heal that served it."""
    s = quote_ident(schema)
    if not request_ids:
        return {}
    if schema not in _READY.get(conn, ()) and not await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{schema}.heals"
    ):
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
        statements.setdefault(st["heal_id"], []).append(dict(st))
    for row in found.values():
        row["statements"] = statements.get(row["served_by"] or row["id"], [])
    return found


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
