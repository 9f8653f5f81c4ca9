"""A repeated boot answered in one round trip: lease, locks, ledger, retired version, fingerprint.

Most boots are replicas of a version the database already satisfies. For them the gate calls one
server-side function (installed in the ledger schema on first use, named by a hash of its text so
that workers of different versions never share one). In one statement, it

0. looks the batch's request ids up in the ledger (the gate's first question about a batch):
   when one was served before, it stops there, having written nothing, and the gate answers
   that request from the ledger and checks the boot again;
1. records the boots' leases (:func:`worker.engine.lease_store.boot_statement`), before the
   locks, as every boot does;
2. tries the schemas' advisory locks for its own transaction only (``pg_try_advisory_xact_lock``:
   it never waits; a heal or a contract holding them makes it step aside);
3. then, in snapshots taken after the locks, reads what the heal reads under them first: whether
   another worker finished this request, whether a heal of these schemas is running or died, the
   contracted migrations (is this a retired version?), and the catalog's fingerprint with the
   last verification of this manifest;
4. when these prove ``unchanged`` under a condition stricter than :func:`answer`'s (nothing
   contracted at all, no migrations declared), writes the answer's ledger row.

The locks make the retired-version check as safe as the heal's: a contract decides under the same
locks, reading the leases after it took them, so either it sees this boot's lease, or this boot
sees its contract. :func:`answer` (pure) decides from these facts: ``unchanged`` when nothing
changed since the verification, ``blocked`` for a retired version, and otherwise None — then the
full heal runs, under the session locks, and decides everything again. A no-drift boot is one
query; a ``blocked`` answer has its ledger row written by the worker, a second.
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine import backfill_store, fingerprint, heal_record, lease_store, ledger
from worker.engine.connection import Connection, database_name
from worker.engine.desired import Desired
from worker.engine.expand import ColumnMigration
from worker.engine.heal_migrations import declares_migrations, retired_reasons
from worker.engine.heal_values import HealOptions, HealResult, Outcome, RequestInfo
from worker.engine.liveness import Shape
from worker.engine.lock import advisory_key, advisory_locks
from worker.engine.plan import Plan
from worker.observability.tracing import tracer

__all__ = ["SEEN", "Boot", "BootFacts", "Seen", "answer", "check", "forget", "read_facts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Boot:
    """Replicas booting with one manifest: the first one's request is answered (and recorded),
    every one of them is leased."""

    desired: Desired
    request: RequestInfo
    instances: tuple[tuple[str, str], ...]  # (service, instance)
    shape: Shape
    ttl_s: float
    # the request ids of the whole batch (this database's): when one of them is in the ledger,
    # the function writes and reads nothing else (the gate answers it from the ledger first)
    lookup: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class BootFacts:
    """What the function read, after taking the schemas' locks."""

    locked: bool  # False: a heal or contract holds a lock; nothing else was read
    seen: bool = False  # a ``lookup`` id is in the ledger: nothing was written or read
    served: bool = False  # another worker finished a heal of this request id
    running: bool = False  # a heal of these schemas is running, or died (the heal closes it)
    known: fingerprint.Known | None = None
    contracted: tuple[tuple[ColumnMigration, datetime], ...] = ()  # when its trigger was dropped
    recorded: int | None = None  # the ledger row the function wrote for an ``unchanged`` answer


class Seen:
    """A request of the lookup was served before: the function wrote and read nothing else."""

    def __repr__(self) -> str:
        return "SEEN"


SEEN = Seen()


def answer(facts: BootFacts, boot: Boot) -> HealResult | None:
    """The reply to ``boot`` that ``facts`` prove, or None: the full heal must decide. The same
    order as the heal's: a retired version is blocked before its fingerprint is looked at (an old
    version's schema may well be unchanged)."""
    if facts.seen or not facts.locked or facts.served or facts.running or facts.known is None:
        return None
    manifest_hash = boot.desired.manifest_hash
    retired = retired_reasons(boot.shape, facts.contracted)
    if retired:
        return HealResult(outcome=Outcome.BLOCKED, manifest_hash=manifest_hash,
                          plan=Plan(statements=()), error_code="version-retired",
                          error_message="; ".join(retired))  # fmt: skip
    # a manifest migrating columns is planned every time: the reply says where they stand
    if declares_migrations(boot.desired.realm) or not fingerprint.trusted(facts.known):
        return None
    plan = Plan(statements=(), drift=facts.known.drift)
    return HealResult(outcome=Outcome.UNCHANGED, manifest_hash=manifest_hash, plan=plan)


