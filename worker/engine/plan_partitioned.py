"""Indexes, keys and foreign keys added to a partitioned table that exists, online. Pure.

PostgreSQL cannot build an index ``CONCURRENTLY`` on a partitioned table, and a plain
``CREATE INDEX``, ``ADD PRIMARY KEY``/``UNIQUE`` or ``ADD FOREIGN KEY`` on one builds or checks
every partition under a lock that blocks writes. So each is made partition by partition, the
slow part where it blocks nobody, and joined to the parent by a quick statement that reads no
data (checked on PostgreSQL 15 and 18):

- an index: ``ON ONLY`` the parent (invalid, no data read), ``CONCURRENTLY`` on each leaf
  partition, each attached; a partition that is partitioned itself gets its own ``ON ONLY``
  index, its partitions' attached to it, and is attached in turn (sub-partitions at any depth);
- a primary key or unique constraint: a unique index built ``CONCURRENTLY`` on each leaf and
  made its constraint (``USING INDEX``), then ``ADD CONSTRAINT`` on the parent, which attaches
  the leaves' constraints instead of building new indexes (``USING INDEX`` itself is refused
  on a partitioned table);
- a foreign key: ``NOT VALID`` then ``VALIDATE`` on each leaf (``NOT VALID`` on a partitioned
  table is refused before PostgreSQL 18), then ``ADD`` on the parent, which attaches the leaves'
  validated keys without scanning them again.

Every step is idempotent or skipped when inspect shows it done, so a heal that stopped half-way
(a crash, a timeout, a duplicate) is continued by the next one: an index a stopped build left
invalid is dropped ``CONCURRENTLY`` first, a leaf's constraint already made is not made again.

A unique index or constraint must contain every column of the partition key, at every level
of sub-partitioning, and cannot be made at all when a key is an expression:
:func:`key_refusals` says so before anything runs.

A foreign partition (a foreign table) gets no index: PostgreSQL builds none on a foreign table
and skips it when ``CREATE INDEX`` runs on the parent, but an ``ON ONLY`` index stays invalid
until every partition has one attached. So with a foreign partition anywhere below, each other
leaf's copy is built ``CONCURRENTLY`` and a plain ``CREATE INDEX`` on the parent adopts them
(it attaches a leaf's equal index instead of building one, makes the sub-partitioned levels'
own, and skips the foreign tables). A unique index, a key or a foreign key cannot be made on a
foreign table at all, nor on a table that has one as a partition: :func:`key_refusals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from enum import Enum

from contracts.identifiers import qualified, quote_ident
from contracts.naming import default_name
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine import render as r
from worker.engine.hazards import Hazard

__all__ = [
    "Step",
    "StepKind",
    "failure_advice",
    "key_refusals",
    "partition_index_name",
    "partitioned_foreign_key",
    "partitioned_index",
    "partitioned_key",
    "shape",
]


class StepKind(Enum):
    ONLY = "only"  # CREATE INDEX … ON ONLY a partitioned table: quick, locks it briefly
    DROP_INVALID = "drop-invalid"  # a partition's index a stopped build left invalid
    BUILD = "build"  # CREATE INDEX CONCURRENTLY on one partition: long, not in a transaction
    ATTACH = "attach"  # ALTER INDEX … ATTACH PARTITION: quick (a no-op when attached)
    LEAF_KEY = "leaf-key"  # a leaf's unique index made its constraint: quick
    ADD_NOT_VALID = "add-not-valid"  # a leaf's foreign key, not checked yet: quick
    VALIDATE = "validate"  # a leaf's foreign key checked: scans it, blocks no writer
    PARENT = "parent"  # the parent's key or foreign key, attaching the leaves': quick


#: a step: its kind, its statement, and the statement that undoes it when it fails
Step = tuple[StepKind, str, str | None]


def shape(kind: StepKind, *, unique: bool = False) -> tuple[tuple[Hazard, ...], bool, bool]:
    """A step's hazards, whether it runs in a transaction, and whether it is long: only the
    builds and validations read data (under no lock that blocks writers); every other step
    takes a brief lock and reads nothing."""
    if kind is StepKind.BUILD:
        return (Hazard.INDEX_BUILD, Hazard.MAY_FAIL_ON_EXISTING_DATA)[: 1 + unique], False, True
    if kind is StepKind.DROP_INVALID:
        return (), False, True
    if kind is StepKind.VALIDATE:
        return (Hazard.VALIDATION_SCAN, Hazard.MAY_FAIL_ON_EXISTING_DATA), True, True
    return (Hazard.STRONG_LOCK,), True, False


def partition_index_name(partition: str, index: str) -> str:
    """The name of ``index``'s copy on ``partition`` (``<partition>_<index>_p``, shortened the
    way PostgreSQL shortens names to 63 bytes)."""
    return default_name(partition, (index,), "p")


def partitioned_index(table: m.Table, index: m.Index) -> list[Step]:
    """The statements that build ``index`` on the partitioned ``table`` online, in order."""
    if any(p.foreign for p in table.partition_tree):
        return _adopted(table, index)
    only = r.create_index(table, index, concurrently=False, only=True)
    return [(StepKind.ONLY, only, None), *_below(table, (table.schema, table.name), index)]


def _adopted(table: m.Table, index: m.Index) -> list[Step]:
    """``index`` on a ``table`` with a foreign partition: a copy built on each other leaf, then
    the parent's, which adopts them and reads no data (see the module's text)."""
    steps: list[Step] = []
    for leaf in _leaves(table):
        if not leaf.foreign:
            steps += _build(leaf, replace(index, name=partition_index_name(leaf.name, index.name)))
    parent = r.create_index(table, index, concurrently=False)
    return [*steps, (StepKind.PARENT, parent, None)]


def _below(table: m.Table, parent: tuple[str, str], index: m.Index) -> list[Step]:
    """``index``'s copy on each partition of ``parent`` (``table`` itself or a partition of it
    that is partitioned), each attached to ``parent``'s copy."""
    steps: list[Step] = []
    parent_index = qualified(parent[0], _copy_name(table, parent, index.name))
    for p in _children(table, parent):
        own = replace(index, name=partition_index_name(p.name, index.name))
        if p.partitioned:
            only = r.create_index(_bare(p), own, concurrently=False, only=True)
            steps += [(StepKind.ONLY, only, None), *_below(table, (p.schema, p.name), index)]
        else:
            steps += _build(p, own)
        target = qualified(p.schema, own.name)
        steps.append(
            (StepKind.ATTACH, f"ALTER INDEX {parent_index} ATTACH PARTITION {target}", None)
        )
    return steps


