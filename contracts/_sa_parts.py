"""Constraints and indexes of SQLAlchemy tables, as :mod:`contracts.from_sqlalchemy` needs them.

Names are SQLAlchemy's own (its identifier preparer shortens a naming convention's long names with
an md5 suffix, exactly as ``create_all()`` sends them), then cut to 63 bytes as PostgreSQL cuts
them. Expressions are compiled by SQLAlchemy and read back by :mod:`contracts.compiled_sql`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IdentifierError
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql.elements import TextClause, UnaryExpression

from contracts.compiled_sql import index_elements, unqualify
from contracts.errors import Problem
from contracts.expressions import parse_expression
from contracts.identifiers import MAX_IDENTIFIER_BYTES
from contracts.types import EXTENSION_METHODS, EXTENSION_OPCLASSES

__all__ = [
    "DIALECT",
    "Collected",
    "check_constraints",
    "constraint_name",
    "for_postgresql",
    "foreign_key",
    "index",
    "sql",
    "unique_constraints",
]

# Text is compiled as PostgreSQL receives it from create_all(): with a "%" paramstyle (psycopg2's
# pyformat) SQLAlchemy doubles every "%" and the driver undoes it; "named" doubles none.
DIALECT = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
_PREPARER = DIALECT.identifier_preparer
# What SQLAlchemy's DDL evaluates ddl_if() and a constraint's create rule with
_DDL = DIALECT.ddl_compiler(DIALECT, None)  # type: ignore[arg-type]  # no statement: rules only


@dataclass(slots=True)
class Collected:
    """What the tables of one MetaData need besides themselves, and what went wrong."""

    problems: list[Problem] = field(default_factory=list)
    enums: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    extensions: set[str] = field(default_factory=set)


def sql(clause: Any) -> str:
    """``clause`` compiled for PostgreSQL with its values inlined (text passes through)."""
    if isinstance(clause, str):
        return clause
    compiled = clause.compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})
    return str(compiled)


def constraint_name(item: Any, where: str, problems: list[Problem]) -> str | None:
    """The name create_all() gives ``item`` on PostgreSQL; None when PostgreSQL chooses it."""
    if item.name is None:
        return None
    try:
        name = _PREPARER.format_constraint(item, _alembic_quote=False)
    except IdentifierError as exc:
        problems.append(Problem(where, f"{exc}; create_all() refuses it too: shorten the name"))
        return None
    return _pg_truncate(name) if name is not None else None


def _pg_truncate(name: str) -> str:
    """PostgreSQL keeps 63 bytes of a longer name, never splitting a character."""
    while len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        name = name[:-1]
    return name


def unique_constraints(table: sa.Table, where: str, problems: list[Problem]) -> list[Any]:
    for c in table.constraints:
        if isinstance(c, sa.UniqueConstraint) and (c.deferrable or c.initially):
            message = f"unique constraint {c.name}: DEFERRABLE has no manifest form; remove it"
            problems.append(Problem(where, message))
    return [
        {
            "name": constraint_name(c, where, problems),
            "columns": [col.name for col in c.columns],
        }
        | _nulls_not_distinct(c)
        for c in for_postgresql(table.constraints)
        if isinstance(c, sa.UniqueConstraint)
    ]


def check_constraints(
    table: sa.Table, schema: str, where: str, problems: list[Problem]
) -> list[Any]:
    """Table-level CHECKs create_all() emits on PostgreSQL and those written on a column (which
    create_all() emits unconditionally); both end up in the table."""
    found = for_postgresql(c for c in table.constraints if isinstance(c, sa.CheckConstraint))
    for column in table.columns:
        found += [c for c in column.constraints if isinstance(c, sa.CheckConstraint)]
    out = []
    for check in found:
        try:
            text = unqualify(sql(check.sqltext), table=table.name, schema=schema, what="check")
        except ValueError as exc:
            problems.append(Problem(where, str(exc)))
            continue
        out.append({"name": constraint_name(check, where, problems), "expression": text})
    return out


def for_postgresql(items: Any) -> list[Any]:
    """``items`` in the order SQLAlchemy creates them, only those create_all() emits on
    PostgreSQL."""
    return sorted(
        (item for item in items if _created(item)),
        key=lambda item: getattr(item, "_creation_order", 0),
    )


def _created(item: Any) -> bool:
    """Whether create_all() emits ``item`` on PostgreSQL, decided as SQLAlchemy's DDL decides it:
    a constraint's create rule (the CHECK of ``Boolean``/``Enum(create_constraint=True)``, which
    a native boolean or enum does without) and any ``ddl_if()``, with a PostgreSQL DDL compiler."""
    if isinstance(item, sa.Constraint):
        return bool(item._should_create_for_compiler(_DDL))
    ddl_if = getattr(item, "_ddl_if", None)
    return ddl_if is None or bool(
        ddl_if._should_execute(CreateIndex(item), item, None, compiler=_DDL)
    )


def foreign_key(
    fk: sa.ForeignKeyConstraint, schema: str, where: str, problems: list[Problem]
) -> dict[str, Any]:
    target = fk.referred_table
    if fk.match:
        message = f"foreign key MATCH {fk.match} has no manifest form; remove match="
        problems.append(Problem(where, message))
    out: dict[str, Any] = {
        "name": constraint_name(fk, where, problems),
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


def index(ix: sa.Index, schema: str, where: str, found: Collected) -> dict[str, Any] | None:
    """The manifest form of ``ix``; None (and a problem) when any part of it has none. The
    extensions its access method and operator classes come from are added to ``found``."""
    here, problems = f"{where}.index {ix.name}", found.problems
    before = len(problems)
    options = ix.dialect_options["postgresql"]
    # postgresql_concurrently says how create_all() builds it, not what it is: accepted (a heal
    # builds every index on an existing table concurrently anyway)
    for unsupported in ("tablespace",):
        if options.get(unsupported):
            message = f"postgresql_{unsupported} has no manifest form; remove it"
            problems.append(Problem(here, message))
    table = ix.table.name if ix.table is not None else ""
    context = _Context(
        table=table,
        schema=schema,
        ops=options.get("ops") or {},
        columns={c.name for c in ix.table.columns} if ix.table is not None else set(),
    )
    elements = []
    for expr in ix.expressions:
        try:
            elements += _index_elements(expr, context)
        except ValueError as exc:
            problems.append(Problem(here, str(exc)))
    out: dict[str, Any] = {
        "name": constraint_name(ix, here, problems),
        "unique": bool(ix.unique),
        "elements": elements,
        "method": options.get("using") or "btree",
    }
    if options.get("with"):
        out["storage"] = dict(options["with"])
    if options.get("include"):
        out["include"] = [getattr(c, "name", c) for c in options["include"]]
    if options.get("where") is not None:
        try:
            out["where"] = context.expression(sql(options["where"]), "index predicate")
        except ValueError as exc:
            problems.append(Problem(here, str(exc)))
    for name in (out["method"], *(e.get("opclass") for e in elements)):
        extension = EXTENSION_METHODS.get(name or "") or EXTENSION_OPCLASSES.get(name or "")
        if extension is not None:
            found.extensions.add(extension)
    return out if len(problems) == before else None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Context:
    table: str
    schema: str
    ops: dict[str, str]
    columns: set[str]

    def expression(self, text: str, what: str) -> str:
        """``text`` without its own table's qualifier, checked as the manifest will check it."""
        text = unqualify(text, table=self.table, schema=self.schema, what=what)
        return parse_expression(text, what=what).sql