async def check(conn: Connection, boot: Boot, options: HealOptions) -> HealResult | Seen | None:
    """Lease ``boot``'s instances and answer it when the facts prove the answer (recorded in the
    ledger like a heal's); None when the full heal must run (the leases are written); ``SEEN``
    when an id of ``boot.lookup`` is in the ledger (nothing was written). Raises the database's
    errors."""
    started, clock = time.time(), time.perf_counter()
    with tracer().start_as_current_span("schemaheal boot check") as span:
        record = options.record and not declares_migrations(boot.desired.realm)
        facts = await read_facts(conn, boot, options.ledger_schema, record=record)
        if facts.seen:
            span.set_attribute("schemaheal.outcome", "seen")
            return SEEN
        result = answer(facts, boot)
        span.set_attribute("schemaheal.outcome", result.outcome.value if result else "heal")
        if facts.recorded is not None and (result is None or result.outcome != Outcome.UNCHANGED):
            raise RuntimeError(  # the function's condition is stricter than answer(): a bug
                f"the boot check recorded unchanged (ledger row {facts.recorded}) where the "
                "worker would not answer so; please report it"
            )
        if result is None:
            return None
        elapsed = time.perf_counter() - clock
        result = replace(result, duration_s=elapsed, timings={"fingerprint": elapsed})
        ledger_id = facts.recorded
        if ledger_id is None:  # blocked (a retired version): its row is written here
            desired = boot.desired.realm
            ledger_id = await heal_record.record(conn, result, boot.request, options, started,
                                                 desired)  # fmt: skip
        return replace(result, ledger_id=ledger_id, span=span.get_span_context())


async def read_facts(
    conn: Connection, boot: Boot, schema: str, *, record: bool = False
) -> BootFacts:
    """The one round trip (after the first on a connection, which installs what it needs).
    With ``record``, the function also writes the ledger row of an ``unchanged`` answer when
    the facts prove it (``recorded``)."""
    database = await database_name(conn)
    name = await _ready(conn, database, schema)
    schemas = sorted(boot.desired.realm.schemas)
    keys = sorted({advisory_key(database, s) for s in schemas})
    services, instances, columns = lease_store.boot_values(boot.instances, boot.shape)
    request = boot.request
    row = await conn.fetchrow(
        f"SELECT * FROM {quote_ident(schema)}.{name}({', '.join(f'${i}' for i in range(1, 17))})",
        schemas, keys, request.request_id, services, instances,
        boot.desired.manifest_hash, columns, float(boot.ttl_s),
        fingerprint.engine_key(boot.desired.manifest_hash), list(boot.lookup), record,
        request.service, request.instance, request.database_alias, request.trace_id,
        request.record_position,
    )  # fmt: skip
    if row["seen"]:
        return BootFacts(locked=False, seen=True)
    if not row["locked"]:
        return BootFacts(locked=False)
    return BootFacts(locked=True, served=row["served"], running=row["running"],
                     known=fingerprint.verification(row),
                     contracted=_contracted(row["contracted"]),
                     recorded=row["ledger_id"])  # fmt: skip


def _contracted(text: str | list[dict[str, Any]]) -> tuple[tuple[ColumnMigration, datetime], ...]:
    items: Sequence[dict[str, Any]] = json.loads(text) if isinstance(text, str) else text
    return tuple(
        (backfill_store.decode(i["migration"], i["id"]), datetime.fromisoformat(i["at"]))
        for i in items
    )