def _copy_name(table: m.Table, partition: tuple[str, str], index: str) -> str:
    """The name of ``index``'s copy on ``partition`` (``index`` itself on ``table``)."""
    own = partition == (table.schema, table.name)
    return index if own else partition_index_name(partition[1], index)


def partitioned_key(change: ch.AddKeyConstraint) -> list[Step]:
    """The statements that add ``change``'s primary key or unique constraint to a partitioned
    table online: a unique index and its constraint on each leaf, then the parent's."""
    table, key = change.table, change.constraint
    kind = "PRIMARY KEY" if isinstance(key, m.PrimaryKey) else "UNIQUE"
    nnd = isinstance(key, m.UniqueConstraint) and key.nulls_not_distinct
    index = m.Index(
        name=key.name, unique=True, elements=tuple(m.IndexElement(column=c) for c in key.columns)
    )
    steps: list[Step] = []
    for leaf in _leaves(table):
        own = replace(index, name=partition_index_name(leaf.name, key.name))
        if own.name in leaf.constraints:
            continue  # made by a heal that stopped before the parent's
        name = quote_ident(own.name)
        made = f"ALTER TABLE {leaf.qualified} ADD CONSTRAINT {name} {kind} USING INDEX {name}"
        steps += [*_build(leaf, own, nulls_not_distinct=nnd), (StepKind.LEAF_KEY, made, None)]
    if nnd:
        kind += " NULLS NOT DISTINCT"
    columns = ", ".join(quote_ident(c) for c in key.columns)
    parent = f"ALTER TABLE {table.qualified} ADD CONSTRAINT {quote_ident(key.name)} {kind} "
    return [*steps, (StepKind.PARENT, f"{parent}({columns})", None)]