def _index_elements(expr: Any, context: _Context) -> list[dict[str, Any]]:
    modifiers: dict[str, Any] = {}
    while isinstance(expr, UnaryExpression):  # desc(col).nulls_last() nests two of them
        modifier = getattr(expr.modifier, "__name__", "")
        if modifier in ("desc_op", "asc_op"):
            modifiers["order"] = modifier.removesuffix("_op")
        elif modifier in ("nulls_first_op", "nulls_last_op", "nullsfirst_op", "nullslast_op"):
            modifiers["nulls"] = "first" if "first" in modifier else "last"
        else:
            break
        expr = expr.element
    if isinstance(expr, sa.Column):
        return [_with_opclass({"column": expr.name} | modifiers, expr.name, context)]
    if isinstance(expr, (TextClause, str)):
        parsed = index_elements(sql(expr), what="index element")
        if len(parsed) != 1 and modifiers:
            raise ValueError(f"index element {sql(expr)!r}: ordering applies to one element")
        return [_text_element(e | modifiers, context) for e in parsed]
    text = sql(expr)
    if text in context.columns:  # sa.desc("col") names a column too
        return [_with_opclass({"column": text} | modifiers, text, context)]
    key = getattr(expr, "name", None) or text
    element = {"expression": context.expression(text, "index expression")} | modifiers
    return [_with_opclass(element, key, context)]


def _text_element(element: dict[str, Any], context: _Context) -> dict[str, Any]:
    if "expression" in element:
        element["expression"] = context.expression(element["expression"], "index expression")
    key = element.get("column") or element.get("expression") or ""
    return _with_opclass(element, key, context)


def _with_opclass(element: dict[str, Any], key: str, context: _Context) -> dict[str, Any]:
    if key in context.ops and "opclass" not in element:
        element["opclass"] = context.ops[key]
    return element
