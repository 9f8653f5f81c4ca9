"""SQL expressions in a manifest: defaults, CHECKs, generated columns, index keys and predicates.

Each is parsed with PostgreSQL's own grammar (pglast) and accepted only when it is a *pure*
expression built from literals, bare column names, casts to known types, an allowlist of
operators and an allowlist of functions. Subqueries, parameters, qualified column references,
``OPERATOR(schema.op)``, aggregates, window calls and every function outside the list are refused.

The accepted expression is re-written from its parse tree (pglast's deparser), so the text that
reaches the database is produced by us, never copied from the event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pglast import ast
from pglast.stream import RawStream

from contracts._select import select_target
from contracts.identifiers import check_identifier, split_qualified
from contracts.types import _from_ast

__all__ = ["ALLOWED_FUNCTIONS", "Expression", "parse_expression"]

#: Function name -> volatility as PostgreSQL declares it ('i'mmutable, 's'table, 'v'olatile).
#: A volatile default added to an existing table rewrites it, so the planner needs to know.
ALLOWED_FUNCTIONS: dict[str, str] = {
    "now": "s",
    "statement_timestamp": "s",
    "transaction_timestamp": "s",
    "clock_timestamp": "v",
    "gen_random_uuid": "v",
    "uuid_generate_v4": "v",
    "random": "v",
    "nextval": "v",
    "lower": "i",
    "upper": "i",
    "length": "i",
    "char_length": "i",
    "octet_length": "i",
    "btrim": "i",
    "ltrim": "i",
    "rtrim": "i",
    "substring": "i",
    "substr": "i",
    "replace": "i",
    "left": "i",
    "right": "i",
    "strpos": "i",
    "position": "i",
    "concat": "s",
    "concat_ws": "s",
    "md5": "i",
    "abs": "i",
    "round": "i",
    "floor": "i",
    "ceil": "i",
    "ceiling": "i",
    "date_trunc": "s",
    "date_part": "s",
    "extract": "s",
    "timezone": "s",
    "to_tsvector": "s",
    "jsonb_typeof": "i",
    "json_typeof": "i",
    "jsonb_array_length": "i",
    "array_length": "i",
    "cardinality": "i",
}
_OPERATORS = frozenset(
    [
        "=",
        "<>",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "^",
        "||",
        "~~",
        "!~~",
        "~~*",
        "!~~*",
        "~",
        "~*",
        "!~",
        "!~*",
        "@>",
        "<@",
        "&&",
        "?",
        "?|",
        "?&",
        "->",
        "->>",
        "#>",
        "#>>",
        "@@",
    ]
) | {"BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC"}
_COLLATIONS = frozenset({"C", "POSIX", "default", "ucs_basic"})
_LEAVES = (ast.A_Const, ast.SQLValueFunction)
_BRANCHES = (
    ast.BoolExpr,
    ast.NullTest,
    ast.BooleanTest,
    ast.CaseExpr,
    ast.CaseWhen,
    ast.CoalesceExpr,
    ast.MinMaxExpr,
    ast.A_ArrayExpr,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expression:
    """A checked expression: its canonical SQL and the facts the planner needs about it."""

    sql: str
    columns: tuple[str, ...]  # every column reference, in order, repeats kept
    functions: frozenset[str]
    sequences: frozenset[str]  # arguments of nextval(), as written ('seq' or 'schema.seq')
    session_values: bool = False  # CURRENT_TIMESTAMP, CURRENT_USER, …: stable, not immutable
    qualified: bool = False  # some column is written table.column: see contracts.compiled_sql

    @property
    def volatile(self) -> bool:
        """True when PostgreSQL would evaluate it per row (rewriting a table it is added to)."""
        return any(ALLOWED_FUNCTIONS[f] == "v" for f in self.functions)

    @property
    def immutable(self) -> bool:
        """True for a constant: the same value wherever and whenever it is evaluated."""
        pure = all(ALLOWED_FUNCTIONS[f] == "i" for f in self.functions)
        return pure and not (self.columns or self.sequences or self.session_values)


def parse_expression(text: str, *, what: str = "expression") -> Expression:
    """Check ``text`` and return it as an :class:`Expression`; raise ValueError saying why not."""
    return _parse_expression(text, what)


@lru_cache(maxsize=16384)  # pure and immutable; errors are not cached, only successes
def _parse_expression(text: str, what: str) -> Expression:
    root = select_target(text, what=what)
    columns: list[str] = []
    functions: set[str] = set()
    sequences: set[str] = set()
    session_values = qualified = False
    for node in _walk(root):
        if isinstance(node, ast.ColumnRef):
            columns.append(_column(node, what))
            qualified = qualified or len(node.fields or ()) > 1
        elif isinstance(node, ast.FuncCall):
            name = _function(node, what)
            functions.add(name)
            if name == "nextval":
                sequences.add(_sequence_argument(node, what))
        elif isinstance(node, ast.TypeCast):
            _cast_type(node, what)
        elif isinstance(node, ast.A_Expr):
            _operator(node, what)
        elif isinstance(node, ast.CollateClause):
            _collation(node, what)
        elif isinstance(node, ast.SQLValueFunction):
            session_values = True
        elif not isinstance(node, _LEAVES + _BRANCHES):
            raise ValueError(
                f"{what}: {type(node).__name__} is not allowed in a manifest expression"
            )
    sql = RawStream(special_functions=True)(root)  # trim(x) stays trim(BOTH FROM x)
    return Expression(
        sql=sql,
        columns=tuple(columns),
        functions=frozenset(functions),
        sequences=frozenset(sequences),
        session_values=session_values,
        qualified=qualified,
    )


def _walk(node: object) -> Iterator[ast.Node]:
    """Every AST node below ``node``, parents first; lists are flattened."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
        return
    if not isinstance(node, ast.Node) or isinstance(node, (ast.String, ast.Integer)):
        return
    yield node
    if isinstance(node, (ast.A_Const, ast.ColumnRef, ast.SQLValueFunction)):
        return
    if isinstance(node, ast.TypeCast):
        yield from _walk(node.arg)  # the type name is checked by the caller
        return
    if isinstance(node, ast.FuncCall):
        if _strings(node.funcname) != ["nextval"]:
            yield from _walk(node.args)  # nextval's one argument is checked by the caller
        return
    if isinstance(node, ast.CollateClause):
        yield from _walk(node.arg)
        return
    for slot in node.__slots__:  # type: ignore[attr-defined]
        if slot in ("name", "location"):
            continue  # operator names are strings, checked by _operator
        yield from _walk(getattr(node, slot))


