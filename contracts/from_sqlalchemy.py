"""Manifest from SQLAlchemy models: ``manifest_from_metadata(Base.metadata, ...)``.

The bar: healing an empty database from this manifest builds the catalog that
``metadata.create_all()`` builds. So the adapter mirrors what SQLAlchemy's PostgreSQL DDL compiler
emits — ``SERIAL`` becomes its owned sequence and ``nextval`` default, ``Column(unique=True)`` a
unique constraint, ``index=True`` an index with SQLAlchemy's name — and it refuses, loudly, what a
manifest cannot express (exclusion constraints, partitioning, storage parameters, …) instead of
silently dropping it. Python-side defaults (``default=``) are not DDL and are left out, exactly as
``create_all()`` leaves them out.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ClauseElement, UnaryExpression

from contracts.errors import ManifestError, Problem
from contracts.manifest import Manifest
from contracts.validation import load_manifest

__all__ = ["manifest_from_metadata"]

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_SERIAL_TYPES = {sa.SmallInteger: "smallint", sa.Integer: "integer", sa.BigInteger: "bigint"}


def manifest_from_metadata(metadata: sa.MetaData, *, service: str, database: str) -> Manifest:
    """Build and validate the manifest of every table in ``metadata``."""
    problems: list[Problem] = []
    schemas: set[str] = set()
    enums: dict[tuple[str, str], dict[str, Any]] = {}
    sequences: list[dict[str, Any]] = []
    tables = []
    for table in metadata.sorted_tables:
        schema = table.schema or "public"
        schemas.add(schema)
        where = f"table {schema}.{table.name}"
        _refuse_table_options(table, where, problems)
        columns = [_column(table, c, schema, enums, sequences, problems) for c in table.columns]
        tables.append(
            {
                "schema": schema,
                "name": table.name,
                "columns": columns,
                "primary_key": _primary_key(table),
                "foreign_keys": [_foreign_key(fk, schema) for fk in table.foreign_key_constraints],
                "unique": [
                    {"name": _name(c), "columns": [col.name for col in c.columns]}
                    | _nulls_not_distinct(c)
                    for c in table.constraints
                    if isinstance(c, sa.UniqueConstraint) and _for_postgresql(c)
                ],
                "checks": [
                    {"name": _name(c), "expression": _sql(c.sqltext)}
                    for c in table.constraints
                    if isinstance(c, sa.CheckConstraint) and _for_postgresql(c)
                ],
                "indexes": [
                    _index(ix, where, problems) for ix in table.indexes if _for_postgresql(ix)
                ],
                "comment": table.comment,
            }
        )
        _refuse_other_constraints(table, where, problems)
    schemas.update(key[0] for key in enums)
    if problems:
        raise ManifestError(problems)
    return load_manifest(
        {
            "service": service,
            "database": database,
            "schemas": sorted(schemas) or ["public"],
            "enums": list(enums.values()),
            "sequences": sequences,
            "tables": tables,
        }
    )


def _name(item: Any) -> str | None:
    name = getattr(item, "name", None)
    return name if isinstance(name, str) else None  # SQLAlchemy uses a sentinel for "none"


def _for_postgresql(item: Any) -> bool:
    """False for constraints and indexes marked ``ddl_if(dialect=…)`` for another dialect."""
    ddl_if = getattr(item, "_ddl_if", None)
    dialect = getattr(ddl_if, "dialect", None)
    if dialect is None:
        return True
    names = (dialect,) if isinstance(dialect, str) else tuple(dialect)
    return "postgresql" in names


def _sql(clause: Any) -> str:
    if isinstance(clause, str):
        return clause
    compiled = clause.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return str(compiled)


def _column(
    table: sa.Table,
    column: sa.Column[Any],
    schema: str,
    enums: dict[tuple[str, str], dict[str, Any]],
    sequences: list[dict[str, Any]],
    problems: list[Problem],
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": column.name, "nullable": bool(column.nullable)}
    out["type"] = _type(column, schema, enums)
    if column.comment:
        out["comment"] = column.comment
    if column.identity is not None:
        ident = column.identity
        out["identity"] = {"always": bool(ident.always), "start": ident.start}
        if ident.increment is not None:
            out["identity"]["increment"] = ident.increment
        return out
    if column.computed is not None:
        if column.computed.persisted is not True:
            # Unset, SQLAlchemy renders VIRTUAL on PostgreSQL 18+ and STORED before: ambiguous.
            message = (
                "computed columns must say persisted=True (STORED); VIRTUAL has no manifest form"
            )
            problems.append(Problem(f"{table.name}.{column.name}", message))
        out["generated"] = _sql(column.computed.sqltext)
        return out
    if isinstance(column.default, sa.Sequence):
        # SQLAlchemy calls nextval() itself on INSERT; create_all() makes the sequence but puts
        # no DEFAULT on the column, and neither do we (server_default=seq.next_value() would).
        sequences.append(_sequence(column.default, column.default.schema or schema))
    if column.server_default is not None:
        arg = getattr(column.server_default, "arg", None)
        if isinstance(arg, str):
            out["default"] = "'" + arg.replace("'", "''") + "'"
        elif isinstance(arg, ClauseElement):
            out["default"] = _sql(arg)
        else:
            problems.append(
                Problem(
                    f"{table.name}.{column.name}",
                    "server default of kind "
                    f"{type(column.server_default).__name__} is not supported",
                )
            )
        return out
    serial = _serial_type(table, column)
    if serial is not None:
        seq_name = f"{table.name}_{column.name}_seq"
        sequences.append(
            {
                "schema": schema,
                "name": seq_name,
                "data_type": serial,
                "owned_by": {"table": table.name, "column": column.name},
            }
        )
        out["default"] = f"nextval('{schema}.{seq_name}')"
    return out


def _type(column: sa.Column[Any], schema: str, enums: dict[tuple[str, str], dict[str, Any]]) -> str:
    col_type = column.type
    item = col_type.item_type if isinstance(col_type, sa.ARRAY) else col_type
    if isinstance(item, sa.Enum) and item.native_enum:
        enum_schema = item.schema or schema
        enums[(enum_schema, str(item.name))] = {
            "schema": enum_schema,
            "name": item.name,
            "labels": list(item.enums),
        }
        return f"{enum_schema}.{item.name}" + ("[]" if item is not col_type else "")
    return str(col_type.compile(dialect=_DIALECT))


def _serial_type(table: sa.Table, column: sa.Column[Any]) -> str | None:
    """The integer type when create_all() would render this column as SERIAL, else None."""
    if column is not table.autoincrement_column or column.default is not None:
        return None
    for kind, name in _SERIAL_TYPES.items():
        if type(column.type) is kind or isinstance(column.type, kind):
            return name
    return None


def _sequence(seq: sa.Sequence, schema: str) -> dict[str, Any]:
    data_type = "bigint"
    if seq.data_type is not None:
        data_type = str(seq.data_type.compile(dialect=_DIALECT)).lower()
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


def _primary_key(table: sa.Table) -> dict[str, Any] | None:
    pk = table.primary_key
    if not pk.columns:
        return None
    return {"name": _name(pk), "columns": [c.name for c in pk.columns]}


def _foreign_key(fk: sa.ForeignKeyConstraint, schema: str) -> dict[str, Any]:
    target = fk.referred_table
    out: dict[str, Any] = {
        "name": _name(fk),
        "columns": [c.name for c in fk.columns],
        "references": {
            "schema": target.schema or schema,
            "table": target.name,
            "columns": [e.column.name for e in fk.elements],
        },
        "deferrable": bool(fk.deferrable),
        "initially_deferred": (fk.initially or "").upper() == "DEFERRED",
    }
    if fk.ondelete:
        out["on_delete"] = fk.ondelete
    if fk.onupdate:
        out["on_update"] = fk.onupdate
    return out


def _nulls_not_distinct(constraint: sa.UniqueConstraint) -> dict[str, Any]:
    value = constraint.dialect_options["postgresql"].get("nulls_not_distinct")
    return {"nulls_not_distinct": True} if value else {}


def _index(index: sa.Index, where: str, problems: list[Problem]) -> dict[str, Any]:
    options = index.dialect_options["postgresql"]
    for unsupported in ("with", "tablespace", "concurrently"):
        if options.get(unsupported):
            message = f"postgresql_{unsupported} has no manifest form; remove it"
            problems.append(Problem(f"{where}.index {index.name}", message))
    ops = options.get("ops") or {}
    columns = {c.name for c in index.table.columns} if index.table is not None else set()
    elements = [_index_element(expr, ops, columns) for expr in index.expressions]
    out: dict[str, Any] = {
        "name": _name(index),
        "unique": bool(index.unique),
        "elements": elements,
        "method": options.get("using") or "btree",
    }
    if options.get("include"):
        out["include"] = [getattr(c, "name", c) for c in options["include"]]
    if options.get("where") is not None:
        out["where"] = _sql(options["where"])
    return out


def _index_element(expr: Any, ops: dict[str, str], columns: set[str]) -> dict[str, Any]:
    element: dict[str, Any] = {}
    while isinstance(expr, UnaryExpression):  # desc(col).nulls_last() nests two of them
        modifier = getattr(expr.modifier, "__name__", "")
        if modifier in ("desc_op", "asc_op"):
            element["order"] = modifier.removesuffix("_op")
        elif modifier in ("nulls_first_op", "nulls_last_op", "nullsfirst_op", "nullslast_op"):
            element["nulls"] = "first" if "first" in modifier else "last"
        else:
            break
        expr = expr.element
    text = None if isinstance(expr, sa.Column) else _sql(expr)
    if isinstance(expr, sa.Column) or text in columns:  # sa.desc("col") names a column too
        key = expr.name if isinstance(expr, sa.Column) else str(text)
        element["column"] = key
    else:
        element["expression"] = text
        key = getattr(expr, "name", None) or str(text)
    if key in ops:
        element["opclass"] = ops[key]
    return element


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
