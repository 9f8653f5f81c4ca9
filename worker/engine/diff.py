"""Diff: compare the current realm with the desired one; return changes and drift. Pure.

Every difference becomes either a :mod:`change <worker.engine.changes>` the planner can carry out
safely, or a :class:`~worker.engine.changes.Drift` that is reported and left alone. Nothing here
drops, renames or rewrites. The result is sorted (phase, then qualified name), so the same inputs
give the same plan byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import replace

from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import Drift, DriftKind
from worker.engine.normalize import same_expression

__all__ = ["diff", "is_metadata_only_widening", "tables_to_probe"]


def diff(current: m.Realm, desired: m.Realm) -> tuple[tuple[ch.Change, ...], tuple[Drift, ...]]:
    """The changes that heal ``current`` towards ``desired``, and the drift left over."""
    changes: list[ch.Change] = [
        ch.AddSchema(schema=s) for s in sorted(desired.schemas - current.schemas)
    ]
    drift: list[Drift] = []
    _extensions(current, desired, changes, drift)
    _enums(current, desired, changes, drift)
    _sequences(current, desired, changes, drift)
    tables = sorted(desired.tables, key=_key)  # output order must not depend on input order
    new_tables = [t for t in tables if current.table(t.schema, t.name) is None]
    changes.extend(_new_tables(current, new_tables))
    for table in tables:
        existing = current.table(table.schema, table.name)
        if existing is not None:
            _table(existing, table, changes, drift)
    declared = {(t.schema, t.name) for t in desired.tables}
    for table in current.tables:
        if (table.schema, table.name) not in declared:
            drift.append(
                Drift(
                    kind=DriftKind.EXTRA_TABLE,
                    target=table.qualified,
                    detail="not in the manifest; left as it is",
                )
            )
    return tuple(changes), tuple(sorted(drift, key=lambda d: (d.target, d.kind)))


def tables_to_probe(current: m.Realm, desired: m.Realm) -> set[tuple[str, str]]:
    """Existing tables about to get a NOT NULL column without a default: is there a row?"""
    wanted = set()
    for table in desired.tables:
        existing = current.table(table.schema, table.name)
        if existing is None:
            continue
        for column in table.columns:
            if existing.column(column.name) is None and _needs_rows_absent(column):
                wanted.add((table.schema, table.name))
    return wanted


def _needs_rows_absent(column: m.Column) -> bool:
    no_value = column.default is None and column.identity is None and column.generated is None
    return not column.nullable and no_value


# -- database-level objects ---------------------------------------------------------------------


def _extensions(
    current: m.Realm, desired: m.Realm, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {e.name: e for e in current.extensions}
    for ext in sorted(desired.extensions, key=lambda e: e.name):
        if ext.name not in have:
            changes.append(ch.AddExtension(extension=ext))
        elif have[ext.name].schema != ext.schema:
            drift.append(
                Drift(
                    kind=DriftKind.EXTENSION_SCHEMA_DIFFERS,
                    target=ext.name,
                    detail=f"installed in {have[ext.name].schema}, manifest wants {ext.schema}",
                )
            )


def _enums(
    current: m.Realm, desired: m.Realm, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {(e.schema, e.name): e for e in current.enums}
    for enum in sorted(desired.enums, key=lambda e: (e.schema, e.name)):
        existing = have.pop((enum.schema, enum.name), None)
        if existing is None:
            changes.append(ch.AddEnum(enum=enum))
            continue
        ours = [label for label in enum.labels if label in existing.labels]
        theirs = [label for label in existing.labels if label in enum.labels]
        if ours != theirs:
            drift.append(
                Drift(
                    kind=DriftKind.ENUM_LABELS_DIFFER,
                    target=enum.qualified,
                    detail=f"labels are in another order: {list(existing.labels)}",
                )
            )
            continue
        placed = list(existing.labels)
        for i, label in enumerate(enum.labels):
            if label in placed:
                continue
            after = next((x for x in reversed(enum.labels[:i]) if x in placed), None)
            before = None if after else next(x for x in enum.labels[i:] if x in placed)
            changes.append(ch.AddEnumLabel(enum=enum, label=label, after=after, before=before))
            placed.insert(placed.index(after) + 1 if after else placed.index(before or ""), label)
    for extra in have.values():
        drift.append(
            Drift(
                kind=DriftKind.EXTRA_ENUM,
                target=extra.qualified,
                detail="not in the manifest; left as it is",
            )
        )


def _sequences(
    current: m.Realm, desired: m.Realm, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {(s.schema, s.name): s for s in current.sequences}
    for seq in sorted(desired.sequences, key=lambda s: (s.schema, s.name)):
        existing = have.pop((seq.schema, seq.name), None)
        if existing is None:
            changes.append(ch.AddSequence(sequence=seq))
            if seq.owned_by is not None:
                changes.append(ch.SetSequenceOwner(sequence=seq))
            continue
        differs = [
            f"{field} is {getattr(existing, field)}, manifest says {getattr(seq, field)}"
            for field in ("data_type", "increment", "cycle")
            if getattr(existing, field) != getattr(seq, field)
        ]
        if differs:
            drift.append(
                Drift(
                    kind=DriftKind.SEQUENCE_DIFFERS, target=seq.qualified, detail="; ".join(differs)
                )
            )
        if seq.owned_by is not None and existing.owned_by is None:
            changes.append(ch.SetSequenceOwner(sequence=seq))
    for extra in have.values():
        drift.append(
            Drift(
                kind=DriftKind.EXTRA_SEQUENCE,
                target=extra.qualified,
                detail="not in the manifest; left as it is",
            )
        )


# -- new tables, in foreign-key order -----------------------------------------------------------


def _new_tables(current: m.Realm, tables: list[m.Table]) -> list[ch.Change]:
    """AddTable for each, referenced tables first; keys that close a cycle are added after."""
    pending = {(t.schema, t.name): t for t in sorted(tables, key=lambda t: (t.schema, t.name))}
    created: set[tuple[str, str]] = set()
    out: list[ch.Change] = []
    deferred: list[ch.Change] = []

    def ready(table: m.Table) -> bool:
        return all(
            _target(fk) not in pending or _target(fk) in created | {_key(table)}
            for fk in table.foreign_keys
        )

    while len(created) < len(pending):
        remaining = [t for k, t in pending.items() if k not in created]
        table = next((t for t in remaining if ready(t)), remaining[0])
        inline = tuple(
            fk
            for fk in table.foreign_keys
            if _target(fk) not in pending or _target(fk) in created | {_key(table)}
        )
        for fk in table.foreign_keys:
            if fk not in inline:
                deferred.append(ch.AddForeignKey(table=table, foreign_key=fk))
        out.append(ch.AddTable(table=replace(table, foreign_keys=inline)))
        created.add(_key(table))
    return out + deferred


def _key(table: m.Table) -> tuple[str, str]:
    return (table.schema, table.name)


def _target(fk: m.ForeignKey) -> tuple[str, str]:
    return (fk.ref_schema, fk.ref_table)


# -- existing tables ----------------------------------------------------------------------------


def _table(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    for column in desired.columns:
        _column(current, column, changes, drift)
    declared = {c.name for c in desired.columns}
    for column in current.columns:
        if column.name not in declared:
            drift.append(
                Drift(
                    kind=DriftKind.EXTRA_COLUMN,
                    target=f"{current.qualified}.{column.name}",
                    detail="not in the manifest; kept with its data",
                )
            )
    if desired.comment is not None and desired.comment != current.comment:
        changes.append(ch.SetComment(table=current, column=None, comment=desired.comment))
    _indexes(current, desired, changes, drift)
    _keys(current, desired, changes, drift)
    _foreign_keys(current, desired, changes, drift)
    _checks(current, desired, changes, drift)


def _column(table: m.Table, column: m.Column, changes: list[ch.Change], drift: list[Drift]) -> None:
    existing = table.column(column.name)
    if existing is None:
        if _needs_rows_absent(column) and table.has_rows is not False:
            drift.append(
                Drift(
                    kind=DriftKind.NOT_NULL_ON_POPULATED_TABLE,
                    target=f"{table.qualified}.{column.name}",
                    detail="a NOT NULL column without a default cannot be added to a "
                    "table that has rows: give it a default, or make it "
                    "nullable and backfill it first",
                )
            )
        else:
            changes.append(ch.AddColumn(table=table, column=column))
        return
    if existing == column:  # the common case, decided at once
        return
    if existing.type != column.type:
        if is_metadata_only_widening(existing.type, column.type):
            changes.append(ch.WidenType(table=table, column=column, current_type=existing.type))
        else:
            drift.append(
                Drift(
                    kind=DriftKind.TYPE_MISMATCH,
                    target=f"{table.qualified}.{column.name}",
                    detail=f"is {existing.type}, manifest says {column.type}; "
                    "changing it would rewrite or lose data",
                )
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


_VARCHAR = re.compile(r"character varying(?:\((\d+)\))?\Z")
_NUMERIC = re.compile(r"numeric(?:\((\d+),(\d+)\))?\Z")
_VARBIT = re.compile(r"bit varying(?:\((\d+)\))?\Z")


def is_metadata_only_widening(current: str, desired: str) -> bool:
    """True for type changes PostgreSQL makes without rewriting the table or its indexes."""
    if current == desired:
        return False
    if (vc := _VARCHAR.match(current)) and (desired == "text" or _VARCHAR.match(desired)):
        if desired == "text":
            return True
        vd = _VARCHAR.match(desired)
        assert vd is not None
        return vd.group(1) is None or (
            vc.group(1) is not None and int(vd.group(1)) >= int(vc.group(1))
        )
    if (nc := _NUMERIC.match(current)) and (nd := _NUMERIC.match(desired)):
        if nd.group(1) is None:
            return True
        return (
            nc.group(1) is not None
            and nc.group(2) == nd.group(2)
            and int(nd.group(1)) >= int(nc.group(1))
        )
    if (bc := _VARBIT.match(current)) and (bd := _VARBIT.match(desired)):
        return bd.group(1) is None or (
            bc.group(1) is not None and int(bd.group(1)) >= int(bc.group(1))
        )
    return False


def _indexes(
    current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]
) -> None:
    have = {i.name: i for i in current.indexes if i.constraint is None}
    for index in desired.indexes:
        existing = have.pop(index.name, None)
        if existing is None:
            changes.append(ch.AddIndex(table=current, index=index))
        elif not existing.valid:
            changes.append(ch.RebuildInvalidIndex(table=current, index=index))
        elif not same_index(existing, index):
            drift.append(
                Drift(
                    kind=DriftKind.INDEX_DIFFERS,
                    target=f"{current.qualified}.{index.name}",
                    detail="an index of this name exists with another definition",
                )
            )
    for extra in have.values():
        drift.append(
            Drift(
                kind=DriftKind.EXTRA_INDEX,
                target=f"{current.qualified}.{extra.name}",
                detail="not in the manifest; left as it is",
            )
        )


def same_index(current: m.Index, desired: m.Index) -> bool:
    """Same method, uniqueness, keys (as compared expressions), INCLUDE and predicate."""
    if (current.method, current.unique, current.include) != (
        desired.method,
        desired.unique,
        desired.include,
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


def _keys(current: m.Table, desired: m.Table, changes: list[ch.Change], drift: list[Drift]) -> None:
    wanted: list[m.PrimaryKey | m.UniqueConstraint] = list(desired.unique)
    if desired.primary_key is not None:
        if current.primary_key is None:
            wanted.insert(0, desired.primary_key)
        elif current.primary_key.columns != desired.primary_key.columns:
            drift.append(
                Drift(
                    kind=DriftKind.CONSTRAINT_DIFFERS,
                    target=f"{current.qualified}.{current.primary_key.name}",
                    detail=f"primary key is ({', '.join(current.primary_key.columns)}),"
                    f" manifest says ({', '.join(desired.primary_key.columns)})",
                )
            )
    existing_unique = {u.name: u for u in current.unique}
    by_columns = {u.columns for u in current.unique}
    indexes = {i.name: i for i in current.indexes}
    for key in wanted:
        if isinstance(key, m.UniqueConstraint):
            found = existing_unique.pop(key.name, None)
            if found is not None or key.columns in by_columns:
                if found is not None and found.columns != key.columns:
                    drift.append(
                        Drift(
                            kind=DriftKind.CONSTRAINT_DIFFERS,
                            target=f"{current.qualified}.{key.name}",
                            detail="a unique constraint of this name covers other columns",
                        )
                    )
                continue
        index = indexes.get(key.name)
        usable = index is not None and index.valid and index.constraint is None and index.unique
        usable = usable and index is not None and _plain_columns(index) == key.columns
        changes.append(ch.AddKeyConstraint(table=current, constraint=key, index_exists=usable))
    declared = {u.columns for u in desired.unique}
    for extra in existing_unique.values():  # those not matched by name above
        if extra.columns not in declared:
            drift.append(
                Drift(
                    kind=DriftKind.EXTRA_CONSTRAINT,
                    target=f"{current.qualified}.{extra.name}",
                    detail="unique constraint not in the manifest; left as it is",
                )
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
            drift.append(
                Drift(
                    kind=DriftKind.CONSTRAINT_DIFFERS,
                    target=f"{current.qualified}.{fk.name}",
                    detail="a foreign key of this name has another definition",
                )
            )
        elif not existing.valid:
            changes.append(ch.ValidateConstraint(table=current, name=existing.name))
    for extra in have.values():
        drift.append(
            Drift(
                kind=DriftKind.EXTRA_CONSTRAINT,
                target=f"{current.qualified}.{extra.name}",
                detail="foreign key not in the manifest; left as it is",
            )
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
            drift.append(
                Drift(
                    kind=DriftKind.CONSTRAINT_DIFFERS,
                    target=f"{current.qualified}.{check.name}",
                    detail=f"check is {existing.expression}, manifest says {check.expression}",
                )
            )
        elif not existing.valid:
            changes.append(ch.ValidateConstraint(table=current, name=existing.name))
    for extra in have.values():
        drift.append(
            Drift(
                kind=DriftKind.EXTRA_CONSTRAINT,
                target=f"{current.qualified}.{extra.name}",
                detail="check not in the manifest; left as it is",
            )
        )
