"""Rules of one table's keys, indexes and expressions, used by :mod:`contracts.semantics`."""

from __future__ import annotations

from collections.abc import Collection

from contracts.compiled_sql import unqualify
from contracts.errors import Problem
from contracts.expressions import parse_expression
from contracts.manifest import Index, Table
from contracts.types import EXTENSION_METHODS, EXTENSION_OPCLASSES

__all__ = [
    "bare_columns",
    "fold_into_primary_key",
    "index_columns",
    "index_extensions",
    "index_name_parts",
    "own_columns",
]


def fold_into_primary_key(table: Table) -> Table:
    """Do what PostgreSQL's CREATE TABLE does with a UNIQUE that repeats the primary key (same
    columns in the same order): drop it, and when the key has no name, give it the first such
    constraint's name. So a manifest never plans a redundant constraint, and the key of a table
    create_all() built carries the name the manifest expects."""
    pk = table.primary_key
    if pk is None:
        return table
    name, kept = pk.name, []
    for unique in table.unique:
        if unique.columns != pk.columns or unique.nulls_not_distinct:
            kept.append(unique)
        elif name is None:
            name = unique.name
    return table.model_copy(
        update={"unique": tuple(kept), "primary_key": pk.model_copy(update={"name": name})}
    )


def index_extensions(path: str, index: Index, extensions: Collection[str]) -> list[tuple[str, str]]:
    """(path, message) for each access method or operator class of ``index`` that comes from an
    extension not in ``extensions``."""
    needs = [
        (f"{path}.method", EXTENSION_METHODS.get(index.method), f"{index.method} indexes need")
    ]
    for k, element in enumerate(index.elements):
        opclass = element.opclass or ""
        what = f"operator class {opclass} needs"
        needs.append((f"{path}.elements[{k}].opclass", EXTENSION_OPCLASSES.get(opclass), what))
    return [
        (where, f"{what} the {extension} extension: list it under 'extensions'")
        for where, extension, what in needs
        if extension is not None and extension not in extensions
    ]


def index_columns(index: Index) -> list[str]:
    names = [e.column for e in index.elements if e.column is not None]
    for element in index.elements:
        if element.expression is not None:
            names.extend(parse_expression(element.expression).columns)
    names.extend(index.include)
    if index.where is not None:
        names.extend(parse_expression(index.where).columns)
    return names


def index_name_parts(index: Index) -> tuple[str, ...]:
    """PostgreSQL names an expression key after its function, else ``expr``."""
    parts = []
    for element in index.elements:
        if element.column is not None:
            parts.append(element.column)
        else:
            functions = parse_expression(element.expression or "").functions
            parts.append(min(functions) if len(functions) == 1 else "expr")
    return tuple(parts)


def own_columns(path: str, table: Table) -> tuple[Table, list[Problem]]:
    """Checks and index expressions with ``table.column`` written ``column``, as PostgreSQL stores
    them; a column of another table is a problem at its path."""
    problems: list[Problem] = []

    def bare(where: str, text: str | None, what: str) -> str | None:
        if text is None:
            return None
        plain, found = bare_columns(where, text, what, table)
        problems.extend(found)
        return plain

    checks = tuple(
        c.model_copy(update={"expression": bare(f"{path}.checks[{j}].expression",
                                                c.expression, "check")})
        for j, c in enumerate(table.checks)
    )  # fmt: skip
    indexes = []
    for j, ix in enumerate(table.indexes):
        here = f"{path}.indexes[{j}]"
        elements = tuple(
            e.model_copy(update={"expression": bare(f"{here}.elements[{k}].expression",
                                                    e.expression, "index expression")})
            for k, e in enumerate(ix.elements)
        )  # fmt: skip
        where = bare(f"{here}.where", ix.where, "index predicate")
        indexes.append(ix.model_copy(update={"elements": elements, "where": where}))
    return table.model_copy(update={"checks": checks, "indexes": tuple(indexes)}), problems


def bare_columns(where: str, text: str, what: str, table: Table) -> tuple[str, list[Problem]]:
    """``text`` without its own table's qualifiers; a problem when it names another table."""
    if not parse_expression(text, what=what).qualified:
        return text, []
    try:
        plain = unqualify(text, table=table.name, schema=table.schema_, what=what)
    except ValueError as exc:
        return text, [Problem(where, str(exc))]
    return parse_expression(plain, what=what).sql, []
