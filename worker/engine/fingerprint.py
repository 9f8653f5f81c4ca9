"""The no-drift fast path: answer a repeated, already-verified manifest from one catalog query.

After a heal that left the database satisfying a manifest, the worker stores the *fingerprint*
of the catalog rows of the manifest's schemas (``fingerprint.sql``: a count and a sum of hashes
of each row's ``(ctid, xmin)``), taken *before* the inspection that proved it. The next request
for the same manifest computes the fingerprint again; when it is equal, no catalog row that
inspection depends on was written since (every DDL, by anyone, writes one), so the answer is the
proof's: unchanged, with the same informational drift. Otherwise the full inspection runs.

The rows are those of the manifest's schemas' relations and of the partitions below them, at
any depth and in whatever schema, and of what they name. Of ``pg_namespace`` it hashes only the
manifest's schemas by name (present or not, so creating or renaming a schema to one of those
names counts) and the schemas of the objects the other hashed rows name (the texts print them
schema-qualified): another service creating or dropping its own schema leaves the fingerprint,
and so every other manifest's verification, alone.

Taken before the proof, a DDL that lands between the fingerprint and the inspection makes the
stored fingerprint older than the database, never newer: the next check differs and inspects.
Row xmins are 32-bit and wrap around after 2**31 transactions; a stored fingerprint older than
that horizon is not trusted. Entries are keyed by the manifest hash *and* a hash of the engine's
own source, so a new worker version never trusts a verification made by another one.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import contracts
from contracts.identifiers import quote_ident
from worker.engine.changes import Drift, DriftKind
from worker.engine.connection import Connection, database_name, relation_exists
from worker.engine.lock import advisory_locks

__all__ = [
    "Fingerprint", "Known", "check", "engine_key", "ensure_table", "read", "store", "trusted",
    "verification",
]  # fmt: skip

_HERE = Path(__file__).parent
FINGERPRINT_SQL = (_HERE / "fingerprint.sql").read_text(encoding="utf-8")
WRAPAROUND_HORIZON = 2**31 - 1


def _engine_source_hash() -> str:
    """The engine's and the contracts' code: what turns a manifest and a catalog into a plan."""
    digest = hashlib.sha256()
    for folder in (_HERE, Path(contracts.__file__).parent):
        for path in sorted([*folder.glob("*.py"), *folder.glob("*.sql")]):
            digest.update(f"{folder.name}/{path.name}".encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


ENGINE_HASH = _engine_source_hash()


def engine_key(manifest_hash: str) -> str:
    """What a verification is stored under: this manifest, checked by this engine's code."""
    return hashlib.sha256(f"{manifest_hash}\0{ENGINE_HASH}".encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Fingerprint:
    value: str
    horizon: int  # the snapshot's xmin (xid8) when taken


@dataclass(frozen=True, slots=True, kw_only=True)
class Known:
    """The current fingerprint and the last verification stored for the same key, if any."""

    current: Fingerprint
    verified: Fingerprint | None = None
    drift: tuple[Drift, ...] = ()


def trusted(known: Known) -> bool:
    """True when nothing the manifest depends on changed since the stored verification."""
    verified = known.verified
    return (
        verified is not None
        and verified.value == known.current.value
        and 0 <= known.current.horizon - verified.horizon < WRAPAROUND_HORIZON
    )


def _table_ddl(schema: str) -> str:
    s = quote_ident(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.verified (
    key text PRIMARY KEY,  -- engine_key(manifest hash)
    manifest_hash text NOT NULL,
    fingerprint text NOT NULL,
    horizon numeric NOT NULL,
    drift jsonb NOT NULL DEFAULT '[]',
    verified_at timestamptz NOT NULL DEFAULT now()
);
"""


_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


async def ensure_table(conn: Connection, schema: str) -> None:
    """Create ``<schema>.verified`` unless it exists (checked once per connection)."""
    if schema in _READY.get(conn, ()):
        return
    if not await relation_exists(conn, f"{schema}.verified"):
        database = await database_name(conn)
        async with advisory_locks(conn, database, [f"\0verified\0{schema}"]), conn.transaction():
            await conn.execute(_table_ddl(schema))
    _READY.setdefault(conn, set()).add(schema)


async def read(conn: Connection, schemas: Iterable[str]) -> Fingerprint:
    """The current fingerprint of ``schemas`` (one query)."""
    row = await conn.fetchrow(FINGERPRINT_SQL, sorted(schemas))
    return Fingerprint(value=row["fingerprint"], horizon=int(row["horizon"]))


async def check(conn: Connection, schemas: Iterable[str], key: str, ledger_schema: str) -> Known:
    """The current fingerprint with the stored verification of ``key``: one round trip."""
    await ensure_table(conn, ledger_schema)
    row = await conn.fetchrow(
        f"""SELECT f.fingerprint, f.horizon, v.fingerprint AS v_fingerprint,
                   v.horizon AS v_horizon, v.drift
              FROM ({FINGERPRINT_SQL}) f
              LEFT JOIN {quote_ident(ledger_schema)}.verified v ON v.key = $2""",
        sorted(schemas),
        key,
    )
    return verification(row)


def verification(row: Any) -> Known:
    """The :class:`Known` in a row of ``fingerprint``, ``horizon`` and the stored verification's
    ``v_fingerprint``, ``v_horizon`` and ``drift`` (NULL when there is none)."""
    current = Fingerprint(value=row["fingerprint"], horizon=int(row["horizon"]))
    if row["v_fingerprint"] is None:
        return Known(current=current)
    verified = Fingerprint(value=row["v_fingerprint"], horizon=int(row["v_horizon"]))
    return Known(current=current, verified=verified, drift=_drift(row["drift"]))


async def store(
    conn: Connection,
    *,
    key: str,
    manifest_hash: str,
    taken: Fingerprint,
    drift: tuple[Drift, ...],
    ledger_schema: str,
) -> None:
    """Remember that the database satisfied the manifest when ``taken`` was read."""
    await ensure_table(conn, ledger_schema)
    await conn.execute(
        f"""INSERT INTO {quote_ident(ledger_schema)}.verified
                (key, manifest_hash, fingerprint, horizon, drift)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,
                horizon = EXCLUDED.horizon, drift = EXCLUDED.drift, verified_at = now()""",
        key,
        manifest_hash,
        taken.value,
        taken.horizon,
        json.dumps([{"kind": d.kind.value, "target": d.target, "detail": d.detail} for d in drift]),
    )


def _drift(text: str | list[dict[str, str]]) -> tuple[Drift, ...]:
    items = json.loads(text) if isinstance(text, str) else text
    return tuple(
        Drift(kind=DriftKind(d["kind"]), target=d["target"], detail=d["detail"]) for d in items
    )