def _column(node: ast.ColumnRef, what: str) -> str:
    """The column's name; ``table.column`` and ``schema.table.column`` are read as PostgreSQL
    reads them, and the semantic check drops a qualifier naming the expression's own table."""
    fields = node.fields or ()
    if not 1 <= len(fields) <= 3 or not all(isinstance(f, ast.String) for f in fields):
        raise ValueError(f"{what}: refer to columns by their name (no '*')")
    try:
        for field in fields[:-1]:
            check_identifier(field.sval or "")
        return check_identifier(fields[-1].sval or "")
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def _function(node: ast.FuncCall, what: str) -> str:
    names = _strings(node.funcname)
    if names[0] == "pg_catalog" and len(names) == 2:
        names = names[1:]
    name = names[0] if len(names) == 1 else ".".join(names)
    if name not in ALLOWED_FUNCTIONS:
        raise ValueError(
            f"{what}: function {name!r} is not allowed; use one of the pure functions listed "
            "in the README (now(), gen_random_uuid(), lower(), coalesce(), nextval('seq'), …)"
        )
    if node.agg_star or node.agg_distinct or node.over or node.agg_filter or node.agg_order:
        raise ValueError(f"{what}: {name}() may not be used as an aggregate or window function")
    if node.func_variadic or node.agg_within_group:
        raise ValueError(f"{what}: {name}() may not use VARIADIC or WITHIN GROUP")
    return name


def _sequence_argument(node: ast.FuncCall, what: str) -> str:
    args = node.args or ()
    arg = args[0] if len(args) == 1 else None
    if isinstance(arg, ast.TypeCast) and arg.typeName and RawStream()(arg.typeName) == "regclass":
        arg = arg.arg
    value = getattr(getattr(arg, "val", None), "sval", None)
    if not isinstance(value, str):
        raise ValueError(f"{what}: nextval() takes one sequence name in quotes, like nextval('s')")
    try:
        parts = split_qualified(value)
    except ValueError as exc:
        raise ValueError(f"{what}: nextval(): {exc}") from None
    if len(parts) > 2:
        raise ValueError(f"{what}: nextval({value!r}) must name schema.sequence or sequence")
    try:
        for part in parts:
            check_identifier(part)
    except ValueError as exc:
        raise ValueError(f"{what}: nextval(): {exc}") from None
    return value


def _cast_type(node: ast.TypeCast, what: str) -> None:
    if node.typeName is None:
        raise ValueError(f"{what}: a cast needs a type")
    try:
        parsed = _from_ast(node.typeName, RawStream()(node.typeName))
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    if parsed.schema is None and parsed.name.startswith("reg"):
        raise ValueError(f"{what}: casts to {parsed.name} look up catalog objects; not allowed")


def _operator(node: ast.A_Expr, what: str) -> None:
    names = _strings(node.name)
    if len(names) != 1 or names[0] not in _OPERATORS:
        op = ".".join(names)
        raise ValueError(f"{what}: operator {op!r} is not allowed in a manifest expression")


def _collation(node: ast.CollateClause, what: str) -> None:
    names = _strings(node.collname)
    if len(names) != 1 or names[0] not in _COLLATIONS:
        raise ValueError(f"{what}: only the collations {sorted(_COLLATIONS)} may be named")


def _strings(nodes: tuple[Any, ...] | None) -> list[str]:
    """The ``sval`` of each String node of a pglast name list (None counts as empty)."""
    return [str(n.sval) for n in nodes or ()]
