"""Diff of a column that declares intent (``renamed_from``, ``using``, ``backfill``): which online
migration it needs, or whether the catalog shows its expand already ran. Pure.

Part of :mod:`worker.engine.diff_table`. The catalog tells where a migration stands, with no
record needed: both the old and the new column exist (a rename or conversion expanded, not yet
contracted), a shadow column exists (a conversion in place before or after its swap), or the new
column exists still nullable (a backfill not yet enforced). Expand changes nothing that the old
version's manifest would see as drift: the new column is an extra column to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from contracts.identifiers import quote_ident
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import Drift, DriftKind
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_parts import derived_name, handover_index

__all__ = [
    "Found",
    "build_handover",
    "held_by_rename",
    "intent_diff",
    "kept_columns",
    "lossless_widening",
    "renames",
    "sequence_widened_online",
    "shadow_column",
    "unique_handovers",
    "widened_online",
]

_INTEGERS = ("smallint", "integer", "bigint")


def shadow_column(name: str, role: str) -> str:
    """``<name>__sh_<role>`` within 63 bytes, as the renderer names it (role ``new``: a
    conversion in place being built; ``old``: the column it replaced, kept until contract)."""
    return derived_name(name, f"__sh_{role}")


def lossless_widening(current: str, desired: str) -> bool:
    """An integer type into a wider one: every value converts, and back while it fits."""
    if current in _INTEGERS and desired in _INTEGERS:
        return _INTEGERS.index(desired) > _INTEGERS.index(current)
    return False


def widened_online(table: m.Table, existing: m.Column, column: m.Column) -> bool:
    """An old manifest's narrower type after a conversion in place swapped in the wider column:
    the replaced column, kept until contract, still has the type this manifest declares."""
    replaced = table.column(shadow_column(column.name, "old"))
    return (
        replaced is not None
        and replaced.type == column.type
        and lossless_widening(column.type, existing.type)
    )


def kept_columns(desired: m.Table) -> dict[str, str | None]:
    """The columns the migrations of ``desired`` keep besides the declared ones, with why: the
    old column of a rename (an extra column, until contract), and the shadow columns of a change
    in place (None: the migration's own, not reported)."""
    kept: dict[str, str | None] = {}
    for column in desired.columns:
        intent = column.intent or m.Intent()
        if intent.renamed_from is not None:
            kept[intent.renamed_from] = (
                f"renamed to {column.name}; kept for old replicas until contract"
            )
        elif intent.using is not None:
            kept[shadow_column(column.name, "new")] = None
            kept[shadow_column(column.name, "old")] = None
    return kept


def renames(table: m.Table) -> dict[str, str]:
    """Old name → new name of each column that ``table`` (desired) renames."""
    return {
        c.intent.renamed_from: c.name
        for c in table.columns
        if c.intent is not None and c.intent.renamed_from is not None
    }


def unique_handovers(current: m.Table, desired: m.Table) -> dict[str, m.Index]:
    """The unique constraints that keep their name across a rename of their columns: the new
    columns' unique index, built under :func:`~worker.engine.expand_parts.handover_index` until
    contract adds the constraint back ``USING INDEX`` it, by that name."""
    renamed = renames(desired)
    if not renamed:
        return {}
    existing = {u.name: u for u in current.unique}
    out: dict[str, m.Index] = {}
    for key in desired.unique:
        found = existing.get(key.name)
        if found is None or found.columns == key.columns:
            continue
        moved = tuple(renamed.get(c, c) for c in found.columns)
        if moved == key.columns and not (key.nulls_not_distinct or found.nulls_not_distinct):
            name = handover_index(key.name)
            elements = tuple(m.IndexElement(column=c) for c in key.columns)
            out[name] = m.Index(name=name, elements=elements, unique=True)
    return out


def build_handover(table: m.Table, index: m.Index) -> tuple[ch.Change, ...]:
    """``index`` (a handover's) built, or built again when its build was interrupted."""
    built = next((i for i in table.indexes if i.name == index.name), None)
    if built is None:
        return (ch.AddIndex(table=table, index=index),)
    return () if built.valid else (ch.RebuildInvalidIndex(table=table, index=index),)


def held_by_rename(
    current: m.Index, desired: m.Index, table: m.Table, same: Callable[[m.Index, m.Index], bool]
) -> bool:
    """The current index of ``desired``'s name is the ``same`` index on a column that ``table``
    (desired) renames: old replicas use it until contract, so the new column's index is built
    under :func:`~worker.engine.expand_parts.handover_index` meanwhile."""
    renamed = renames(table)
    if not any(e.column in renamed for e in current.elements):
        return False
    moved = tuple(
        replace(e, column=renamed.get(e.column or "", e.column)) for e in current.elements
    )
    return same(replace(current, elements=moved), desired)


def sequence_widened_online(
    current: m.Realm, desired: m.Realm, seq: m.Sequence, existing: m.Sequence
) -> bool:
    """The sequence of a key converted in place is widened by the swap: before it, the new
    manifest's wider type is pending, not drift; after it, the old manifest's narrower type is
    accepted as long as the replaced column is kept (as for the column itself)."""
    if seq.owned_by is None:
        return False
    table_name, column_name = seq.owned_by
    if lossless_widening(existing.data_type, seq.data_type):  # the new manifest, before the swap
        table = desired.table(seq.schema, table_name)
        column = table.column(column_name) if table is not None else None
        return column is not None and column.intent is not None and column.intent.using is not None
    if lossless_widening(seq.data_type, existing.data_type):  # the old manifest, after the swap
        table = current.table(seq.schema, table_name)
        return table is not None and table.column(shadow_column(column_name, "old")) is not None
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Found:
    """What the intent decides: changes and drift, and the column the plain column diff goes on
    with (None: the intent decided everything about this column)."""

    changes: tuple[ch.Change, ...] = ()
    drift: tuple[Drift, ...] = ()
    rest: m.Column | None = None


def intent_diff(table: m.Table, column: m.Column) -> Found:
    """``column`` (desired, with intent) against the current ``table``."""
    intent = column.intent or m.Intent()
    if intent.renamed_from is not None:
        return _renamed(table, column, intent.renamed_from, intent)
    if intent.using is not None:
        return _in_place(table, column, intent.using)
    if intent.backfill is not None:
        return _backfill(table, column, intent.backfill)
    return Found(rest=column)


def _renamed(table: m.Table, column: m.Column, old_name: str, intent: m.Intent) -> Found:
    old, new = table.column(old_name), table.column(column.name)
    if old is None:  # never there, or contracted: a plain column
        return Found(rest=column)
    if table.primary_key is not None and old_name in table.primary_key.columns:
        detail = (
            f"{old_name} is in the primary key, which backfills page by: renaming a key column "
            "online is not supported; keep its name"
        )
        return _drift(table, column, detail)
    kind = MigrationKind.RENAME if intent.using is None else MigrationKind.CONVERT
    if kind is MigrationKind.RENAME and old.type != column.type:
        return _drift(table, column, f"renamed from {old_name} of type {old.type} into "
                      f"{column.type}: give 'using' to convert the values")  # fmt: skip
    reverse = intent.reverse
    if reverse is None and kind is MigrationKind.RENAME:
        reverse = quote_ident(column.name)
    if reverse is None and not old.nullable:
        return _drift(table, column, f"{old_name} is NOT NULL and old replicas read it: give "
                      "'reverse' so that rows new replicas write fill it too")  # fmt: skip
    migration = _migration(table, column, kind, intent.using or quote_ident(old_name))
    if migration is None:
        return _no_key(table, column)
    migration = replace(migration, old_column=old_name, reverse=reverse)
    if new is not None:  # expanded, and not contracted yet
        return _expanded(table, column, migration, _not_null_pending(column, new))
    return _expand(table, column, migration, extras=_new_column_extras(table, column))


def _in_place(table: m.Table, column: m.Column, using: str) -> Found:
    existing = table.column(column.name)
    if existing is None:
        return Found(rest=column)
    building = table.column(shadow_column(column.name, "new"))
    replaced = table.column(shadow_column(column.name, "old"))
    if existing.type == column.type and replaced is None:
        return Found(rest=column)  # never needed, or contracted
    if existing.type != column.type and not lossless_widening(existing.type, column.type):
        return Found(rest=column)  # the plain diff widens in place or reports the mismatch
    migration = _migration(table, column, MigrationKind.CONVERT, using)
    if migration is None:
        return _no_key(table, column)
    # new_column keeps the final name; the renderer builds it under shadow_column(name, "new")
    migration = replace(migration, old_column=column.name, in_place=True)
    if building is not None or replaced is not None:  # the swap is enforce's, after backfill
        return _expanded(table, column, migration, replace(column, type=existing.type))
    return _expand(table, column, migration)


def _backfill(table: m.Table, column: m.Column, backfill: str) -> Found:
    existing = table.column(column.name)
    if existing is None and table.has_rows is False:
        return Found(rest=column)  # an empty table takes a NOT NULL column at once
    migration = _migration(table, column, MigrationKind.BACKFILL, backfill)
    if migration is None:
        return _no_key(table, column)
    if existing is not None:  # expanded (enforced or not), until contract drops its trigger
        return _expanded(table, column, migration, _not_null_pending(column, existing))
    return _expand(table, column, migration, extras=_new_column_extras(table, column))


def _migration(
    table: m.Table, column: m.Column, kind: MigrationKind, forward: str
) -> ColumnMigration | None:
    if table.primary_key is None:
        return None
    return ColumnMigration(
        kind=kind,
        schema=table.schema,
        table=table.name,
        key=table.primary_key.columns,
        new_column=column.name,
        new_type=column.type,
        forward=forward,
        not_null=not column.nullable,
    )


def _expand(
    table: m.Table, column: m.Column, migration: ColumnMigration, extras: tuple[ch.Change, ...] = ()
) -> Found:
    return Found(changes=(ch.ExpandColumn(table=table, column=column, migration=migration),
                          *extras))  # fmt: skip


def _expanded(
    table: m.Table, column: m.Column, migration: ColumnMigration, rest: m.Column
) -> Found:
    """The expand ran: the plain diff goes on with ``rest``, the column less what the backfill
    and enforce still have to do."""
    change = ch.ExpandColumn(table=table, column=column, migration=migration, expanded=True)
    return Found(changes=(change,), rest=rest)


def _not_null_pending(column: m.Column, current: m.Column) -> m.Column:
    """NOT NULL is set by enforce after the backfill, never by the heal."""
    return replace(column, nullable=column.nullable or current.nullable)


def _new_column_extras(table: m.Table, column: m.Column) -> tuple[ch.Change, ...]:
    """What ADD COLUMN of the expand does not set: the new column's default and comment."""
    extras: list[ch.Change] = []
    if column.default is not None:
        extras.append(ch.SetDefault(table=table, column=column))
    if column.comment is not None:
        extras.append(ch.SetComment(table=table, column=column.name, comment=column.comment))
    return tuple(extras)


def _no_key(table: m.Table, column: m.Column) -> Found:
    return _drift(table, column, "an online migration backfills by primary key, and this table "
                  "has none: add a primary key first")  # fmt: skip


def _drift(table: m.Table, column: m.Column, detail: str) -> Found:
    target = f"{table.qualified}.{column.name}"
    return Found(drift=(Drift(kind=DriftKind.MIGRATION_BLOCKED, target=target, detail=detail),))
