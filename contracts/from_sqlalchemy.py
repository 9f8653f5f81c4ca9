"""Manifest from SQLAlchemy (or SQLModel) models: ``manifest_from_metadata(Base.metadata, ...)``.

The bar: healing an empty database from this manifest builds the catalog that
``metadata.create_all()`` builds. So the adapter mirrors what SQLAlchemy's PostgreSQL DDL compiler
emits — ``SERIAL``/``BIGSERIAL`` become their owned sequence and ``nextval`` default,
``Column(unique=True)`` a unique constraint, ``index=True`` an index with SQLAlchemy's name, names
from a naming convention shortened exactly as SQLAlchemy shortens them — and it refuses, loudly,
what a manifest cannot express (exclusion constraints, partitioning, storage parameters, …)
instead of silently dropping it. Python-side defaults (``default=``) are not DDL and are left out,
exactly as ``create_all()`` leaves them out. Constraint and index parts live in
:mod:`contracts._sa_parts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from contracts._intent_fields import INFO_KEY, intent_from_info
from contracts._sa_parts import (
    DIALECT,
    Collected,
    check_constraints,
    constraint_name,
    for_postgresql,
    foreign_key,
    index,
    sql,
    unique_constraints,
)
from contracts.errors import ManifestError, Problem
from contracts.expressions import parse_expression
from contracts.identifiers import qualified
from contracts.manifest import Manifest
from contracts.types import EXTENSION_FUNCTIONS, EXTENSION_TYPES
from contracts.validation import load_manifest

__all__ = ["INFO_KEY", "manifest_from_metadata"]


def manifest_from_metadata(
    metadata: sa.MetaData, *, service: str, database: str, extensions: Iterable[str] = ()
) -> Manifest:
    """Build and validate the manifest of every table in ``metadata``.

    ``extensions`` are listed in the manifest besides those inferred from column types (pgvector's
    ``Vector`` needs ``vector``, ``CITEXT`` needs ``citext``, …).
    """
    found = Collected(extensions=set(extensions))
    tables = [_table(table, found) for table in metadata.sorted_tables]
    _metadata_sequences(metadata, found)
    schemas = {t["schema"] for t in tables} | {key[0] for key in found.enums}
    if found.problems:
        raise ManifestError(found.problems)
    return load_manifest(
        {
            "service": service,
            "database": database,
            "schemas": sorted(schemas) or ["public"],
            "extensions": [{"name": name} for name in sorted(found.extensions)],
            "enums": list(found.enums.values()),
            "sequences": found.sequences,
            "tables": tables,
        }
    )


def _table(table: sa.Table, found: Collected) -> dict[str, Any]:
    schema = table.schema or "public"
    where = f"table {schema}.{table.name}"
    _refuse_table_options(table, where, found.problems)
    _refuse_other_constraints(table, where, found.problems)
    columns = [_column(table, c, schema, found) for c in table.columns]
    indexes = [index(ix, schema, where, found) for ix in for_postgresql(table.indexes)]
    return {
        "schema": schema,
        "name": table.name,
        "columns": columns,
        "primary_key": _primary_key(table, where, found.problems),
        "foreign_keys": [
            foreign_key(fk, schema, where, found.problems)
            for fk in for_postgresql(table.foreign_key_constraints)
        ],
        "unique": unique_constraints(table, where, found.problems),
        "checks": check_constraints(table, schema, where, found.problems),
        "indexes": [ix for ix in indexes if ix is not None],
        "comment": table.comment,
    }


def _column(
    table: sa.Table, column: sa.Column[Any], schema: str, found: Collected
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": column.name, "nullable": bool(column.nullable)}
    out["type"] = _type(column, schema, found)
    if column.comment:
        out["comment"] = column.comment
    where = f"{table.name}.{column.name}"
    out.update(intent_from_info(column.info, where, found.problems))
    serial = _serial_type(table, column)
    if column.identity is not None:
        out["identity"] = _identity(column.identity, where, found.problems)
    elif serial is not None:  # as in SQLAlchemy, SERIAL wins over any server default
        seq_name = f"{table.name}_{column.name}_seq"
        found.sequences.append(
            {
                "schema": schema,
                "name": seq_name,
                "data_type": serial,
                "owned_by": {"table": table.name, "column": column.name},
            }
        )
        out["default"] = f"nextval({_quoted_regclass(schema, seq_name)})"
    elif column.computed is not None:
        if column.computed.persisted is not True:
            # Unset, SQLAlchemy renders VIRTUAL on PostgreSQL 18+ and STORED before: ambiguous.
            message = (
                "computed columns must say persisted=True (STORED); VIRTUAL has no manifest form"
            )
            found.problems.append(Problem(where, message))
        out["generated"] = sql(column.computed.sqltext)
    else:
        _explicit_sequence(column, schema, found)
        default = _server_default(column, where, found.problems)
        if default is not None:
            out["default"] = default
            found.extensions.update(_function_extensions(default))
    return out


def _identity(ident: sa.Identity, where: str, problems: list[Problem]) -> dict[str, Any]:
    out: dict[str, Any] = {"always": bool(ident.always), "start": ident.start}
    if ident.increment is not None:
        out["increment"] = ident.increment
    options = ("minvalue", "maxvalue", "nominvalue", "nomaxvalue", "cycle", "cache", "order")
    other = [name for name in options if getattr(ident, name, None) not in (None, False)]
    if other:
        message = f"Identity({', '.join(other)}=…) has no manifest form: keep start and increment"
        problems.append(Problem(where, message))
    return out


def _function_extensions(default: str) -> set[str]:
    """The extensions whose functions ``default`` calls (``uuid_generate_v4()``: uuid-ossp)."""
    try:
        functions = parse_expression(default, what="default").functions
    except ValueError:
        return set()  # reported with its JSON path when the manifest is loaded
    return {EXTENSION_FUNCTIONS[f] for f in functions if f in EXTENSION_FUNCTIONS}


def _quoted_regclass(schema: str, name: str) -> str:
    return "'" + qualified(schema, name) + "'"


def _metadata_sequences(metadata: sa.MetaData, found: Collected) -> None:
    """Sequences declared on the MetaData alone (``Sequence(..., metadata=md)``, used by a
    ``nextval`` server default): create_all() makes them too. (SQLAlchemy keeps them in
    ``MetaData._sequences``; it has no public accessor.)"""
    known = {(s["schema"], s["name"]) for s in found.sequences}
    for seq in metadata._sequences.values():
        schema = seq.schema or "public"
        if seq.column is None and not seq.optional and (schema, seq.name) not in known:
            found.sequences.append(_sequence(seq, schema))


def _explicit_sequence(column: sa.Column[Any], schema: str, found: Collected) -> None:
    """A ``Sequence`` default: create_all() makes it, but puts no DEFAULT on the column
    (SQLAlchemy calls nextval() itself on INSERT; ``server_default=seq.next_value()`` would)."""
    seq = column.default
    if isinstance(seq, sa.Sequence) and not seq.optional:
        found.sequences.append(_sequence(seq, seq.schema or schema))


def _server_default(column: sa.Column[Any], where: str, problems: list[Problem]) -> str | None:
    server_default = column.server_default
    if server_default is None:
        return None
    arg = getattr(server_default, "arg", None)
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    if isinstance(arg, sa.sql.ClauseElement):
        return sql(arg)
    if type(server_default) is sa.FetchedValue:
        return None  # filled by the server by other means (a trigger): create_all writes none
    kind = type(server_default).__name__
    problems.append(Problem(where, f"server default of kind {kind} is not supported"))
    return None


def _type(column: sa.Column[Any], schema: str, found: Collected) -> str:
    col_type = _impl(column.type)
    item = _impl(col_type.item_type) if isinstance(col_type, sa.ARRAY) else col_type
    if isinstance(item, sa.Enum) and item.native_enum:
        enum_schema = item.schema or schema
        found.enums[(enum_schema, str(item.name))] = {
            "schema": enum_schema,
            "name": item.name,
            "labels": list(item.enums),
        }
        return qualified(enum_schema, str(item.name)) + ("[]" if item is not col_type else "")
    text = str(column.type.compile(dialect=DIALECT))
    base = text.split("(", 1)[0].split("[", 1)[0].strip().lower()
    if base in EXTENSION_TYPES:
        found.extensions.add(EXTENSION_TYPES[base])
    return text


def _impl(col_type: Any) -> Any:
    """The type create_all() uses on PostgreSQL: its ``with_variant(…, "postgresql")`` if any,
    the PostgreSQL dialect's implementation, and what a ``TypeDecorator`` stands for."""
    col_type = col_type.dialect_impl(DIALECT)
    while isinstance(col_type, sa.TypeDecorator):
        col_type = col_type.load_dialect_impl(DIALECT).dialect_impl(DIALECT)
    return col_type


