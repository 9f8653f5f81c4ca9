"""Repeated boots answered in one round trip: lease, locks, ledger, retired version, fingerprint.

Most boots are replicas of a version the database already satisfies. For a batch's boots of one
database (one per coalesced group), the gate calls one server-side function (installed in the
ledger schema on first use, named by a hash of its text so that workers of different versions
never share one). In one statement, it

0. looks the batch's request ids up in the ledger (the gate's first question about a batch):
   when one was served before, it stops there, having written nothing, and the gate answers
   that request from the ledger and checks the boots again;

then for each boot, in order:

1. records the boots' leases (:func:`worker.engine.lease_store.boot_statement`), before the
   locks, as every boot does;
2. tries the schemas' advisory locks for its own transaction only (``pg_try_advisory_xact_lock``:
   it never waits; a heal or a contract holding them makes it step aside);
3. then, in snapshots taken after the locks, reads what the heal reads under them first: whether
   another worker finished this request, whether a heal of these schemas is running or died, the
   contracted migrations (is this a retired version?), and the catalog's fingerprint with the
   last verification of this manifest;
4. when these prove ``unchanged`` under a condition stricter than :func:`answer`'s (nothing
   contracted at all, no migrations declared), writes the answer's ledger row, and one for
   each request coalesced with it.

The locks make the retired-version check as safe as the heal's: a contract decides under the same
locks, reading the leases after it took them, so either it sees this boot's lease, or this boot
sees its contract. :func:`answer` (pure) decides from these facts: ``unchanged`` when nothing
changed since the verification, ``blocked`` for a retired version, and otherwise None — then the
full heal runs, under the session locks, and decides everything again. A batch of no-drift
boots is one query; a ``blocked`` answer has its ledger rows written by the worker, under the
schemas' session locks as a heal writes them.
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

__all__ = [
    "SEEN", "Boot", "BootFacts", "Seen", "answer", "check_many", "forget", "read_facts",
]  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Boot:
    """Replicas booting with one manifest: the first one's request is answered (and recorded),
    every one of them is leased."""

    desired: Desired
    request: RequestInfo
    instances: tuple[tuple[str, str], ...]  # (service, instance)
    shape: Shape
    ttl_s: float
    # the requests coalesced with the first: (request id, service, instance, trace id,
    # position); an answer records a ledger row for each, pointing at the first's
    followers: tuple[tuple[str, str, str, str | None, str], ...] = ()


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
    #: followers it wrote no row for: another worker served them (answered from the ledger)
    skipped: tuple[str, ...] = ()


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


async def check_many(
    conn: Connection, boots: Sequence[Boot], options: HealOptions, *, lookup: Sequence[str] = ()
) -> list[HealResult | None] | Seen:
    """Lease every boot's instances and answer each one the facts prove (recorded in the ledger
    like a heal's, its followers too), in one round trip for them all; None for a boot the full
    heal must decide (its leases are written); ``SEEN`` when an id of ``lookup`` is in the
    ledger (nothing was written). Raises the database's errors."""
    started, clock = time.time(), time.perf_counter()
    with tracer().start_as_current_span("schemaheal boot check") as span:
        span.set_attribute("schemaheal.boots.count", len(boots))
        facts = await read_facts(conn, boots, options, lookup=lookup)
        if isinstance(facts, Seen):
            span.set_attribute("schemaheal.outcome", "seen")
            return SEEN
        elapsed = time.perf_counter() - clock
        results = []
        for boot, known in zip(boots, facts, strict=True):
            result = await _answered(conn, boot, known, options, started, elapsed)
            results.append(result and replace(result, span=span.get_span_context()))
        answered = sum(r is not None for r in results)
        span.set_attribute("schemaheal.answered.count", answered)
        return results


async def _answered(
    conn: Connection, boot: Boot, facts: BootFacts, options: HealOptions, started: float,
    elapsed: float,
) -> HealResult | None:  # fmt: skip
    result = answer(facts, boot)
    if facts.recorded is not None and (result is None or result.outcome != Outcome.UNCHANGED):
        raise RuntimeError(  # the function's condition is stricter than answer(): a bug
            f"the boot check recorded unchanged (ledger row {facts.recorded}) where the "
            "worker would not answer so; please report it"
        )
    if result is None:
        return None
    result = replace(result, duration_s=elapsed, timings={"fingerprint": elapsed})
    if facts.recorded is None:  # blocked (a retired version): its rows are written here
        return await heal_record.written_locked(conn, result, boot.request, options,
                                                boot.desired.realm, started=started,
                                                followers=boot.followers)  # fmt: skip
    return replace(result, ledger_id=facts.recorded, served_elsewhere=facts.skipped)


