"""One table's value from its catalog rows (pure): its ``tables`` row, its columns, constraints,
indexes and partitions, the column names of every table its foreign keys point at, the block
size and the named operator classes. :mod:`~worker.engine.inspect_tables` gathers the rows and
decides which tables to build."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from worker.engine import model as m

__all__ = ["Rows", "TableBuilder", "TableParts"]

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_NAME = attrgetter("name")

Rows = Sequence[Any]


class TableParts:
    """One table's constraint and index rows, gathered in one pass over each query, and the
    tables its foreign keys point at."""

    __slots__ = ("constraints", "indexes", "partitions", "referenced")

    def __init__(self) -> None:
        self.constraints: list[Rows] = []
        self.indexes: list[Rows] = []
        self.referenced: list[int] = []
        #: a partitioned table's own row (its key), then every partition below it
        self.partitions: list[Rows] = []


class TableBuilder:
    """What building one table needs from the whole inspection."""

    __slots__ = ("block_size", "columns", "elements", "names", "opclasses")

    def __init__(
        self, block_size: int, opclasses: Mapping[int, str], names: dict[int, dict[int, str]]
    ) -> None:
        self.block_size = block_size
        self.opclasses = opclasses
        self.names = names
        # Columns and index keys repeat across tables (id, created_at, ...): one frozen value
        # per distinct one (its row minus rel and attnum is its key) instead of one per row.
        self.columns: dict[tuple[Any, ...], m.Column] = {}
        self.elements: dict[tuple[Any, ...], m.IndexElement] = {}

    def table(self, row: Rows, column_rows: list[Rows], part: TableParts) -> m.Table:
        _, schema, name, comment, pages, partitioned, part_schemas, part_names, parent = row
        columns = []
        for column_row in column_rows:
            key = tuple(column_row[2:])
            column = self.columns.get(key)
            if column is None:
                column = self.columns[key] = m.interned(_column(*key))
            columns.append(column)
        primary_key: m.PrimaryKey | None = None
        unique: list[m.UniqueConstraint] = []
        foreign_keys: list[m.ForeignKey] = []
        checks: list[m.CheckConstraint] = []
        backing: dict[str, str] = {}  # index → the key constraint it backs
        for con in part.constraints:
            value = self._constraint(con)
            if isinstance(value, m.CheckConstraint):
                checks.append(value)
            elif isinstance(value, m.ForeignKey):
                foreign_keys.append(value)
            else:
                backing[con[14]] = value.name
                if isinstance(value, m.PrimaryKey):
                    primary_key = value
                else:
                    unique.append(value)
        by_number = self.names.get(row[0], {})
        indexes = [self._index(idx, by_number, backing.get(idx[1])) for idx in part.indexes]
        return m.Table(
            schema=schema,
            name=name,
            columns=tuple(columns),
            comment=comment,
            size_bytes=int(pages or 0) * self.block_size,
            primary_key=primary_key,
            unique=_by_name(unique),
            foreign_keys=_by_name(foreign_keys),
            checks=_by_name(checks),
            indexes=_by_name(indexes),
            partitioned=bool(partitioned),
            partitions=tuple(zip(part_schemas or (), part_names or (), strict=True)),
            partition_of=tuple(parent) if parent else None,
            partition_key=tuple(part.partitions[0][7] or ()) if part.partitions else (),
            partition_tree=tuple(_partition(*p[1:]) for p in part.partitions[1:]),
        )

    def _constraint(
        self, row: Rows
    ) -> m.CheckConstraint | m.PrimaryKey | m.UniqueConstraint | m.ForeignKey:
        (rel, name, kind, valid, keys, ref_rel, ref_schema, ref_table, ref_keys, on_delete,
         on_update, deferrable, deferred, expr, _, nulls_not_distinct) = row  # fmt: skip
        if kind == "c":
            return m.CheckConstraint(name=name, expression=expr, valid=valid)
        by_number = self.names[rel]
        columns = tuple([by_number[int(k)] for k in (keys or "").split()])
        if kind == "p":
            return m.PrimaryKey(name=name, columns=columns)
        if kind == "u":
            return m.UniqueConstraint(
                name=name, columns=columns, nulls_not_distinct=bool(nulls_not_distinct)
            )
        referenced = self.names[ref_rel]
        return m.ForeignKey(
            name=name,
            columns=columns,
            ref_schema=ref_schema,
            ref_table=ref_table,
            ref_columns=tuple([referenced[int(k)] for k in (ref_keys or "").split()]),
            on_delete=_ACTIONS[on_delete],
            on_update=_ACTIONS[on_update],
            deferrable=deferrable,
            initially_deferred=deferred,
            valid=valid,
        )

    def _index(self, row: Rows, by_number: dict[int, str], constraint: str | None) -> m.Index:
        (_, name, unique, valid, method, count, keys, options, classes, predicate, storage,
         texts) = row  # fmt: skip
        texts = texts or [None] * count
        keys = [int(k) for k in keys.split()]
        options = [int(o) for o in options.split()]
        classes = [int(c) for c in classes.split()]
        out = []
        for k in range(count):  # options and operator classes: one entry per key column
            number = keys[k]
            key = (
                number and by_number[number],
                None if number else texts[k],
                classes[k],
                options[k],
            )
            element = self.elements.get(key)
            if element is None:
                element = self.elements[key] = m.interned(
                    m.IndexElement(
                        column=key[0] or None,
                        expression=key[1],
                        opclass=self.opclasses.get(key[2]),
                        descending=bool(key[3] & 1),
                        nulls_first=bool(key[3] & 2),
                    )
                )
            out.append(element)
        return m.Index(
            name=name,
            elements=tuple(out),
            unique=unique,
            method=method,
            include=tuple([by_number[k] for k in keys[count:]]),
            where=predicate,
            storage=tuple(tuple(o.split("=", 1)) for o in storage or ()),
            valid=valid,
            constraint=constraint,
        )


def _column(
    name: str,
    type_: str,
    not_null: bool,
    expr: str | None,
    identity: str | None,
    generated: str | None,
    comment: str | None,
) -> m.Column:
    is_generated = generated == "s"
    return m.Column(
        name=name,
        type=type_,
        nullable=not not_null,
        default=None if is_generated else expr,
        generated=expr if is_generated else None,
        identity=m.Identity(always=identity == "a") if identity in ("a", "d") else None,
        comment=comment,
    )


def _by_name(items: list[Any]) -> tuple[Any, ...]:
    if len(items) > 1:
        items.sort(key=_NAME)
    return tuple(items)


def _partition(
    schema: str,
    name: str,
    parent_schema: str,
    parent_name: str,
    partitioned: bool,
    foreign: bool,
    key: list[str | None] | None,
    constraints: list[str],
    unvalidated: list[str],
    invalid: list[str],
) -> m.Partition:
    return m.Partition(
        schema=schema,
        name=name,
        parent=(parent_schema, parent_name),
        key=tuple(key or ()),
        partitioned=partitioned,
        foreign=foreign,
        constraints=frozenset(constraints),
        unvalidated=frozenset(unvalidated),
        invalid_indexes=frozenset(invalid),
    )
