"""Function calls and sequence references in a manifest's expressions: one set of rules for
every kind (defaults, CHECKs, generated columns, index keys and predicates). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from contracts.errors import Problem
from contracts.expressions import ALLOWED_FUNCTIONS, parse_expression
from contracts.manifest import Index
from contracts.types import EXTENSION_FUNCTIONS

__all__ = ["calls", "index_calls"]

_VOLATILITY = "isv"  # immutable < stable < volatile, as pg_proc.provolatile spells them
_NAMES = {"i": "immutable", "s": "stable", "v": "volatile"}
#: The most volatile function each kind of expression may call. PostgreSQL requires immutable
#: functions in index keys, predicates and generated columns (overloads differ, so a stable name
#: such as to_tsvector is left to PostgreSQL there), and assumes a CHECK gives the same answer
#: for the same row; only a default may be volatile.
_MOST_VOLATILE = {
    "default": "v",
    "check": "s",
    "index expression": "s",
    "index predicate": "s",
    "generated expression": "i",
    # expand/contract intent: evaluated per row by a trigger and the backfill, so the value must
    # not depend on when or how often it is computed
    "using": "s",
    "reverse": "s",
    "backfill": "s",
}


def calls(path: str, text: str, what: str, extensions: Mapping[str, str]) -> list[Problem]:
    """The problems of ``text``'s calls; ``extensions`` are the manifest's, by name."""
    expr = parse_expression(text, what=what)
    problems = []
    if expr.sequences and what != "default":
        problems.append(
            Problem(path, f"nextval() is allowed only in a column default, not in a {what}")
        )
    limit = _MOST_VOLATILE[what]
    if expr.session_values and limit == "i":
        message = f"CURRENT_TIMESTAMP and the like are stable: a {what} may not use them"
        problems.append(Problem(path, message))
    for function in sorted(expr.functions - {"nextval"}):
        extension = EXTENSION_FUNCTIONS.get(function)
        if extension is not None and extension not in extensions:
            message = f"{function}() needs the {extension} extension: list it under 'extensions'"
            problems.append(Problem(path, message))
        volatility = ALLOWED_FUNCTIONS.get(function, "v")
        if _VOLATILITY.index(volatility) > _VOLATILITY.index(limit):
            allowed = "immutable" if limit == "i" else "immutable or stable"
            message = (
                f"{function}() is {_NAMES[volatility]}: a {what} may only use {allowed} functions"
            )
            problems.append(Problem(path, message))
    return problems


def index_calls(path: str, index: Index, extensions: Mapping[str, str]) -> list[Problem]:
    """The problems of the calls in an index's key expressions and predicate."""
    problems = []
    for k, element in enumerate(index.elements):
        if element.expression is not None:
            where = f"{path}.elements[{k}].expression"
            problems.extend(calls(where, element.expression, "index expression", extensions))
    if index.where is not None:
        problems.extend(calls(f"{path}.where", index.where, "index predicate", extensions))
    return problems