def partitioned_foreign_key(table: m.Table, fk: m.ForeignKey) -> list[Step]:
    """The statements that add ``fk`` to the partitioned ``table`` online: ``NOT VALID`` and
    ``VALIDATE`` on each leaf (the undo drops a leaf's key that failed), then the parent's. A
    leaf whose key a stopped heal validated is left as it is."""
    clause = r.foreign_key_clause(fk)
    steps: list[Step] = []
    for leaf in _leaves(table):
        alter = f"ALTER TABLE {leaf.qualified}"
        name = quote_ident(fk.name)
        if fk.name in leaf.constraints and fk.name not in leaf.unvalidated:
            continue  # validated by a heal that stopped before the parent's
        if fk.name not in leaf.constraints:
            steps.append((StepKind.ADD_NOT_VALID, f"{alter} ADD {clause} NOT VALID", None))
        steps.append((StepKind.VALIDATE, f"{alter} VALIDATE CONSTRAINT {name}",
                      f"{alter} DROP CONSTRAINT IF EXISTS {name}"))  # fmt: skip
    return [*steps, (StepKind.PARENT, f"ALTER TABLE {table.qualified} ADD {clause}", None)]


def failure_advice(change: ch.Change, sql: str) -> str | None:
    """What stays and what to do when ``sql``, one partition's step of ``change``, failed on
    that partition's rows (a duplicate, a row without a match): None when ``change`` is not
    made partition by partition."""
    match change:
        case (
            ch.AddIndex(table=table)
            | ch.RebuildInvalidIndex(table=table)
            | ch.AddKeyConstraint(table=table)
            | ch.AddForeignKey(table=table)
        ) if table.partitioned:
            pass
        case _:
            return None
    leaf = next((p for p in _leaves(table) if f" {p.qualified} " in f"{sql} "), None)
    if leaf is None:
        return None
    return (f"the partitions done before {leaf.qualified} keep theirs, and the next heal "
            f"continues from {leaf.qualified}: fix its rows the error names (or change the "
            "manifest), then boot again")  # fmt: skip


def key_refusals(changes: Iterable[ch.Change]) -> tuple[str, ...]:
    """Why each unique index or key of ``changes`` on a partitioned table cannot be made (none:
    all can), in PostgreSQL's terms and with what to do instead."""
    found = []
    for change in changes:
        match change:
            case ch.AddIndex(table=table, index=index) if table.partitioned and index.unique:
                columns = tuple(e.column for e in index.elements)
                why = _key_refusal(table, f"unique index {index.name}", columns)
            case ch.AddKeyConstraint(table=table, constraint=key) if table.partitioned:
                what = "primary key" if isinstance(key, m.PrimaryKey) else "unique constraint"
                why = _key_refusal(table, f"{what} {key.name}", key.columns)
                if why is None and change.index_exists:
                    why = (f"the {what} {key.name} of {table.qualified} cannot be made of its "
                           f"existing index {key.name}: {table.qualified} is a partitioned "
                           "table, and PostgreSQL cannot make a partitioned table's index a "
                           f"constraint. Drop the index {key.name} (or rename it), then boot "
                           "again")  # fmt: skip
            case ch.AddForeignKey(table=table, foreign_key=fk) if table.partitioned:
                why = _foreign_refusal(table, f"foreign key {fk.name}", "a foreign key")
            case ch.RebuildInvalidIndex(table=table, index=index) if table.partitioned:
                why = _invalid_refusal(table, index.name)
            case _:
                continue
        if why is not None:
            found.append(why)
    return tuple(found)


