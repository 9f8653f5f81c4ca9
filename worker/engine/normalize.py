"""Comparing expressions across the two sides.

PostgreSQL stores defaults, CHECKs and index expressions as parse trees and prints them back with
the casts it inferred: the manifest's ``'whatsapp'`` comes back as ``'whatsapp'::character
varying``, ``status IN ('a', 'b')`` as ``status = ANY (ARRAY['a'::text, 'b'::text])``. Both sides
are therefore compared in a *comparison form*: parsed with pglast, casts removed, ``IN`` lists
rewritten as ``= ANY (ARRAY[…])``, ``LIKE``/``ILIKE`` written as the operators PostgreSQL's parser
makes of them (``~~``, ``~~*``, ``!~~``, ``!~~*``), ``pg_catalog.`` dropped from function
names, then deparsed.

The comparison form is only ever compared, never executed. When two forms still differ, the
difference is reported as drift rather than acted on, so a false difference costs a report, not
a change to the database.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from contracts.types import EXTENSION_FUNCTIONS

__all__ = ["comparable", "qualify_extension_functions", "same_expression"]


_LIKE = (enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE)


@lru_cache(maxsize=4096)
def comparable(sql: str) -> str:
    """The comparison form of ``sql``; the text itself when it does not parse."""
    try:
        statements = parse_sql(f"SELECT {sql}")
        node = statements[0].stmt.targetList[0].val  # type: ignore[union-attr]
    except (ParseError, AttributeError, IndexError, TypeError):
        return sql.strip()
    return str(RawStream()(_simplify(node)))


def same_expression(current: str | None, desired: str | None) -> bool:
    """True when both are absent or both have the same comparison form."""
    if current is None or desired is None:
        return current is desired
    return comparable(current) == comparable(desired)


def _simplify(tree: Any) -> Any:
    if isinstance(tree, tuple):
        return tuple(_simplify(item) for item in tree)
    if not isinstance(tree, ast.Node):
        return tree
    if isinstance(tree, ast.TypeCast):
        return _simplify(tree.arg)
    node: Any = tree  # pglast's AST is loosely typed; this walk only rewrites it in place
    names: Any = getattr(node, "funcname", None) or ()
    if isinstance(tree, ast.FuncCall) and len(names) == 2 and names[0].sval == "pg_catalog":
        node.funcname = (names[1],)
    if isinstance(tree, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_IN:
        any_all = enums.A_Expr_Kind.AEXPR_OP_ANY
        if node.name[0].sval == "<>":
            any_all = enums.A_Expr_Kind.AEXPR_OP_ALL
        node = ast.A_Expr(
            kind=any_all,
            name=node.name,
            lexpr=node.lexpr,
            rexpr=ast.A_ArrayExpr(elements=tuple(node.rexpr)),
        )
    if isinstance(tree, ast.A_Expr) and node.kind in _LIKE:
        node.kind = enums.A_Expr_Kind.AEXPR_OP  # its name is already the operator
    for slot in node.__slots__:
        if slot != "location":
            setattr(node, slot, _simplify(getattr(node, slot)))
    return node


def qualify_extension_functions(sql: str | None, schemas: dict[str, str]) -> str | None:
    """``sql`` with each call of an extension's function written ``schema.function()``.

    The engine's sessions run with ``search_path = pg_catalog``, where ``uuid_generate_v4()``
    alone is not found; and the catalog prints it qualified, so both sides then compare equal.
    """
    if sql is None or not any(name in sql for name in EXTENSION_FUNCTIONS):
        return sql
    node = parse_sql(f"SELECT {sql}")[0].stmt.targetList[0].val  # type: ignore[union-attr]
    changed = False
    for call in _function_calls(node):
        names = [n.sval for n in call.funcname]
        extension = EXTENSION_FUNCTIONS.get(names[0]) if len(names) == 1 else None
        if extension in schemas:
            call.funcname = (ast.String(sval=schemas[extension]), *call.funcname)
            changed = True
    return str(RawStream()(node)) if changed else sql


def _function_calls(tree: Any) -> list[Any]:
    if isinstance(tree, tuple):
        return [call for item in tree for call in _function_calls(item)]
    if not isinstance(tree, ast.Node):
        return []
    found = [tree] if isinstance(tree, ast.FuncCall) else []
    for slot in tree.__slots__:  # type: ignore[attr-defined]
        found += _function_calls(getattr(tree, slot))
    return found
