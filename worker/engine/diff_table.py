"""Diff of one table that exists on both sides: columns, indexes, keys, foreign keys, checks.

Part of :mod:`worker.engine.diff` (split by what each part owns). Pure; additive changes only,
everything else becomes :class:`~worker.engine.changes.Drift`.
"""

from __future__ import annotations

from dataclasses import replace

from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import Drift, DriftKind
from worker.engine.diff_intent import (
    build_handover,
    held_by_rename,
    intent_diff,
    kept_columns,
    unique_handovers,
    widened_online,
)
from worker.engine.diff_unchanged import unchanged
from worker.engine.expand_parts import handover_index
from worker.engine.normalize import same_expression
from worker.engine.widening import is_metadata_only_widening

__all__ = ["diff_table", "needs_rows_absent", "same_index", "walk_table"]


def _report(drift: list[Drift], kind: DriftKind, table: m.Table, name: str, detail: str) -> None:
    drift.append(Drift(kind=kind, target=f"{table.qualified}.{name}", detail=detail))


def needs_rows_absent(column: m.Column) -> bool:
    """A NOT NULL column with no way to fill existing rows: only an empty table can take it."""
    no_value = column.default is None and column.identity is None and column.generated is None
    return not column.nullable and no_value


def diff_table(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    if not unchanged(current, desired):
        walk_table(current, desired, changes, drift)


def walk_table(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    """The diff of one table, part by part (what :func:`diff_table` does unless the table is
    :func:`unchanged`)."""
    for column in desired.columns:
        _column(current, column, changes, drift)
    declared = {c.name for c in desired.columns}
    kept = kept_columns(desired)
    for column in current.columns:
        detail = kept.get(column.name, "not in the manifest; kept with its data")
        if column.name not in declared and detail is not None:
            _report(drift, DriftKind.EXTRA_COLUMN, current, column.name, detail)
    if desired.comment is not None and desired.comment != current.comment:
        changes.append(ch.SetComment(table=current, column=None, comment=desired.comment))
    handovers = unique_handovers(current, desired)
    _indexes(current, desired, changes, drift, set(handovers))
    _keys(current, desired, changes, drift, handovers)
    _foreign_keys(current, desired, changes, drift)
    _checks(current, desired, changes, drift)


def _column(table: m.Table, column: m.Column, changes: list[ch.Change], drift: list[Drift]) -> None:
    if column.intent is not None:
        found = intent_diff(table, column)
        changes.extend(found.changes)
        drift.extend(found.drift)
        if found.rest is None:
            return
        column = found.rest
    existing = table.column(column.name)
    if existing is None:
        if needs_rows_absent(column) and table.has_rows is not False:
            _report(
                drift,
                DriftKind.NOT_NULL_ON_POPULATED_TABLE,
                table,
                column.name,
                "a NOT NULL column without a default cannot be added to a "
                "table that has rows: give it a default, or make it "
                "nullable and backfill it first",
            )
        else:
            changes.append(ch.AddColumn(table=table, column=column))
        return
    if existing == column:  # the common case, decided at once
        return
    if existing.type != column.type and not widened_online(table, existing, column):
        if is_metadata_only_widening(existing.type, column.type):
            changes.append(ch.WidenType(table=table, column=column, current_type=existing.type))
        else:
            _report(
                drift,
                DriftKind.TYPE_MISMATCH,
                table,
                column.name,
                f"is {existing.type}, manifest says {column.type}; "
                "changing it would rewrite or lose data",
            )
    if column.nullable and not existing.nullable and not _in_primary_key(table, column.name):
        changes.append(ch.DropNotNull(table=table, column=column))
    elif not column.nullable and existing.nullable:
        changes.append(ch.SetNotNull(table=table, column=column))
    _column_value(table, existing, column, changes, drift)
    if column.comment is not None and column.comment != existing.comment:
        changes.append(ch.SetComment(table=table, column=column.name, comment=column.comment))


def _column_value(
    table: m.Table,
    existing: m.Column,
    column: m.Column,
    changes: list[ch.Change],
    drift: list[Drift],
) -> None:
    target = f"{table.qualified}.{column.name}"
    if column.generated is not None or existing.generated is not None:
        if not same_expression(existing.generated, column.generated):
            drift.append(
                Drift(
                    kind=DriftKind.GENERATED_DIFFERS,
                    target=target,
                    detail=f"generated as {existing.generated!r}, manifest says "
                    f"{column.generated!r}",
                )
            )
        return
    if (column.identity is None) != (existing.identity is None):
        if column.identity is not None or column.default is not None:
            drift.append(
                Drift(
                    kind=DriftKind.IDENTITY_DIFFERS,
                    target=target,
                    detail="identity differs from the manifest",
                )
            )
        return
    if column.default is None or existing.identity is not None:
        return
    if existing.default is None:
        changes.append(ch.SetDefault(table=table, column=column))
    elif not same_expression(existing.default, column.default):
        drift.append(
            Drift(
                kind=DriftKind.DEFAULT_DIFFERS,
                target=target,
                detail=f"default is {existing.default}, manifest says {column.default}",
            )
        )


def _in_primary_key(table: m.Table, column: str) -> bool:
    return table.primary_key is not None and column in table.primary_key.columns


def _indexes(
    current: m.Table,
    desired: m.Table,
    changes: list[ch.Change],
    drift: list[Drift],
    handed_over: set[str],
) -> None:
    have = {
        i.name: i for i in current.indexes if i.constraint is None and i.name not in handed_over
    }
    for declared in desired.indexes:
        index, existing = declared, have.pop(declared.name, None)
        if existing is not None and held_by_rename(existing, index, desired, same_index):
            index = replace(index, name=handover_index(index.name))  # renamed back at contract
            existing = have.pop(index.name, None)
        if existing is None:
            changes.append(ch.AddIndex(table=current, index=index))
        elif not existing.valid:
            changes.append(ch.RebuildInvalidIndex(table=current, index=index))
        elif not same_index(existing, index):
            _report(drift, DriftKind.INDEX_DIFFERS, current, index.name,
                    "an index of this name exists with another definition")  # fmt: skip
    for extra in have.values():
        _report(
            drift, DriftKind.EXTRA_INDEX, current, extra.name, "not in the manifest; left as it is"
        )


def same_index(current: m.Index, desired: m.Index) -> bool:
    """Same method, uniqueness, keys (as compared expressions), INCLUDE, storage parameters
    and predicate."""
    if (current.method, current.unique, current.include, sorted(current.storage)) != (
        desired.method,
        desired.unique,
        desired.include,
        sorted(desired.storage),
    ):
        return False
    if len(current.elements) != len(desired.elements):
        return False
    for a, b in zip(current.elements, desired.elements, strict=True):
        if (a.column, a.opclass, a.descending, a.nulls_first) != (
            b.column,
            b.opclass,
            b.descending,
            b.nulls_first,
        ):
            return False
        if a.column is None and not same_expression(a.expression, b.expression):
            return False
    return same_expression(current.where, desired.where)


def _keys(
    current: m.Table,
    desired: m.Table,
    changes: list[ch.Change],
    drift: list[Drift],
    handovers: dict[str, m.Index],
) -> None:
    wanted: list[m.PrimaryKey | m.UniqueConstraint] = list(desired.unique)
    if desired.primary_key is not None:
        if current.primary_key is None:
            wanted.insert(0, desired.primary_key)
        elif current.primary_key.columns != desired.primary_key.columns:
            _report(
                drift,
                DriftKind.CONSTRAINT_DIFFERS,
                current,
                current.primary_key.name,
                f"primary key is ({', '.join(current.primary_key.columns)}),"
                f" manifest says ({', '.join(desired.primary_key.columns)})",
            )
    existing_unique = {u.name: u for u in current.unique}
    by_columns = {u.columns for u in current.unique}
    indexes = {i.name: i for i in current.indexes}
    for key in wanted:
        if isinstance(key, m.UniqueConstraint):
            found = existing_unique.pop(key.name, None)
            handover = handovers.get(handover_index(key.name))
            if handover is not None:  # on the old columns until contract
                changes.extend(build_handover(current, handover))
                continue
            if found is not None or key.columns in by_columns:
                if found is not None and found.columns != key.columns:
                    _report(
                        drift,
                        DriftKind.CONSTRAINT_DIFFERS,
                        current,
                        key.name,
                        "a unique constraint of this name covers other columns",
                    )
                continue
        index = indexes.get(key.name)
        usable = index is not None and index.valid and index.constraint is None and index.unique
        usable = usable and index is not None and _plain_columns(index) == key.columns
        changes.append(ch.AddKeyConstraint(table=current, constraint=key, index_exists=usable))
    declared = {u.columns for u in desired.unique}
    for extra in existing_unique.values():  # those not matched by name above
        if extra.columns not in declared:
            _report(
                drift,
                DriftKind.EXTRA_CONSTRAINT,
                current,
                extra.name,
                "unique constraint not in the manifest; left as it is",
            )


def _plain_columns(index: m.Index) -> tuple[str | None, ...]:
    return tuple(e.column for e in index.elements)


def _foreign_keys(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {fk.name: fk for fk in current.foreign_keys}
    signatures = {_fk_signature(fk): fk for fk in current.foreign_keys}
    for fk in desired.foreign_keys:
        existing = have.pop(fk.name, None) or signatures.get(_fk_signature(fk))
        if existing is None:
            changes.append(ch.AddForeignKey(table=current, foreign_key=fk))
            continue
        have.pop(existing.name, None)
        if _fk_signature(existing) != _fk_signature(fk):
            _report(
                drift,
                DriftKind.CONSTRAINT_DIFFERS,
                current,
                fk.name,
                "a foreign key of this name has another definition",
            )
        elif not existing.valid:
            changes.append(ch.ValidateConstraint(table=current, name=existing.name))
    for extra in have.values():
        _report(
            drift,
            DriftKind.EXTRA_CONSTRAINT,
            current,
            extra.name,
            "foreign key not in the manifest; left as it is",
        )


def _fk_signature(fk: m.ForeignKey) -> tuple[object, ...]:
    return (
        fk.columns,
        fk.ref_schema,
        fk.ref_table,
        fk.ref_columns,
        fk.on_delete,
        fk.on_update,
        fk.deferrable,
        fk.initially_deferred,
    )


def _checks(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {c.name: c for c in current.checks}
    for check in desired.checks:
        existing = have.pop(check.name, None)
        if existing is None:
            changes.append(ch.AddCheck(table=current, check=check))
        elif not same_expression(existing.expression, check.expression):
            _report(
                drift,
                DriftKind.CONSTRAINT_DIFFERS,
                current,
                check.name,
                f"check is {existing.expression}, manifest says {check.expression}",
            )
        elif not existing.valid:
            changes.append(ch.ValidateConstraint(table=current, name=existing.name))
    for extra in have.values():
        _report(
            drift,
            DriftKind.EXTRA_CONSTRAINT,
            current,
            extra.name,
            "check not in the manifest; left as it is",
        )
