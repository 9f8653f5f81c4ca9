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
from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration
from worker.engine.expand_dependents import refusal
from worker.engine.expand_dependents_read import read_dependents
from worker.engine.expand_parts import object_name, physical_column, retired_column, table_name
from worker.engine.statements import Plan
from worker.errors import MigrationChanged, SwapRefused

__all__ = ["Clash", "clashes", "refuse_before_expand", "refuse_changed"]


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
        f"old column); or abandon the running migration: drop its trigger "
        f"{object_name(r, 'sync')} and function {r.schema}.{object_name(r, 'sync')}() on "
        f"{table}, the column {physical_column(r)} it added, and its record "
        f"(DELETE FROM {store_schema}.migrations WHERE id = '{r.id}'), then boot again"
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
        if not (p.migration.id in contracts and contracts[p.migration.id].contracted)
    ]
    found = clashes(wanted, running)
    if found:
        raise MigrationChanged("; ".join(message(c, store_schema) for c in found))


async def refuse_before_expand(conn: Connection, plan: Plan, store_schema: str) -> None:
    """Raise a :class:`~worker.errors.MigrationRefused` when a migration of ``plan`` changes a
    running one, or is an in-place change whose swap could not carry what uses the column."""
    await refuse_changed(conn, plan.migrations, store_schema)
    for m in plan.expanding:
        if not m.in_place or m.old_column is None:
            continue
        dependents = await read_dependents(conn, table_name(m), m.old_column)
        if dependents.unmovable:
            then = "boot again (or leave the column's type as it is)"
            raise SwapRefused(refusal(dependents.unmovable, table_name(m), m.old_column, then))
