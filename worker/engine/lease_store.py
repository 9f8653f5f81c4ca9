"""Where leases and contract steps are kept: ``<ledger schema>.leases`` and ``.contracts``.

A lease row per (service, instance), naming its manifest's shape (``shapes``: the columns it
declares, one row per manifest hash), is written by every boot the gate sees (:func:`record_boot`,
before its heal), renewed by heartbeats (:func:`heartbeat`) and ended by ``service.stopped``
(:func:`stop`). Times are the database's (``now()``), so workers' clocks never disagree.

A contract row per migration records each contract step as it commits: the trigger and function
dropped (``sync_dropped_at``), the old column dropped (``column_dropped_at``) or kept
(``column_kept``: why, and what to do). Tables are created on first use, under their own
advisory lock, in this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine.connection import Connection, fetch_if_exists, relation_exists
from worker.engine.liveness import Lease, Shape
from worker.engine.lock import advisory_locks

__all__ = [
    "ContractRecord",
    "boot_statement",
    "boot_values",
    "contract_records",
    "ensure_store",
    "heartbeat",
    "leases",
    "now",
    "prune",
    "record_boot",
    "record_contract",
    "stop",
    "tracked_since",
]

DEFAULT_SCHEMA = "schemaheal"


def _ddl(schema: str) -> str:
    s = quote_ident(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.liveness (  -- one row: since when leases are recorded
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    tracked_since timestamptz NOT NULL DEFAULT now()
);
INSERT INTO {s}.liveness DEFAULT VALUES ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS {s}.leases (
    service text NOT NULL,
    instance text NOT NULL,
    manifest_hash text NOT NULL,
    booted_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    ended_at timestamptz,       -- the instance said it stopped
    PRIMARY KEY (service, instance)
);
CREATE TABLE IF NOT EXISTS {s}.shapes (  -- one per manifest: replicas of a version share it
    manifest_hash text PRIMARY KEY,
    columns jsonb NOT NULL      -- [[schema, table, column, type], ...]
);
CREATE TABLE IF NOT EXISTS {s}.contracts (
    migration_id text PRIMARY KEY,
    sync_dropped_at timestamptz,
    column_dropped_at timestamptz,
    column_kept text,           -- why the old column stays, and what to do
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractRecord:
    migration_id: str
    sync_dropped_at: datetime | None
    column_dropped_at: datetime | None
    column_kept: str | None

    @property
    def contracted(self) -> bool:
        """The trigger is gone: writes of the old shape are no longer kept in step."""
        return self.sync_dropped_at is not None


async def ensure_store(conn: Connection, schema: str = DEFAULT_SCHEMA) -> None:
    """Create the tables unless they exist (checked every time: cheap)."""
    if await relation_exists(conn, f"{schema}.contracts"):
        return
    database = await conn.fetchval("SELECT current_database()")
    async with advisory_locks(conn, database, [f"\0leases\0{schema}"]), conn.transaction():
        await conn.execute(_ddl(schema))


async def tracked_since(conn: Connection, schema: str = DEFAULT_SCHEMA) -> datetime:
    """When this database began recording leases (call after :func:`ensure_store`)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT tracked_since FROM {quote_ident(schema)}.liveness"
    )


async def now(conn: Connection) -> datetime:
    """The database's clock: leases are compared with it, never with a worker's."""
    return await conn.fetchval("SELECT now()")  # type: ignore[no-any-return]


