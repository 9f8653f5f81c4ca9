"""Where online migrations and their progress are kept: ``<ledger schema>.migrations``.

One row per :class:`~worker.engine.expand.ColumnMigration`, keyed by its id. The heal inserts it
(:func:`register`) in the transaction that runs its expand, so a migration is recorded exactly
when its column and trigger exist. The runner then writes its progress in the same transaction
as the work it records: each backfill batch with its last key and counts
(:func:`batch_record`), each enforce step with its index (:func:`record_step`). A worker killed
at any point so resumes from the last committed batch or step: nothing is done twice, nothing
skipped.

States: ``backfilling`` → ``enforcing`` → ``expanded`` (the expand phase is complete; contract
is a later, separate phase). A non-NULL ``error`` stops the runner on that migration, where it
was, until a person acts (the error says what to do; :func:`retry` clears it). ``abandoned``
(:mod:`worker.engine.abandon`) is final: the runner's records of an abandoned migration raise
:class:`Abandoned`, so its batch or step rolls back; registering the same migration again (a heal
of its manifest after the abandonment) starts it afresh.

The table is created on first use, under its own advisory lock, in this module (the ledger's
module owns the other tables of the schema).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine.connection import Connection, fetch_if_exists, relation_exists
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.lock import advisory_locks

__all__ = [
    "ABANDONED",
    "BACKFILLING",
    "ENFORCING",
    "EXPANDED",
    "Abandoned",
    "Progress",
    "batch_record",
    "ensure_store",
    "fail",
    "pending",
    "progress",
    "record_step",
    "register",
    "retry",
]

DEFAULT_SCHEMA = "schemaheal"  # the ledger's schema (worker.engine.ledger.DEFAULT_SCHEMA)
BACKFILLING, ENFORCING, EXPANDED = "backfilling", "enforcing", "expanded"
ABANDONED = "abandoned"
#: the channel a registration notifies (on commit), so a waiting runner starts at once
CHANNEL = "schemaheal_migrations"


def _ddl(schema: str) -> str:
    s = quote_ident(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.migrations (
    id text PRIMARY KEY,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    kind text NOT NULL,
    migration jsonb NOT NULL,  -- the ColumnMigration, to run it from any worker
    state text NOT NULL DEFAULT 'backfilling',
    stop_key jsonb,            -- the greatest key when the backfill started (NULL: not yet;
                               -- JSON null: the table was empty); it stops there
    last_key jsonb,            -- the last key the backfill touched (NULL: none yet)
    rows_scanned bigint NOT NULL DEFAULT 0,
    rows_touched bigint NOT NULL DEFAULT 0,
    batches integer NOT NULL DEFAULT 0,
    enforce_steps integer NOT NULL DEFAULT 0,  -- enforce steps committed
    error text,                -- set: stopped until a person acts (retry clears it)
    registered_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS migrations_unfinished_idx ON {s}.migrations (registered_at)
    WHERE state IN ('backfilling', 'enforcing');
"""


class Abandoned(Exception):
    """The migration was abandoned while the runner worked on it: roll its transaction back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """One migration's row."""

    migration: ColumnMigration
    state: str
    stop_key: str | None
    last_key: str | None
    rows_scanned: int
    rows_touched: int
    batches: int
    enforce_steps: int
    error: str | None
    registered_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def failed(self) -> bool:
        return self.error is not None


async def _exists(conn: Connection, schema: str) -> bool:
    return await relation_exists(conn, f"{schema}.migrations")


async def ensure_store(conn: Connection, schema: str = DEFAULT_SCHEMA) -> None:
    """Create the table unless it exists. Checked every time (cheap): a creation inside a
    caller's transaction that rolls back must not be remembered."""
    if await _exists(conn, schema):
        return
    database = await conn.fetchval("SELECT current_database()")
    async with advisory_locks(conn, database, [f"\0migrations\0{schema}"]), conn.transaction():
        await conn.execute(_ddl(schema))


def encode(m: ColumnMigration) -> str:
    return json.dumps(dataclasses.asdict(m), sort_keys=True)


def decode(text: str | dict[str, Any], expected_id: str) -> ColumnMigration:
    """The migration stored as JSON; it must have the id it is stored under (a worker of another
    version could read the same fields differently)."""
    values = json.loads(text) if isinstance(text, str) else dict(text)
    values["kind"] = MigrationKind(values["kind"])
    values["key"] = tuple(values["key"])
    m = ColumnMigration(**values)
    if m.id != expected_id:
        raise ValueError(
            f"migration {expected_id} was stored by a worker of another version (its fields "
            f"now give id {m.id}); finish it with a worker of that version"
        )
    return m


async def register(conn: Connection, m: ColumnMigration, schema: str = DEFAULT_SCHEMA) -> bool:
    """Record ``m`` as pending; call it in the transaction that runs its expand. True when it was
    new (a migration registered before keeps its progress; an abandoned one starts afresh).
    Runners are woken on commit."""
    await ensure_store(conn, schema)
    inserted = await conn.fetchval(
        f"""INSERT INTO {quote_ident(schema)}.migrations
                (id, schema_name, table_name, column_name, kind, migration)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb)
            ON CONFLICT (id) DO UPDATE SET state = 'backfilling', stop_key = NULL,
                last_key = NULL, rows_scanned = 0, rows_touched = 0, batches = 0,
                enforce_steps = 0, error = NULL, registered_at = now(), updated_at = now(),
                finished_at = NULL
             WHERE migrations.state = 'abandoned'
            RETURNING true""",
        m.id,
        m.schema,
        m.table,
        m.new_column,
        m.kind.value,
        encode(m),
    )
    await conn.execute(f"NOTIFY {CHANNEL}")
    return bool(inserted)


