"""Online migrations the heal refuses before anything runs (:func:`refuse_before_expand`).

An in-place change whose swap could not carry what already uses the old column (a materialized
view, a generated column …: :mod:`worker.engine.expand_dependents`) is refused before its expand,
naming them. And a migration whose expression changed mid-migration:

The manifest declares a migration (``using``, ``reverse``, ``backfill``) on a column that a
*different* registered migration — not contracted yet — already changes: the same column with
another expression, or a chain (``b`` renamed from ``a`` while ``a`` → ``b`` still runs). Two
sync triggers on one column would fight over it, and rows the first backfill converted would keep
the first expression's values. So the heal refuses, naming the running migration and what to do:
let it finish, declare the change under a new column name, or abandon it. :func:`clashes` is
pure; :func:`refuse_changed` reads the registered migrations and raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from worker.engine import backfill_store, lease_store
from worker.engine.abandon import swapped
from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration
from worker.engine.expand_dependents import refusal
from worker.engine.expand_dependents_read import read_dependents
from worker.engine.expand_partitioned import partitioned_refusals
from worker.engine.expand_parts import physical_column, retired_column, table_name
from worker.engine.plan_partitioned import key_refusals
from worker.engine.statements import Plan
from worker.errors import MigrationChanged, PartitionedTable, SwapRefused

__all__ = [
    "Clash",
    "Refusal",
    "clashes",
    "refusals_ahead",
    "refuse_before_expand",
    "refuse_changed",
    "swap_refusals",
    "unswapped",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Clash:
    """The manifest's migration ``wanted`` touches a column of ``running``, a different one."""

    wanted: ColumnMigration
    running: ColumnMigration


def columns(m: ColumnMigration) -> frozenset[str]:
    """Every column ``m`` writes or reads as its old shape, under any of its names."""
    names = {m.new_column, physical_column(m), m.old_column, retired_column(m)}
    return frozenset(n for n in names if n is not None)


def clashes(
    wanted: Iterable[ColumnMigration], running: Iterable[ColumnMigration]
) -> tuple[Clash, ...]:
    """Each (wanted, running) pair on the same table and column whose ids differ, sorted."""
    running = tuple(running)
    found = [
        Clash(wanted=w, running=r)
        for w in wanted
        for r in running
        if r.id != w.id and (r.schema, r.table) == (w.schema, w.table)
        and columns(r) & columns(w)
    ]  # fmt: skip
    return tuple(sorted(found, key=lambda c: (c.wanted.id, c.running.id)))


def message(clash: Clash, store_schema: str) -> str:
    """What changed, and the three ways on."""
    w, r = clash.wanted, clash.running
    table = f"{r.schema}.{r.table}"
    return (
        f"the manifest declares a {w.kind.value} of {table}.{w.new_column} that differs from the "
        f"running migration {r.id} ({r.kind.value} to {r.new_column} {r.new_type}, expression "
        f"{r.forward!r}{f', reverse {r.reverse!r}' if r.reverse else ''}); a migration's "
        "expression cannot change while it runs. Either deploy the manifest of the running "
        "migration until it has finished and contracted, then change the column in a new "
        "migration; or declare the new expression under a new column name (renamed_from the "
        f"old column); or abandon the running migration (it drops its trigger and the "
        f"column {physical_column(r)} it added, and records the abandonment): "
        f"`schemaheal backfill --dsn … --ledger-schema {store_schema} --abandon '{r.id}'` shows "
        f"what it would do, add --apply to do it; then boot again"
    )


async def refuse_changed(
    conn: Connection, wanted: tuple[ColumnMigration, ...], store_schema: str
) -> None:
    """Raise :class:`MigrationChanged` when a migration of ``wanted`` clashes with a
    registered one that has not contracted yet."""
    if not wanted:
        return
    contracts = await lease_store.contract_records(conn, store_schema)
    running = [
        p.migration
        for p in await backfill_store.registered(conn, store_schema)
        if p.state != backfill_store.ABANDONED
        and not (p.migration.id in contracts and contracts[p.migration.id].contracted)
    ]
    found = clashes(wanted, running)
    if found:
        raise MigrationChanged("; ".join(message(c, store_schema) for c in found))


#: how to go on, in a swap refused before its expand or ahead of a running migration's swap
BEFORE_EXPAND = "boot again (or leave the column's type as it is)"
BEFORE_SWAP = "the migration's swap can run (until then it stops there with this message)"


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """What a heal would refuse, or a running migration's swap would stop on: ``plan`` says it."""

    code: str
    migration: str | None
    message: str


async def swap_refusals(
    conn: Connection, migrations: Iterable[ColumnMigration], then: str
) -> tuple[tuple[ColumnMigration, str], ...]:
    """Each in-place change of ``migrations`` whose swap could not carry what uses its old
    column, with the refusal's text (``then``: how to go on)."""
    found = []
    for m in migrations:
        if not m.in_place or m.old_column is None:
            continue
        dependents = await read_dependents(conn, table_name(m), m.old_column, physical_column(m))
        if dependents.unmovable:
            found.append((m, refusal(dependents.unmovable, table_name(m), m.old_column, then)))
    return tuple(found)


async def refuse_before_expand(conn: Connection, plan: Plan, store_schema: str) -> None:
    """Raise a :class:`~worker.errors.MigrationRefused` when a migration of ``plan`` changes a
    running one, cannot run online on a partitioned table, or is an in-place change whose swap
    could not carry what uses the column, or when a unique key of ``plan`` cannot be made on a
    partitioned table."""
    await refuse_changed(conn, plan.migrations, store_schema)
    for why in key_refusals(plan.changes):
        raise PartitionedTable(why)
    for _, why in await partitioned_refusals(conn, plan.expanding):
        raise PartitionedTable(why)
    for _, why in await swap_refusals(conn, plan.expanding, BEFORE_EXPAND):
        raise SwapRefused(why)


def unswapped(registered: Iterable[backfill_store.Progress]) -> tuple[ColumnMigration, ...]:
    """The in-place changes among ``registered`` whose expand runs and has not swapped yet."""
    running = (backfill_store.BACKFILLING, backfill_store.ENFORCING)
    return tuple(
        p.migration
        for p in registered
        if p.migration.in_place and p.state in running
        and not swapped(p.migration, p.enforce_steps)
    )  # fmt: skip


async def refusals_ahead(
    conn: Connection, plan: Plan, unswapped: Iterable[ColumnMigration], store_schema: str
) -> tuple[Refusal, ...]:
    """What ``plan`` shows before anything runs: what a heal of it would refuse (the same text),
    and the running in-place changes not swapped yet (``unswapped``) whose swap would stop."""
    found = []
    try:
        await refuse_changed(conn, plan.migrations, store_schema)
    except MigrationChanged as exc:
        found.append(Refusal(code=exc.code, migration=None, message=str(exc)))
    for why in key_refusals(plan.changes):
        found.append(Refusal(code=PartitionedTable.code, migration=None, message=why))
    for m, why in await partitioned_refusals(conn, plan.expanding):
        found.append(Refusal(code=PartitionedTable.code, migration=m.id, message=why))
    for m, why in await swap_refusals(conn, plan.expanding, BEFORE_EXPAND):
        found.append(Refusal(code=SwapRefused.code, migration=m.id, message=why))
    for m, why in await swap_refusals(conn, unswapped, BEFORE_SWAP):
        found.append(Refusal(code=SwapRefused.code, migration=m.id, message=why))
    return tuple(found)
