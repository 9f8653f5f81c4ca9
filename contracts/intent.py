"""Declared intent of a column for an online change: ``renamed_from``, ``using``, ``reverse``,
``backfill`` (see the README's "Expand and contract"). Pure.

:func:`check_column_intent` judges one column on its own (run by the pydantic model, from
:mod:`contracts._intent_fields`, which imports nothing of the manifest's);
:func:`table_intent` judges it against its table (run by :mod:`contracts.semantics`): which
columns the expressions may name, and that no two columns claim the same old name. Each
expression is also held to the call rules of :mod:`contracts.calls`: no volatile function, no
sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from contracts._intent_fields import INTENT_KEYS, check_column_intent, declares_intent
from contracts.calls import calls
from contracts.errors import Problem
from contracts.expressions import parse_expression
from contracts.table_rules import bare_columns

if TYPE_CHECKING:
    from contracts.manifest import Column, Table

__all__ = ["INTENT_KEYS", "check_column_intent", "declares_intent", "table_intent"]

_EXPRESSIONS = ("using", "reverse", "backfill")


def table_intent(
    path: str, table: Table, column: Column, extensions: Mapping[str, str]
) -> tuple[dict[str, str], list[Problem]]:
    """The column's intent expressions without their own table's qualifiers, and the problems
    of the intent against ``table``."""
    problems: list[Problem] = []
    names = {c.name for c in table.columns}
    if column.renamed_from is not None:
        problems.extend(_renamed_from(path, table, column, names))
    allowed = names | ({column.renamed_from} if column.renamed_from else set())
    generated = {c.name for c in table.columns if c.generated is not None}
    updates: dict[str, str] = {}
    for what in _EXPRESSIONS:
        text = getattr(column, what)
        if text is None:
            continue
        where = f"{path}.{what}"
        plain, found = bare_columns(where, text, what, table)
        problems.extend(found)
        problems.extend(calls(where, plain, what, extensions))
        problems.extend(_references(where, plain, what, column, allowed, generated))
        updates[what] = plain
    return updates, problems


def _renamed_from(path: str, table: Table, column: Column, names: set[str]) -> list[Problem]:
    old = column.renamed_from
    where = f"{path}.renamed_from"
    if old in names:
        return [
            Problem(
                where,
                f"{old} is still declared in table {table.name}: a renamed column's old name "
                "must leave the manifest (the worker keeps it for old replicas)",
            )
        ]
    claims = [c.name for c in table.columns if c.renamed_from == old]
    if len(claims) > 1 and claims[0] != column.name:
        return [Problem(where, f"{old} is renamed to both {claims[0]} and {column.name}")]
    return []


def _references(
    where: str, text: str, what: str, column: Column, allowed: set[str], generated: set[str]
) -> list[Problem]:
    problems = []
    for name in dict.fromkeys(parse_expression(text, what=what).columns):
        if name not in allowed:
            problems.append(
                Problem(
                    where,
                    f"column {name} is not a column of this table (nor its renamed_from): a "
                    f"{what} expression reads only the row's own columns",
                )
            )
        elif name in generated:
            problems.append(Problem(where, f"{name} is generated; refer to its inputs"))
        elif what == "backfill" and name == column.name:
            problems.append(
                Problem(where, f"backfill computes {name}; it cannot read {name} itself")
            )
    return problems