_COLUMNS = """migration, id, state, stop_key::text AS stop_key, last_key::text AS last_key,
    rows_scanned, rows_touched, batches, enforce_steps, error, registered_at, updated_at,
    finished_at"""


def _progress(row: Any) -> Progress:
    return Progress(
        migration=decode(row["migration"], row["id"]),
        **{k: row[k] for k in _PROGRESS_FIELDS},
    )


_PROGRESS_FIELDS = tuple(f.name for f in dataclasses.fields(Progress) if f.name != "migration")


async def pending(conn: Connection, schema: str = DEFAULT_SCHEMA) -> list[Progress]:
    """Migrations still backfilling or enforcing and not stopped by an error, oldest first
    (none before the first registration: reading never creates the table)."""
    if not await _exists(conn, schema):
        return []
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {quote_ident(schema)}.migrations
             WHERE state IN ('backfilling', 'enforcing') AND error IS NULL
             ORDER BY registered_at, id"""
    )
    return [_progress(r) for r in rows]


async def progress(
    conn: Connection, migration_id: str, schema: str = DEFAULT_SCHEMA
) -> Progress | None:
    """One migration's row, or None when it was never registered."""
    if not await _exists(conn, schema):
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {quote_ident(schema)}.migrations WHERE id = $1", migration_id
    )
    return None if row is None else _progress(row)


async def _update(
    conn: Connection,
    schema: str,
    migration_id: str,
    assignments: str,
    *values: object,
    check: bool = True,
) -> None:
    """``UPDATE … SET <assignments>`` of one migration's row ($1 is its id). An abandoned
    migration's row is never changed: with ``check``, :class:`Abandoned` is raised instead."""
    s = quote_ident(schema)
    changed = await conn.fetchval(
        f"""UPDATE {s}.migrations SET {assignments}, updated_at = now()
             WHERE id = $1 AND state <> '{ABANDONED}' RETURNING true""",
        migration_id,
        *values,
    )
    if changed or not check:
        return
    state = await conn.fetchval(f"SELECT state FROM {s}.migrations WHERE id = $1", migration_id)
    if state == ABANDONED:
        raise Abandoned(migration_id)


def batch_record(schema: str, id_parameter: str) -> str:
    """The UPDATE that records one batch, run by the batch's own statement
    (:func:`worker.engine.expand_sql.recorded_batch`): it reads the batch's sh_batch, sh_last and
    sh_touched; ``id_parameter`` is the migration id's placeholder (``$3``…). An abandoned
    migration's row is not changed, and the UPDATE returns no row: the runner then raises
    :class:`Abandoned` (that batch wrote only the column the abandonment drops)."""
    return f"""UPDATE {quote_ident(schema)}.migrations
           SET last_key = (SELECT to_jsonb(sh_last.*) FROM sh_last),
               rows_scanned = rows_scanned + (SELECT count(*) FROM sh_batch),
               rows_touched = rows_touched + (SELECT count(*) FROM sh_touched),
               batches = batches + 1, updated_at = now()
         WHERE id = {id_parameter} AND state <> '{ABANDONED}' AND EXISTS (SELECT FROM sh_batch)
        RETURNING 1"""


async def record_stop_key(
    conn: Connection, migration_id: str, stop_key: str | None, schema: str = DEFAULT_SCHEMA
) -> str:
    """Where the backfill stops (None: the table is empty); returned as it is stored."""
    stored = stop_key if stop_key is not None else "null"
    await _update(conn, schema, migration_id, "stop_key = $2::jsonb", stored)
    return stored


async def record_state(
    conn: Connection, migration_id: str, state: str, schema: str = DEFAULT_SCHEMA
) -> None:
    finished = "now()" if state == EXPANDED else "NULL"
    await _update(conn, schema, migration_id, f"state = $2, finished_at = {finished}", state)


async def record_step(
    conn: Connection, migration_id: str, done: int, schema: str = DEFAULT_SCHEMA
) -> None:
    """``done`` enforce steps committed; call it in the step's transaction where it has one."""
    await _update(conn, schema, migration_id, "enforce_steps = $2", done)


async def fail(
    conn: Connection, migration_id: str, error: str, schema: str = DEFAULT_SCHEMA
) -> None:
    """Stop running the migration: a person must act (the error says what)."""
    await _update(conn, schema, migration_id, "error = $2", error, check=False)


async def retry(conn: Connection, migration_id: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Let the runner take a stopped migration up again where it stopped."""
    await _update(conn, schema, migration_id, "error = NULL", check=False)


async def registered(conn: Connection, schema: str = DEFAULT_SCHEMA) -> list[Progress]:
    """Every registered migration, oldest first (none when the table does not exist yet)."""
    query = f"SELECT {_COLUMNS} FROM {quote_ident(schema)}.migrations ORDER BY registered_at, id"
    return [_progress(r) for r in await fetch_if_exists(conn, f"{schema}.migrations", query)]
