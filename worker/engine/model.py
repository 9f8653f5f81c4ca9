"""The engine's model of a database's schema state: immutable values, the same for both sides.

Both the *desired* state (from a manifest, :mod:`worker.engine.desired`) and the *current* state
(from the live catalog, :mod:`worker.engine.inspect`) become a :class:`Realm`, so diffing compares
like with like. "Schema" always means a PostgreSQL namespace; the whole state is a *realm*.

Types are canonical ``format_type()`` text; expressions are canonical text as pglast deparses them
(see :mod:`worker.engine.normalize` for how both sides are compared).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from contracts.identifiers import qualified


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    name: str
    schema: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EnumType:
    schema: str
    name: str
    labels: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sequence:
    schema: str
    name: str
    data_type: str = "bigint"
    start: int | None = None
    increment: int = 1
    min_value: int | None = None
    max_value: int | None = None
    cycle: bool = False
    cache: int = 1
    owned_by: tuple[str, str] | None = None  # (table, column) in the same schema

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    always: bool = False
    start: int | None = None
    increment: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """Desired side only: how a column gets its values online (the manifest's declared intent;
    expressions are canonical SQL over the row's own columns)."""

    renamed_from: str | None = None
    using: str | None = None
    reverse: str | None = None
    backfill: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    identity: Identity | None = None
    generated: str | None = None
    comment: str | None = None
    #: how to get there, not where: never part of a comparison of the two sides
    intent: Intent | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrimaryKey:
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UniqueConstraint:
    name: str
    columns: tuple[str, ...]
    nulls_not_distinct: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"
    deferrable: bool = False
    initially_deferred: bool = False
    valid: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckConstraint:
    name: str
    expression: str
    valid: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexElement:
    column: str | None = None
    expression: str | None = None
    opclass: str | None = None  # None: the type's default operator class
    descending: bool = False
    nulls_first: bool = False
    # desired side: the schema of an extension's operator class (the engine's search_path is
    # pg_catalog, so it is written qualified); names alone are compared
    opclass_schema: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    name: str
    elements: tuple[IndexElement, ...]
    unique: bool = False
    method: str = "btree"
    include: tuple[str, ...] = ()
    where: str | None = None
    storage: tuple[tuple[str, str], ...] = ()  # WITH (name = value), in the order written
    valid: bool = True
    constraint: str | None = None  # the PRIMARY KEY / UNIQUE constraint it backs, if any


@dataclass(frozen=True, slots=True, kw_only=True)
class Partition:
    """A partition somewhere below a partitioned table (current side only), with what a plan
    that builds an index or a key on every partition needs to continue a stopped one."""

    schema: str
    name: str
    parent: tuple[str, str]
    #: its own partition key when it is partitioned itself (None: a key expression); () a leaf
    key: tuple[str | None, ...] = ()
    partitioned: bool = False
    foreign: bool = False  # a foreign table: PostgreSQL builds no index and no key on it
    constraints: frozenset[str] = frozenset()  # names of its constraints
    unvalidated: frozenset[str] = frozenset()  # names of those not validated (NOT VALID)
    invalid_indexes: frozenset[str] = frozenset()  # names of its indexes a build left invalid

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: PrimaryKey | None = None
    unique: tuple[UniqueConstraint, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    checks: tuple[CheckConstraint, ...] = ()
    indexes: tuple[Index, ...] = ()
    comment: str | None = None
    size_bytes: int = 0  # current side only: the table's size on disk, for hazard policy
    has_rows: bool | None = None  # current side only, when probed; None = not known
    partitioned: bool = False  # current side only: a partitioned table (relkind 'p')
    partitions: tuple[tuple[str, str], ...] = ()  # current side only: its partitions
    partition_of: tuple[str, str] | None = None  # current side only: a partition's parent
    #: current side only: a partitioned table's key columns (None: a key expression)
    partition_key: tuple[str | None, ...] = ()
    #: current side only: every partition below a partitioned table, parents before children
    partition_tree: tuple[Partition, ...] = ()

    @property
    def qualified(self) -> str:
        return qualified(self.schema, self.name)

    def column(self, name: str) -> Column | None:
        for column in self.columns:  # tables have tens of columns: a scan beats building a map
            if column.name == name:
                return column
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Realm:
    """Everything the engine knows about the schemas one manifest owns, on one side."""

    schemas: frozenset[str]
    extensions: tuple[Extension, ...] = ()
    enums: tuple[EnumType, ...] = ()
    sequences: tuple[Sequence, ...] = ()
    tables: tuple[Table, ...] = ()
    server_version: int = 0  # current side only: server_version_num, e.g. 180001
    _by_name: dict[tuple[str, str], Table] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({(t.schema, t.name): t for t in self.tables})

    def table(self, schema: str, name: str) -> Table | None:
        return self._by_name.get((schema, name))


#: One object per distinct value: see :func:`interned`. Bounded (cleared when full): interning
#: only saves time, it never decides anything.
_INTERNED: dict[Column | IndexElement, Any] = {}
_MAX_INTERNED = 20_000  # a few MB at most; a large application has a few thousand
_Part = TypeVar("_Part", Column, IndexElement)


def interned(value: _Part) -> _Part:
    """The one object kept for ``value`` (``value`` itself the first time it is seen). Both
    sides intern their columns and index keys, so an unchanged table's tuples of them hold the
    same objects and compare by identity instead of field by field. A value carrying a field
    that is no part of its value (a column's intent, an operator class's schema) is never
    interned: another object of that value would lack it."""
    if isinstance(value, Column) and value.intent is not None:
        return value
    if isinstance(value, IndexElement) and value.opclass_schema is not None:
        return value
    kept = _INTERNED.get(value)
    if kept is None:
        if len(_INTERNED) >= _MAX_INTERNED:
            _INTERNED.clear()
        kept = _INTERNED[value] = value
    return cast(_Part, kept)