def _function(schema: str) -> tuple[str, str]:
    """The function's name and its ``CREATE`` statement, for the ledger schema ``schema``."""
    s = quote_ident(schema)
    leases = lease_store.boot_statement(s, services="$4", instances="$5", manifest_hash="$6",
                                        columns="$7", ttl_s="$8")  # fmt: skip
    migrations = "'" + f"{s}.migrations".replace("'", "''") + "'"
    body = f"""
#variable_conflict use_column
DECLARE
    lock_key bigint;
    began timestamptz := clock_timestamp();
BEGIN
    -- the batch's ledger lookup: a request served before is answered from the ledger, first
    seen := EXISTS (SELECT FROM {s}.heals h WHERE h.request_id = ANY($10)
                       AND h.outcome <> '{ledger.RUNNING}'
                       AND h.outcome <> '{ledger.INTERRUPTED}');
    IF seen THEN
        RETURN;
    END IF;
    {leases};
    locked := true;
    FOREACH lock_key IN ARRAY $2 LOOP
        IF NOT pg_try_advisory_xact_lock(lock_key) THEN
            locked := false;
            RETURN;
        END IF;
    END LOOP;
    -- each statement below reads a snapshot taken after the locks (a VOLATILE function)
    served := EXISTS (SELECT FROM {s}.heals h WHERE h.request_id = $3
                         AND h.outcome <> '{ledger.RUNNING}'
                         AND h.outcome <> '{ledger.INTERRUPTED}');
    running := EXISTS (SELECT FROM {s}.heals h
                        WHERE h.outcome = '{ledger.RUNNING}' AND h.schemas && $1);
    SELECT f.fingerprint, f.horizon INTO fingerprint, horizon FROM (
{fingerprint.FINGERPRINT_SQL}
    ) f;
    SELECT v.fingerprint, v.horizon, v.drift INTO v_fingerprint, v_horizon, drift
      FROM {s}.verified v WHERE v.key = $9;
    contracted := '[]';
    IF to_regclass({migrations}) IS NOT NULL THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object('id', m.id, 'migration', m.migration,
                                                     'at', c.sync_dropped_at)
                                  ORDER BY m.registered_at, m.id), '[]')
          INTO contracted
          FROM {s}.contracts c JOIN {s}.migrations m ON m.id = c.migration_id
         WHERE c.sync_dropped_at IS NOT NULL;
    END IF;
    -- what answer() requires for unchanged, and no contracted migration at all (then a
    -- retired version is for the worker to decide): the answer's ledger row, here
    IF $11 AND NOT served AND NOT running AND v_fingerprint = fingerprint
       AND horizon - v_horizon >= 0 AND horizon - v_horizon < {fingerprint.WRAPAROUND_HORIZON}
       AND contracted = '[]'::jsonb THEN
        INSERT INTO {s}.heals (request_id, service, instance, database_alias, manifest_hash,
                schemas, outcome, lock_wait_ms, duration_ms, started_at, finished_at, trace_id,
                drift, record_position, migrations)
        VALUES ($3, $12, $13, $14, $6, $1, '{Outcome.UNCHANGED.value}', 0,
                1000 * extract(epoch FROM clock_timestamp() - began), began, clock_timestamp(),
                $15, coalesce(drift, '[]'), $16, '[]')
        RETURNING id INTO ledger_id;
    END IF;
END
"""
    name = "boot_check_" + hashlib.sha256((_SIGNATURE + body).encode()).hexdigest()[:16]
    create = f"""CREATE OR REPLACE FUNCTION {s}.{name}(
    text[], bigint[], text, text[], text[], text, jsonb, double precision, text, text[],
    boolean, text, text, text, text, text,
    OUT seen boolean, OUT locked boolean, OUT served boolean, OUT running boolean,
    OUT fingerprint text, OUT horizon numeric, OUT v_fingerprint text, OUT v_horizon numeric,
    OUT drift jsonb, OUT contracted jsonb, OUT ledger_id bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $boot_check${body}$boot_check$"""
    return name, create


_READY: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_SIGNATURE = (
    "(text[], bigint[], text, text[], text[], text, jsonb, double precision, text, text[],"
    " boolean, text, text, text, text, text)"
)


async def _ready(conn: Connection, database: str, schema: str) -> str:
    """The function's name, once its tables and itself exist (checked once per connection)."""
    name = _READY.get(conn, {}).get(schema)
    if name is not None:
        return name
    await ledger.ensure_ledger(conn, database, schema)
    await fingerprint.ensure_table(conn, schema)
    await lease_store.ensure_store(conn, schema)
    name, create = _function(schema)
    qualified = f"{quote_ident(schema)}.{name}{_SIGNATURE}"
    if not await conn.fetchval("SELECT to_regprocedure($1) IS NOT NULL", qualified):
        async with advisory_locks(conn, database, [f"\0boot_check\0{schema}"]):
            await conn.execute(create)
    _READY.setdefault(conn, {})[schema] = name
    return name


def forget(conn: Connection) -> None:
    """Check again on the next boot (the ledger schema may have been dropped)."""
    _READY.pop(conn, None)