def _serial_type(table: sa.Table, column: sa.Column[Any]) -> str | None:
    """The integer type when create_all() renders this column as SERIAL (SQLAlchemy's own test
    in the PostgreSQL DDL compiler), else None."""
    seq = column.default
    if not column.primary_key or column is not table.autoincrement_column:
        return None
    if column.identity is not None or not (
        seq is None or (isinstance(seq, sa.Sequence) and seq.optional)
    ):
        return None
    impl = _impl(column.type)
    if isinstance(impl, sa.BigInteger):
        return "bigint"
    if isinstance(impl, sa.SmallInteger):
        return "smallint"
    return "integer"


def _sequence(seq: sa.Sequence, schema: str) -> dict[str, Any]:
    data_type = "bigint"
    if seq.data_type is not None:
        data_type = str(seq.data_type.compile(dialect=DIALECT)).lower()
    out: dict[str, Any] = {"schema": schema, "name": seq.name, "data_type": data_type}
    for attr, key in (
        ("start", "start"),
        ("increment", "increment"),
        ("minvalue", "min_value"),
        ("maxvalue", "max_value"),
        ("cache", "cache"),
    ):
        value = getattr(seq, attr, None)
        if value is not None:
            out[key] = value
    if seq.cycle:
        out["cycle"] = True
    return out


def _primary_key(table: sa.Table, where: str, problems: list[Problem]) -> dict[str, Any] | None:
    pk = table.primary_key
    if not pk.columns:
        return None
    name = constraint_name(pk, where, problems)
    return {"name": name, "columns": [c.name for c in pk.columns]}


def _refuse_table_options(table: sa.Table, where: str, problems: list[Problem]) -> None:
    options = table.dialect_options["postgresql"]
    for unsupported in ("partition_by", "inherits", "with_oids", "tablespace", "using"):
        if options.get(unsupported):
            message = f"postgresql_{unsupported} has no manifest form; remove it or heal by hand"
            problems.append(Problem(where, message))


def _refuse_other_constraints(table: sa.Table, where: str, problems: list[Problem]) -> None:
    known = (
        sa.PrimaryKeyConstraint,
        sa.ForeignKeyConstraint,
        sa.UniqueConstraint,
        sa.CheckConstraint,
    )
    for constraint in table.constraints:
        if not isinstance(constraint, known):
            kind = type(constraint).__name__
            problems.append(Problem(where, f"{kind} has no manifest form; it would be dropped"))