async def read_facts(
    conn: Connection, boots: Sequence[Boot], options: HealOptions, *, lookup: Sequence[str] = ()
) -> list[BootFacts] | Seen:
    """The one round trip (after the first on a connection, which installs what it needs): the
    facts of each boot, in order. Where ``options.record`` and the facts prove ``unchanged``, the
    function also writes the ledger rows of the answer and its followers (``recorded``)."""
    schema = options.ledger_schema
    database = await database_name(conn)
    name = await _ready(conn, database, schema)
    groups = json.dumps([_group(database, boot, options) for boot in boots])
    rows = await conn.fetch(f"SELECT * FROM {quote_ident(schema)}.{name}($1, $2)", groups,
                            list(lookup))  # fmt: skip
    if rows and rows[0]["seen"]:
        return SEEN
    facts = [BootFacts(locked=False)] * len(boots)
    for row in rows:
        if row["locked"]:
            facts[row["ordinal"] - 1] = BootFacts(
                locked=True, served=row["served"], running=row["running"],
                known=fingerprint.verification(row), contracted=_contracted(row["contracted"]),
                recorded=row["ledger_id"], skipped=tuple(row["skipped"] or ()),
            )  # fmt: skip
    return facts


def _group(database: str, boot: Boot, options: HealOptions) -> dict[str, Any]:
    """What the function needs of one boot."""
    schemas = sorted(boot.desired.realm.schemas)
    services, instances, columns = lease_store.boot_values(boot.instances, boot.shape)
    request = boot.request
    followers = [list(column) for column in zip(*boot.followers, strict=True)] or [[]] * 5
    return {
        "schemas": schemas, "keys": sorted({advisory_key(database, s) for s in schemas}),
        "services": services, "instances": instances, "columns": json.loads(columns),
        "manifest_hash": boot.desired.manifest_hash, "ttl_s": float(boot.ttl_s),
        "key": fingerprint.engine_key(boot.desired.manifest_hash),
        "record": options.record and not declares_migrations(boot.desired.realm),
        "request_id": request.request_id, "service": request.service,
        "instance": request.instance, "alias": request.database_alias,
        "trace_id": request.trace_id, "position": request.record_position,
        "followers": followers,
    }  # fmt: skip


#: the types of :func:`_group`'s fields, as the function reads them (``jsonb_to_record``)
_GROUP_FIELDS = """schemas text[], keys bigint[], services text[], instances text[], columns jsonb,
    manifest_hash text, ttl_s double precision, key text, record boolean, request_id text,
    service text, instance text, alias text, trace_id text, position text, followers jsonb"""


