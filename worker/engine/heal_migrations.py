"""The heal's part in online column migrations: register each migration it expands, in the
transaction of its expand, and say where every migration of the manifest stands.

The heal runs only the expand (the new column and its sync trigger); the backfill and the NOT
NULL enforcement run in the background (:mod:`worker.engine.backfill`), so a long backfill never
holds a boot. The reply then says what is still running and what the service may rely on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from contracts.identifiers import quote_ident
from worker.engine import backfill_store, lease_store
from worker.engine.apply import AppliedStatement
from worker.engine.connection import Connection, relation_exists
from worker.engine.contract import ContractSettings
from worker.engine.contract_reason import Expand, Liveness, contract_reason
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_sql import render
from worker.engine.function_mentions import function_warnings
from worker.engine.liveness import Shape, shape_of, uses_old_shape
from worker.engine.model import Realm
from worker.engine.statements import Plan

__all__ = [
    "MigrationStatus",
    "declares_migrations",
    "read_liveness",
    "registered_ids",
    "registering",
    "retired_reasons",
    "retired_uses",
    "started_migrations",
    "statuses",
]

Progress = Callable[[Sequence[AppliedStatement]], Awaitable[None]]

#: what the service may rely on, by the migration's state
_RELY = {
    backfill_store.BACKFILLING: "the column exists and writes of either version are kept in "
    "step; existing rows are being backfilled; NOT NULL is not enforced yet",
    backfill_store.ENFORCING: "every row is converted and writes are kept in step; NOT NULL "
    "(and a swap in place) is being enforced",
    backfill_store.EXPANDED: "complete: every row converted and enforced; the old shape is "
    "kept in step until contract",
    backfill_store.ABANDONED: "abandoned (schemaheal backfill --abandon): its trigger and new "
    "column are dropped; the next heal of this manifest starts it afresh",
}
#: states after contract began (the contracts record), past ``expanded``
CONTRACTED, KEPT = "contracted", "retired-kept"
_UNREGISTERED = "not registered for its backfill yet: the next heal of this manifest expands it"


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationStatus:
    """Where one online migration stands, for the reply."""

    id: str
    kind: MigrationKind
    target: str  # schema.table.column
    state: str  # backfilling, enforcing, expanded (see backfill_store), or unregistered
    rows_done: int
    error: str | None
    relies_on: str
    #: where its contract stands and why it waits (:func:`~worker.engine.contract_reason.
    #: contract_reason`); the kind of wait (a :class:`~worker.engine.liveness.Wait`), or None
    contract: str = ""
    waiting: str | None = None

    @property
    def running(self) -> bool:
        return self.state in (backfill_store.BACKFILLING, backfill_store.ENFORCING)


def declares_migrations(desired: Realm) -> bool:
    """True when a column of ``desired`` declares intent (renamed_from, using, backfill)."""
    return any(c.intent is not None for t in desired.tables for c in t.columns)


async def registered_ids(conn: Connection, desired: Realm, schema: str) -> frozenset[str] | None:
    """The ids of every registered migration, when ``desired`` declares any (else None: not
    needed). Read before planning, so that an expand nobody registered is planned again."""
    if not declares_migrations(desired):
        return None
    if not await relation_exists(conn, f"{schema}.migrations"):
        return frozenset()
    rows = await conn.fetch(
        f"SELECT id FROM {quote_ident(schema)}.migrations WHERE state <> $1",
        backfill_store.ABANDONED,
    )
    return frozenset(r["id"] for r in rows)


async def registering(
    conn: Connection, plan: Plan, then: Progress | None, schema: str
) -> Progress | None:
    """``then`` (the ledger's per-statement record), plus: after the last command of each
    migration's expand, in its transaction, register the migration for its backfill."""
    by_last = {render(m).expand[-1]: m for m in plan.expanding}
    if not by_last:
        return then
    await backfill_store.ensure_store(conn, schema)  # outside the expand's transaction

    async def record(applied: Sequence[AppliedStatement]) -> None:
        if then is not None:
            await then(applied)
        for statement in applied:
            migration = by_last.get(statement.sql)
            if migration is not None:
                await backfill_store.register(conn, migration, schema)

    return record


async def statuses(
    conn: Connection,
    migrations: tuple[ColumnMigration, ...],
    schema: str,
    settings: ContractSettings | None = None,
) -> tuple[MigrationStatus, ...]:
    """Each migration's state from its progress record, and why its contract waits (judged with
    the worker's contract ``settings``). Reads only (``plan`` uses it too)."""
    if not migrations:
        return ()
    records = await _records(conn, [m.id for m in migrations], schema)
    contracts = await lease_store.contract_records(conn, schema)
    settings = settings or ContractSettings()
    liveness = await read_liveness(conn, schema, settings.grace_s, settings.lease_ttl_s)
    checks = {m.id: text for m, text in await function_warnings(conn, migrations)}
    out = []
    for m in migrations:
        status = _contracted(m, _status(m, records.get(m.id)), contracts)
        record = contracts.get(m.id)
        expand = Expand(
            state=status.state if record is None else backfill_store.EXPANDED,
            rows_done=status.rows_done,
            rows_estimate=await _estimate(conn, m) if status.state == "backfilling" else None,
            error=status.error,
        )
        why = contract_reason(m, expand, record, liveness)
        wait = why.wait.value if why.wait is not None else None
        reason = why.reason if m.id not in checks else f"{why.reason}; {checks[m.id]}"
        out.append(replace(status, contract=reason, waiting=wait))
    return tuple(out)


async def read_liveness(
    conn: Connection, schema: str, grace_s: float, lease_ttl_s: float
) -> Liveness:
    """The leases, since when they are recorded, and the database's clock. Reads only."""
    tracked = None
    if await relation_exists(conn, f"{schema}.liveness"):
        tracked = await lease_store.tracked_since(conn, schema)
    return Liveness(
        leases=tuple(await lease_store.leases(conn, schema)), now=await lease_store.now(conn),
        tracked_since=tracked, grace_s=grace_s, lease_ttl_s=lease_ttl_s,
    )  # fmt: skip


async def _estimate(conn: Connection, m: ColumnMigration) -> int | None:
    """The table's estimated rows (None: never analysed)."""
    found = await conn.fetchval(
        "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)",
        f"{quote_ident(m.schema)}.{quote_ident(m.table)}",
    )
    return int(found) if found is not None and found >= 0 else None


def _contracted(
    m: ColumnMigration, status: MigrationStatus, contracts: dict[str, lease_store.ContractRecord]
) -> MigrationStatus:
    """The status once contract began: the old shape is no longer kept in step."""
    record = contracts.get(m.id)
    if record is None or not record.contracted:
        return status
    if record.column_dropped_at is None and record.column_kept is not None:
        return replace(status, state=KEPT, relies_on=f"contracted: the trigger is gone; "
                       f"{record.column_kept}")  # fmt: skip
    return replace(status, state=CONTRACTED, relies_on="contracted: the new shape only; the "
                   "trigger and the old column are gone")  # fmt: skip


async def _records(conn: Connection, ids: list[str], schema: str) -> dict[str, Any]:
    if not await relation_exists(conn, f"{schema}.migrations"):
        return {}
    rows = await conn.fetch(
        f"""SELECT id, state, rows_touched, error FROM {quote_ident(schema)}.migrations
             WHERE id = ANY($1::text[])""",
        ids,
    )
    return {r["id"]: r for r in rows}


def _status(m: ColumnMigration, record: Any) -> MigrationStatus:
    state = record["state"] if record is not None else "unregistered"
    error = record["error"] if record is not None else None
    return MigrationStatus(
        id=m.id,
        kind=m.kind,
        target=f"{m.schema}.{m.table}.{m.new_column}",
        state=state,
        rows_done=record["rows_touched"] if record is not None else 0,
        error=error,
        relies_on=f"stopped: {error}" if error is not None else _RELY.get(state, _UNREGISTERED),
    )


def started_migrations(plan: Plan, states: Sequence[MigrationStatus]) -> tuple[dict[str, Any], ...]:
    """The migrations a heal of ``plan`` started (its expand registered them), for its ledger
    row: kind, table, columns and the phase each was in when the heal answered."""
    by_id = {s.id: s for s in states}
    return tuple(
        {"id": m.id, "kind": m.kind.value, "table": f"{m.schema}.{m.table}",
         "column": m.new_column, "from": m.old_column, "type": m.new_type,
         "phase": by_id[m.id].state}
        for m in plan.expanding
        if m.id in by_id and by_id[m.id].state != "unregistered"
    )  # fmt: skip


async def retired_uses(conn: Connection, desired: Realm, schema: str) -> tuple[str, ...]:
    """Why ``desired`` is a retired version: each contracted migration whose old shape it uses
    (its writes would no longer be kept in step, or its old column is gone)."""
    records = await lease_store.contract_records(conn, schema)
    if not records:
        return ()
    contracted = [
        (p.migration, records[p.migration.id].sync_dropped_at)
        for p in await backfill_store.registered(conn, schema)
        if p.migration.id in records and records[p.migration.id].contracted
    ]
    return retired_reasons(shape_of(desired), contracted)


def retired_reasons(
    shape: Shape, contracted: Iterable[tuple[ColumnMigration, object]]
) -> tuple[str, ...]:
    """Why a manifest of ``shape`` is a retired version, from the ``contracted`` migrations
    (each with when its contract dropped the trigger): those whose old shape it uses."""
    return tuple(_retired(m, when) for m, when in contracted if uses_old_shape(shape, m))


def _retired(m: ColumnMigration, when: object) -> str:
    table = f"{m.schema}.{m.table}"
    old = f"column {m.old_column}" if m.old_column else f"{table} without {m.new_column}"
    if m.in_place:
        old = f"column {m.old_column} of its old type"
    return (
        f"this version is retired: {table} finished its {m.kind.value} migration to "
        f"{m.new_column} {m.new_type} (contracted at {when}), and its old shape ({old}) is no "
        f"longer kept in step; deploy a version whose manifest declares {m.new_column}"
    )