async def record_boot(
    conn: Connection,
    *,
    instances: Sequence[tuple[str, str]],
    manifest_hash: str,
    shape: Shape,
    ttl_s: float,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Boots of ``instances`` ((service, instance) pairs) of one manifest, in one statement:
    each one's lease now holds this manifest, for ``ttl_s`` from now."""
    await ensure_store(conn, schema)
    statement = boot_statement(quote_ident(schema), services="$1", instances="$2",
                               columns="$3", manifest_hash="$4", ttl_s="$5")  # fmt: skip
    await conn.execute(statement, *boot_values(instances, shape), manifest_hash, float(ttl_s))


def boot_statement(
    s: str, *, services: str, instances: str, manifest_hash: str, ttl_s: str, columns: str
) -> str:
    """The statement of :func:`record_boot` (the manifest's shape and the instances' leases,
    atomic) in schema ``s`` (quoted), with the given placeholders: the boot check runs it too."""
    return f"""WITH shape AS (
                   INSERT INTO {s}.shapes (manifest_hash, columns)
                   VALUES ({manifest_hash}, {columns}::jsonb)
                   ON CONFLICT (manifest_hash) DO NOTHING)
               INSERT INTO {s}.leases AS l (service, instance, manifest_hash, expires_at)
               SELECT service, instance, {manifest_hash}, now() + make_interval(secs => {ttl_s})
                 FROM unnest({services}::text[], {instances}::text[]) AS i (service, instance)
               ON CONFLICT (service, instance) DO UPDATE SET
                   manifest_hash = excluded.manifest_hash, booted_at = now(),
                   renewed_at = now(), expires_at = excluded.expires_at, ended_at = NULL"""


def boot_values(
    instances: Sequence[tuple[str, str]], shape: Shape
) -> tuple[list[str], list[str], str]:
    """The services, the instances (each once: one may ask twice in a batch) and the shape as
    JSON, for :func:`boot_statement`."""
    pairs = sorted(set(instances))
    return [p[0] for p in pairs], [p[1] for p in pairs], json.dumps(sorted(shape))


async def heartbeat(
    conn: Connection, *, service: str, instance: str, ttl_s: float, schema: str = DEFAULT_SCHEMA
) -> bool:
    """Renew a running instance's lease for ``ttl_s``; False when it has none (it never booted
    through the gate, or it stopped): a heartbeat cannot make a lease."""
    await ensure_store(conn, schema)
    renewed = await conn.fetchval(
        f"""UPDATE {quote_ident(schema)}.leases
               SET renewed_at = now(),
                   expires_at = greatest(expires_at, now() + make_interval(secs => $3))
             WHERE service = $1 AND instance = $2 AND ended_at IS NULL RETURNING true""",
        service,
        instance,
        float(ttl_s),
    )
    return bool(renewed)


async def stop(
    conn: Connection, *, service: str, instance: str, schema: str = DEFAULT_SCHEMA
) -> bool:
    """End an instance's lease now; False when it had no running lease."""
    await ensure_store(conn, schema)
    ended = await conn.fetchval(
        f"""UPDATE {quote_ident(schema)}.leases SET ended_at = now()
             WHERE service = $1 AND instance = $2 AND ended_at IS NULL RETURNING true""",
        service,
        instance,
    )
    return bool(ended)


async def prune(conn: Connection, keep_s: float, schema: str = DEFAULT_SCHEMA) -> int:
    """Forget leases that ended (or expired) more than ``keep_s`` ago — past the grace they no
    longer hold anything back; how many. Shapes stay (one per manifest version): deleting one
    could race a boot that is leasing it."""
    if not await relation_exists(conn, f"{schema}.leases"):
        return 0
    status = await conn.execute(
        f"""DELETE FROM {quote_ident(schema)}.leases
             WHERE coalesce(ended_at, expires_at) < now() - make_interval(secs => $1)""",
        float(keep_s),
    )
    return int(status.split()[-1])


def _lease(row: Any, shapes: dict[str, Shape]) -> Lease:
    if row["manifest_hash"] not in shapes:
        columns = json.loads(row["columns"])
        shapes[row["manifest_hash"]] = frozenset(tuple(c) for c in columns)
    return Lease(
        service=row["service"],
        instance=row["instance"],
        manifest_hash=row["manifest_hash"],
        shape=shapes[row["manifest_hash"]],
        expires_at=row["expires_at"],
        ended_at=row["ended_at"],
    )


async def leases(conn: Connection, schema: str = DEFAULT_SCHEMA) -> list[Lease]:
    """Every lease, running or not (an ended one still counts for the grace period)."""
    s = quote_ident(schema)
    query = f"""SELECT l.*, s.columns::text AS columns FROM {s}.leases l
                JOIN {s}.shapes s USING (manifest_hash) ORDER BY service, instance"""
    shapes: dict[str, Shape] = {}
    return [_lease(r, shapes) for r in await fetch_if_exists(conn, f"{schema}.leases", query)]


async def contract_records(
    conn: Connection, schema: str = DEFAULT_SCHEMA
) -> dict[str, ContractRecord]:
    """Migration id → its contract record (only migrations whose contract began)."""
    query = f"SELECT * FROM {quote_ident(schema)}.contracts"
    rows = await fetch_if_exists(conn, f"{schema}.contracts", query)
    return {
        r["migration_id"]: ContractRecord(
            migration_id=r["migration_id"],
            sync_dropped_at=r["sync_dropped_at"],
            column_dropped_at=r["column_dropped_at"],
            column_kept=r["column_kept"],
        )
        for r in rows
    }


async def record_contract(
    conn: Connection,
    migration_id: str,
    *,
    step: str,
    kept: str | None = None,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """One contract step committed (call it in the step's transaction): ``sync`` (trigger and
    function dropped), ``column`` (old column dropped) or ``kept`` (old column kept: ``kept``
    says why and what to do)."""
    column = {"sync": "sync_dropped_at", "column": "column_dropped_at", "kept": "column_kept"}
    value = "$2" if step == "kept" else "now()"
    await conn.execute(
        f"""INSERT INTO {quote_ident(schema)}.contracts AS c (migration_id, {column[step]})
            VALUES ($1, {value})
            ON CONFLICT (migration_id) DO UPDATE
               SET {column[step]} = excluded.{column[step]}, updated_at = now()""",
        migration_id,
        *([kept] if step == "kept" else []),
    )
