"""Diff: compare the current realm with the desired one; return changes and drift. Pure.

Every difference becomes either a :mod:`change <worker.engine.changes>` the planner can carry out
safely, or a :class:`~worker.engine.changes.Drift` that is reported and left alone. Nothing here
drops, renames or rewrites. The result is sorted (phase, then qualified name), so the same inputs
give the same plan byte for byte.
"""

from __future__ import annotations

from dataclasses import replace

from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import Drift, DriftKind
from worker.engine.diff_intent import sequence_widened_online
from worker.engine.diff_table import diff_table, needs_rows_absent
from worker.engine.diff_unchanged import unchanged
from worker.engine.widening import is_metadata_only_widening

__all__ = ["diff", "is_metadata_only_widening", "tables_to_probe"]  # widening: re-exported


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
            diff_table(existing, table, changes, drift)
    declared = {(t.schema, t.name) for t in desired.tables}
    below = {  # a declared table's partitions, and theirs, are part of it
        (p.schema, p.name)
        for t in current.tables
        if (t.schema, t.name) in declared
        for p in t.partition_tree
    }
    for table in current.tables:
        key = (table.schema, table.name)
        if key not in declared and key not in below and table.partition_of not in declared:
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
        if existing is None or unchanged(existing, table):  # then no column is missing
            continue
        for column in table.columns:
            if needs_rows_absent(column) and existing.column(column.name) is None:
                wanted.add((table.schema, table.name))
    return wanted


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
            and not (
                field == "data_type" and sequence_widened_online(current, desired, seq, existing)
            )
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

    remaining = list(pending.values())  # in name order; taken from as they are created
    while remaining:
        # the first ready one, else the first (a cycle): found from the front, which is where
        # it is when the keys follow the names (rebuilding the list each time was O(n²))
        table = remaining.pop(next((i for i, t in enumerate(remaining) if ready(t)), 0))
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