def _foreign_refusal(table: m.Table, what: str, kind: str) -> str | None:
    """Why ``what`` cannot be made on ``table``: one of its partitions is a foreign table."""
    foreign = sorted((p.qualified, qualified(*p.parent)) for p in table.partition_tree
                     if p.foreign)  # fmt: skip
    if not foreign:
        return None
    names = ", ".join(name for name, _ in foreign)
    are = "is a foreign table" if len(foreign) == 1 else "are foreign tables"
    detach = "; ".join(f"ALTER TABLE {parent} DETACH PARTITION {name}" for name, parent in foreign)
    return (f"the {what} of {table.qualified} cannot be made: its partition"
            f"{'s' if len(foreign) > 1 else ''} {names} {are}, and PostgreSQL cannot make "
            f"{kind} on a foreign table nor on a partitioned table that has one. Leave it out "
            f"of the manifest (a plain index can be made), or detach them first ({detach}), "
            "then boot again")  # fmt: skip


def _invalid_refusal(table: m.Table, index: str) -> str | None:
    """Why the invalid ``index`` of ``table`` cannot be completed: a foreign partition."""
    foreign = sorted(p.qualified for p in table.partition_tree if p.foreign)
    if not foreign:
        return None
    target = qualified(table.schema, index)
    are = "is a foreign table" if len(foreign) == 1 else "are foreign tables"
    return (f"the index {index} of {table.qualified} is invalid and cannot be made valid: "
            f"{', '.join(foreign)} {are}, "
            "and PostgreSQL makes a partitioned table's index valid only once every partition "
            f"has its own attached (the heal drops no such index itself). Drop it (DROP INDEX "
            f"{target}; the partitions' copies attached to it go with it), then boot again: "
            "the heal builds it on the other partitions and the parent adopts them")  # fmt: skip


def _key_refusal(table: m.Table, what: str, columns: tuple[str | None, ...]) -> str | None:
    """Why ``what`` on ``columns`` (None: an expression) cannot be unique on ``table``."""
    foreign = _foreign_refusal(table, what, "a unique index or constraint")
    if foreign is not None:
        return foreign
    levels = [(table.qualified, table.partition_key)]
    levels += [(p.qualified, p.key) for p in table.partition_tree if p.partitioned]
    head = f"the {what} of {table.qualified} cannot be made: it is a partitioned table"
    for name, key in levels:
        if None in key:
            return (f"{head}, the partition key of {name} has an expression, and PostgreSQL "
                    "cannot make a unique index or constraint on a table partitioned by an "
                    "expression. Leave it out of the manifest, or declare a plain index "
                    "instead")  # fmt: skip
        missing = [c for c in key if c not in columns]
        if missing:
            return (f"{head}, and PostgreSQL requires a unique index or constraint on it to "
                    f"include every column of the partition key of {name}; it lacks "
                    f"{', '.join(c or '' for c in missing)}. Add "
                    f"{'it' if len(missing) == 1 else 'them'} to its columns in the manifest "
                    "(uniqueness then holds per partition key), or declare a plain index "
                    "instead")  # fmt: skip
    return None


def _build(p: m.Partition, index: m.Index, *, nulls_not_distinct: bool = False) -> list[Step]:
    """Build ``index`` on the leaf ``p`` concurrently, after dropping a copy a stopped build
    left invalid."""
    target = qualified(p.schema, index.name)
    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {target}"
    nnd = nulls_not_distinct
    build = r.create_index(_bare(p), index, concurrently=True, nulls_not_distinct=nnd)
    steps: list[Step] = []
    if index.name in p.invalid_indexes:
        steps.append((StepKind.DROP_INVALID, drop, None))
    return [*steps, (StepKind.BUILD, build, drop)]


def _children(table: m.Table, parent: tuple[str, str]) -> Iterator[m.Partition]:
    return (p for p in table.partition_tree if p.parent == parent)


def _leaves(table: m.Table) -> Iterator[m.Partition]:
    return (p for p in table.partition_tree if not p.partitioned)


def _bare(p: m.Partition) -> m.Table:
    return m.Table(schema=p.schema, name=p.name, columns=())
