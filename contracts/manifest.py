"""The schema manifest: what a service declares about its PostgreSQL schemas.

These pydantic models check the *shape* of a manifest and the syntax of every name, type and
expression in it. Checks that relate one part to another (a foreign key's target, an enum a column
uses, the columns an index names) and the canonical form live in :mod:`contracts.validation`;
always load manifests through :func:`contracts.load_manifest`, which runs both.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from contracts._fields import EnumLabel, Increment, StorageName, StorageValue
from contracts._intent_fields import check_column_intent
from contracts._select import MAX_TEXT
from contracts.expressions import parse_expression
from contracts.identifiers import IDENTIFIER_PATTERN, check_identifier
from contracts.types import parse_type

__all__ = [
    "CheckConstraint",
    "Column",
    "EnumType",
    "Extension",
    "ForeignKey",
    "Identity",
    "Index",
    "IndexElement",
    "Manifest",
    "PrimaryKey",
    "Reference",
    "Sequence",
    "SequenceOwner",
    "Table",
    "UniqueConstraint",
]

FORMAT_VERSION = 1

Identifier = Annotated[
    str,
    # The pattern is published in the JSON Schema; validation itself is check_identifier, whose
    # messages say what to change (pydantic's own "should match pattern" does not).
    Field(
        description="a PostgreSQL identifier of at most 63 bytes, written quoted in SQL when it "
        "is not plain; no quotes, ';', backslashes, control, invisible or look-alike characters",
        json_schema_extra={"pattern": IDENTIFIER_PATTERN, "maxLength": 63},
    ),
    AfterValidator(check_identifier),
]
ColumnType = Annotated[
    str,
    Field(max_length=200, description="a PostgreSQL type, e.g. 'integer', 'varchar(32)'"),
    AfterValidator(lambda text: parse_type(text).render()),
]


def _intent(description: str) -> Any:
    """An optional intent field, left out of the canonical JSON when unset."""
    return Field(default=None, exclude_if=lambda value: value is None, description=description)


def _expression(what: str) -> Any:
    return AfterValidator(lambda text: parse_expression(text, what=what).sql)


DefaultExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("default")]
CheckExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("check")]
GeneratedExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("generated expression")]
IndexExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("index expression")]
PredicateExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("index predicate")]
UsingExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("using")]
ReverseExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("reverse")]
BackfillExpr = Annotated[str, Field(max_length=MAX_TEXT), _expression("backfill")]
Comment = Annotated[str, Field(max_length=8192, pattern=r"^[^\x00]*$")]
Names = Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=32)]
Action = Annotated[
    Literal["NO ACTION", "RESTRICT", "CASCADE", "SET NULL", "SET DEFAULT"],
    BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
]


ExtensionName = Literal[
    "pgcrypto",
    "uuid-ossp",
    "citext",
    "hstore",
    "pg_trgm",
    "btree_gin",
    "btree_gist",
    "ltree",
    "cube",
    "earthdistance",
    "fuzzystrmatch",
    "unaccent",
    "intarray",
    "vector",
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class Extension(_Model):
    """An extension the service needs, created in ``schema`` (default: the first owned schema)."""

    name: ExtensionName
    schema_: Identifier | None = Field(default=None, alias="schema")


class EnumType(_Model):
    """A native enum type; ``labels`` in their sort order. New labels are added in place."""

    schema_: Identifier = Field(default="public", alias="schema")
    name: Identifier
    labels: Annotated[tuple[EnumLabel, ...], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _unique_labels(self) -> EnumType:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"enum {self.name}: labels must be unique")
        return self


class SequenceOwner(_Model):
    """``OWNED BY table.column``: the column a SERIAL-style sequence belongs to."""

    table: Identifier
    column: Identifier


class Sequence(_Model):
    """An explicit sequence, for ``nextval('name')`` defaults."""

    schema_: Identifier = Field(default="public", alias="schema")
    name: Identifier
    data_type: Literal["smallint", "integer", "bigint"] = "bigint"
    start: int | None = None
    increment: Increment = 1
    min_value: int | None = None
    max_value: int | None = None
    cycle: bool = False
    cache: int = Field(default=1, ge=1)
    owned_by: SequenceOwner | None = None


class Identity(_Model):
    """``GENERATED {ALWAYS|BY DEFAULT} AS IDENTITY``."""

    always: bool = False
    start: int | None = None
    increment: Increment | None = None


class Column(_Model):
    """One column. ``default``, ``identity`` and ``generated`` exclude each other."""

    name: Identifier
    type: ColumnType
    nullable: bool = True
    default: DefaultExpr | None = None
    identity: Identity | None = None
    generated: GeneratedExpr | None = Field(
        default=None, description="expression of a STORED generated column"
    )
    comment: Comment | None = None
    # Declared intent for an online change (expand/contract); see the README's "Expand and
    # contract". Left out of the canonical JSON when unset: manifests without them keep their hash.
    renamed_from: Identifier | None = _intent(
        "the column's previous name: its values move here, kept in step for old replicas "
        "until the old column is retired"
    )
    using: UsingExpr | None = _intent(
        "the new value from the row's columns when the type changes (may name the "
        "renamed_from column, or this column itself for a change in place)"
    )
    reverse: ReverseExpr | None = _intent(
        "the old column's value from the row's columns, for old replicas that still read it"
    )
    backfill: BackfillExpr | None = _intent(
        "the value of this new column for existing rows and for rows old replicas write, "
        "from the row's other columns"
    )

    @model_validator(mode="after")
    def _one_value_source(self) -> Column:
        sources = [s for s in ("default", "identity", "generated") if getattr(self, s) is not None]
        if len(sources) > 1:
            raise ValueError(f"column {self.name}: choose one of {' and '.join(sources)}")
        if self.identity is not None and self.nullable:
            raise ValueError(
                f"column {self.name}: identity columns are NOT NULL; set nullable false"
            )
        check_column_intent(self)
        return self


class PrimaryKey(_Model):
    name: Identifier | None = None
    columns: Names


class Reference(_Model):
    schema_: Identifier = Field(default="public", alias="schema")
    table: Identifier
    columns: Names


class ForeignKey(_Model):
    name: Identifier | None = None
    columns: Names
    references: Reference
    on_delete: Action = "NO ACTION"
    on_update: Action = "NO ACTION"
    deferrable: bool = False
    initially_deferred: bool = False

    @model_validator(mode="after")
    def _deferral(self) -> ForeignKey:
        if self.initially_deferred and not self.deferrable:
            raise ValueError("initially_deferred needs deferrable true")
        if len(self.columns) != len(self.references.columns):
            raise ValueError("a foreign key needs as many columns as it references")
        return self


class UniqueConstraint(_Model):
    name: Identifier | None = None
    columns: Names
    nulls_not_distinct: bool = False


class CheckConstraint(_Model):
    name: Identifier | None = None
    expression: CheckExpr


class IndexElement(_Model):
    """One key of an index: a column or an expression, with its operator class and order."""

    column: Identifier | None = None
    expression: IndexExpr | None = None
    opclass: Identifier | None = None
    order: Literal["asc", "desc"] = "asc"
    nulls: Literal["first", "last"] | None = Field(
        default=None, description="default: last for asc, first for desc"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """Accept ``"col"`` for ``{"column": "col"}`` and make the NULLS order explicit."""
        if isinstance(value, str):
            value = {"column": value}
        if isinstance(value, dict) and value.get("nulls") is None:
            value = {**value, "nulls": "first" if value.get("order") == "desc" else "last"}
        return value

    @model_validator(mode="after")
    def _one_key(self) -> IndexElement:
        if (self.column is None) == (self.expression is None):
            raise ValueError("an index element names exactly one of column or expression")
        return self


class Index(_Model):
    name: Identifier | None = None
    unique: bool = False
    method: Literal["btree", "gin", "gist", "hash", "brin", "hnsw", "ivfflat"] = Field(
        default="btree", description="hnsw and ivfflat need the vector extension"
    )
    elements: Annotated[tuple[IndexElement, ...], Field(min_length=1, max_length=32)]
    include: Annotated[tuple[Identifier, ...], Field(max_length=32)] = ()
    where: PredicateExpr | None = None
    storage: Annotated[
        dict[StorageName, StorageValue],
        Field(max_length=20, description="storage parameters: WITH (fillfactor = 70, m = 16)"),
    ] = Field(default_factory=dict, exclude_if=lambda storage: not storage)
    # (left out of the canonical JSON when empty: manifests without it keep their hash)

    @model_validator(mode="after")
    def _method_rules(self) -> Index:
        if self.unique and self.method != "btree":
            raise ValueError(f"only btree indexes can be unique, not {self.method}")
        if self.include and self.method not in ("btree", "gist"):
            raise ValueError(f"INCLUDE columns need a btree or gist index, not {self.method}")
        if self.method == "hash" and len(self.elements) != 1:
            raise ValueError("a hash index has exactly one key")
        return self


class Table(_Model):
    schema_: Identifier = Field(default="public", alias="schema")
    name: Identifier
    columns: Annotated[tuple[Column, ...], Field(min_length=1, max_length=1600)]
    primary_key: PrimaryKey | None = None
    foreign_keys: Annotated[tuple[ForeignKey, ...], Field(max_length=200)] = ()
    unique: Annotated[tuple[UniqueConstraint, ...], Field(max_length=200)] = ()
    checks: Annotated[tuple[CheckConstraint, ...], Field(max_length=200)] = ()
    indexes: Annotated[tuple[Index, ...], Field(max_length=200)] = ()
    comment: Comment | None = None


class Manifest(_Model):
    """The desired state of the schemas one service owns in one database."""

    format_version: Literal[1] = 1
    service: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
    database: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    schemas: Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=50)] = ("public",)
    extensions: Annotated[tuple[Extension, ...], Field(max_length=50)] = ()
    enums: Annotated[tuple[EnumType, ...], Field(max_length=1000)] = ()
    sequences: Annotated[tuple[Sequence, ...], Field(max_length=5000)] = ()
    tables: Annotated[tuple[Table, ...], Field(max_length=5000)] = ()
