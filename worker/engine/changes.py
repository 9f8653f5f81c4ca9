"""Changes: a closed set of small values, named verb + noun, produced by the diff.

Every change is additive (or, for ``DropNotNull`` and ``RebuildInvalidIndex``, relaxes or
repairs without touching data). What cannot be done safely is not a change but a :class:`Drift`,
reported and left alone. ``Change`` is the union; the planner dispatches on it with ``match`` and
``assert_never``, so a new kind of change that the planner does not handle fails type checking.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from worker.engine import model as m
from worker.engine.expand import ColumnMigration


@dataclass(frozen=True, slots=True, kw_only=True)
class AddSchema:
    schema: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddExtension:
    extension: m.Extension


@dataclass(frozen=True, slots=True, kw_only=True)
class AddEnum:
    enum: m.EnumType


@dataclass(frozen=True, slots=True, kw_only=True)
class AddEnumLabel:
    enum: m.EnumType
    label: str
    before: str | None = None  # exactly one of before/after is set
    after: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AddSequence:
    sequence: m.Sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class SetSequenceOwner:
    sequence: m.Sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class AddTable:
    """A new table with its keys, checks, indexes and the foreign keys that can go inline."""

    table: m.Table


@dataclass(frozen=True, slots=True, kw_only=True)
class AddColumn:
    table: m.Table  # the current table
    column: m.Column


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpandColumn:
    """An online column migration (expand/contract, :mod:`worker.engine.expand`): its expand
    statements, or — ``expanded`` — none, when the catalog shows they ran (the backfill or the
    contract is what remains)."""

    table: m.Table  # the current table
    column: m.Column  # the desired column
    migration: ColumnMigration
    expanded: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SetDefault:
    table: m.Table
    column: m.Column


@dataclass(frozen=True, slots=True, kw_only=True)
class DropNotNull:
    table: m.Table
    column: m.Column


@dataclass(frozen=True, slots=True, kw_only=True)
class SetNotNull:
    table: m.Table
    column: m.Column


@dataclass(frozen=True, slots=True, kw_only=True)
class WidenType:
    table: m.Table
    column: m.Column
    current_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AddIndex:
    table: m.Table
    index: m.Index


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildInvalidIndex:
    table: m.Table
    index: m.Index


@dataclass(frozen=True, slots=True, kw_only=True)
class AddKeyConstraint:
    """A PRIMARY KEY or UNIQUE constraint, built through a concurrently built unique index."""

    table: m.Table
    constraint: m.PrimaryKey | m.UniqueConstraint
    index_exists: bool = False  # a valid matching index of that name is already there


@dataclass(frozen=True, slots=True, kw_only=True)
class AddForeignKey:
    table: m.Table
    foreign_key: m.ForeignKey


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCheck:
    table: m.Table
    check: m.CheckConstraint


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateConstraint:
    table: m.Table
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SetComment:
    table: m.Table
    column: str | None  # None: the table's own comment
    comment: str | None


Change = (
    AddSchema
    | AddExtension
    | AddEnum
    | AddEnumLabel
    | AddSequence
    | SetSequenceOwner
    | AddTable
    | AddColumn
    | ExpandColumn
    | SetDefault
    | DropNotNull
    | SetNotNull
    | WidenType
    | AddIndex
    | RebuildInvalidIndex
    | AddKeyConstraint
    | AddForeignKey
    | AddCheck
    | ValidateConstraint
    | SetComment
)


_PARTS = ("column", "index", "constraint", "foreign_key", "check")


def describe(change: Change) -> str:
    """A short human name: ``AddColumn public.tenants.openai_api_key``."""
    kind = type(change).__name__
    target = getattr(change, "table", None)
    if isinstance(target, m.Table):
        # a part with a name (a Column, an Index…), else a plain name: SetComment's column is
        # a string, or None for the table's own comment
        names = (getattr(getattr(change, a, None), "name", None) for a in _PARTS)
        detail = next(
            (name for name in names if isinstance(name, str)),
            getattr(change, "name", None) or getattr(change, "column", None),
        )
        return f"{kind} {target.qualified}" + (f".{detail}" if detail else "")
    for attr in ("extension", "enum", "sequence"):
        value = getattr(change, attr, None)
        if value is not None:
            return f"{kind} {getattr(value, 'qualified', value.name)}"
    return f"{kind} {getattr(change, 'schema', '')}"


class DriftKind(StrEnum):
    """Differences the engine reports and never acts on. Stable strings: they go on the wire."""

    TYPE_MISMATCH = "type-mismatch"
    DEFAULT_DIFFERS = "default-differs"
    IDENTITY_DIFFERS = "identity-differs"
    GENERATED_DIFFERS = "generated-differs"
    INDEX_DIFFERS = "index-differs"
    CONSTRAINT_DIFFERS = "constraint-differs"
    ENUM_LABELS_DIFFER = "enum-labels-differ"
    SEQUENCE_DIFFERS = "sequence-differs"
    EXTENSION_SCHEMA_DIFFERS = "extension-schema-differs"
    NOT_NULL_ON_POPULATED_TABLE = "not-null-column-on-populated-table"
    #: a declared migration (renamed_from, using, backfill) that cannot start: the detail says why
    MIGRATION_BLOCKED = "migration-blocked"
    EXTRA_TABLE = "extra-table"
    EXTRA_COLUMN = "extra-column"
    EXTRA_INDEX = "extra-index"
    EXTRA_CONSTRAINT = "extra-constraint"
    EXTRA_SEQUENCE = "extra-sequence"
    EXTRA_ENUM = "extra-enum"


#: Extra objects do not stop the database satisfying a manifest; mismatches do.
INFORMATIONAL = frozenset(
    {
        DriftKind.EXTRA_TABLE,
        DriftKind.EXTRA_COLUMN,
        DriftKind.EXTRA_INDEX,
        DriftKind.EXTRA_CONSTRAINT,
        DriftKind.EXTRA_SEQUENCE,
        DriftKind.EXTRA_ENUM,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """A difference left alone: what, where, and what a person should do about it."""

    kind: DriftKind
    target: str
    detail: str

    @property
    def blocking(self) -> bool:
        """True when the database does not satisfy the manifest because of it."""
        return self.kind not in INFORMATIONAL