def _contracted(text: str | list[dict[str, Any]]) -> tuple[tuple[ColumnMigration, datetime], ...]:
    items: Sequence[dict[str, Any]] = json.loads(text) if isinstance(text, str) else text
    return tuple(
        (backfill_store.decode(i["migration"], i["id"]), datetime.fromisoformat(i["at"]))
        for i in items
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _function(schema: str) -> tuple[str, str]:
    """The function's name and its ``CREATE`` statement, for the ledger schema ``schema``."""
    s = quote_ident(schema)
    array = "ARRAY(SELECT jsonb_array_elements_text({}))".format
    leases = lease_store.boot_statement(s, services="g.services", instances="g.instances",
                                        manifest_hash="g.manifest_hash", columns="g.columns",
                                        ttl_s="g.ttl_s")  # fmt: skip
    followers = ledger.served_statement(
        s,
        *(array(f"g.followers->{i}") for i in range(5)),
        served_by="ledger_id",
        into="INTO skipped",
    )
    finished = ledger.finished("h")
    catalog = fingerprint.FINGERPRINT_SQL.replace("$1::text[]", "g.schemas")  # the schemas
    assert "$1::" not in catalog
    body = f"""
#variable_conflict use_column
DECLARE
    g record;
    lock_key bigint;
    began timestamptz;
    seqscan text := current_setting('enable_seqscan');
BEGIN
    -- The ledger is read with sequential scans off (set back for the fingerprint and at the end):
    -- a plan cached while it was small would scan it whole for ever after (93 ms in a storm).
    PERFORM set_config('enable_seqscan', 'off', true);
    -- the batch's ledger lookup: a request served before is answered from the ledger, first
    seen := EXISTS (SELECT FROM {s}.heals h WHERE h.request_id = ANY($2) AND {finished});
    IF seen THEN
        ordinal := 0;
        RETURN NEXT;
        PERFORM set_config('enable_seqscan', seqscan, true);
        RETURN;
    END IF;
    -- each group's fields typed in the loop's one query (no query per field)
    FOR g IN SELECT x.n, r.* FROM jsonb_array_elements($1) WITH ORDINALITY AS x(value, n),
                    jsonb_to_record(x.value) AS r({_GROUP_FIELDS}) LOOP
        began := clock_timestamp();
        ordinal := g.n;
        served := NULL; running := NULL; fingerprint := NULL; horizon := NULL;
        v_fingerprint := NULL; v_horizon := NULL; drift := NULL; contracted := NULL;
        ledger_id := NULL; skipped := NULL;
        {leases};
        locked := true;
        FOREACH lock_key IN ARRAY g.keys LOOP
            IF NOT pg_try_advisory_xact_lock(lock_key) THEN
                locked := false;
                EXIT;
            END IF;
        END LOOP;
        IF locked THEN
            -- each statement below reads a snapshot taken after the locks (a VOLATILE function)
            served := EXISTS (SELECT FROM {s}.heals h WHERE h.request_id = g.request_id
                                 AND {finished});
            running := EXISTS (SELECT FROM {s}.heals h
                                WHERE h.outcome = '{ledger.RUNNING}' AND h.schemas && g.schemas);
            PERFORM set_config('enable_seqscan', seqscan, true);  -- the planner's choice
            SELECT f.fingerprint, f.horizon INTO fingerprint, horizon FROM (
{catalog}
            ) f;
            PERFORM set_config('enable_seqscan', 'off', true);
            SELECT v.fingerprint, v.horizon, v.drift INTO v_fingerprint, v_horizon, drift
              FROM {s}.verified v WHERE v.key = g.key;
            contracted := '[]';
            IF to_regclass({_literal(f"{s}.migrations")}) IS NOT NULL THEN
                SELECT coalesce(jsonb_agg(jsonb_build_object('id', m.id, 'migration', m.migration,
                                                             'at', c.sync_dropped_at)
                                          ORDER BY m.registered_at, m.id), '[]')
                  INTO contracted
                  FROM {s}.contracts c JOIN {s}.migrations m ON m.id = c.migration_id
                 WHERE c.sync_dropped_at IS NOT NULL;
            END IF;
            -- what answer() requires for unchanged, and no contracted migration at all (then a
            -- retired version is for the worker to decide): the rows of the answer and of its
            -- followers, here
            IF g.record AND NOT served AND NOT running
               AND v_fingerprint = fingerprint AND horizon - v_horizon >= 0
               AND horizon - v_horizon < {fingerprint.WRAPAROUND_HORIZON}
               AND contracted = '[]'::jsonb THEN
                INSERT INTO {s}.heals (request_id, service, instance, database_alias,
                        manifest_hash, schemas, outcome, lock_wait_ms, duration_ms, started_at,
                        finished_at, trace_id, drift, record_position, migrations)
                VALUES (g.request_id, g.service, g.instance, g.alias, g.manifest_hash,
                        g.schemas, '{Outcome.UNCHANGED.value}', 0,
                        1000 * extract(epoch FROM clock_timestamp() - began), began,
                        clock_timestamp(), g.trace_id, coalesce(drift, '[]'),
                        g.position, '[]')
                RETURNING id INTO ledger_id;
                -- a boot without followers skips the statement (about a tenth of the check)
                IF jsonb_array_length(g.followers->0) > 0 THEN
                    {followers};
                END IF;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('enable_seqscan', seqscan, true);
END
"""
    name = "boot_check_" + hashlib.sha256((_SIGNATURE + body).encode()).hexdigest()[:16]
    create = f"""CREATE OR REPLACE FUNCTION {s}.{name}{_SIGNATURE[:-1]},
    OUT ordinal integer, OUT seen boolean, OUT locked boolean, OUT served boolean,
    OUT running boolean, OUT fingerprint text, OUT horizon numeric, OUT v_fingerprint text,
    OUT v_horizon numeric, OUT drift jsonb, OUT contracted jsonb, OUT ledger_id bigint,
    OUT skipped text[])
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog AS $boot_check${body}$boot_check$"""
    return name, create


_READY: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_SIGNATURE = "(jsonb, text[])"


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
