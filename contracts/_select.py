"""The one place where manifest text meets PostgreSQL's parser.

A type or an expression from a manifest is parsed as the single target of ``SELECT <text>``. The
result is accepted only when it is exactly one plain SELECT with exactly one target and no other
clause, so text that smuggles in ``FROM``, a second statement, a comment trick or a set operation
is refused before anything looks at the expression itself.
"""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.parser import ParseError, scan

_CLAUSES = (
    "distinctClause",
    "intoClause",
    "fromClause",
    "whereClause",
    "groupClause",
    "havingClause",
    "windowClause",
    "valuesLists",
    "sortClause",
    "limitOffset",
    "limitCount",
    "lockingClause",
    "withClause",
)
#: The longest expression a manifest may hold. Real models generate CHECKs of ~10 kB (an IN list
#: of every allowed value); 64 KiB leaves room for six times that and still bounds the work: the
#: longest parses (and compares) in about 55 ms, once, as results are cached; the manifest as a
#: whole has its own 8 MiB limit.
MAX_TEXT = 64 * 1024


def select_target(text: str, *, what: str) -> ast.Node:
    """Return the parse tree of ``text`` as one value expression; raise ValueError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what} may not be empty")
    if len(text) > MAX_TEXT:
        raise ValueError(f"{what} is longer than {MAX_TEXT} characters: simplify it")
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL character")
    try:
        statements = parse_sql(f"SELECT {text}")
    except ParseError as exc:
        raise ValueError(f"{what} {_short(text)} does not parse as SQL: {exc.args[0]}") from None
    if any(token.name in ("SQL_COMMENT", "C_COMMENT") for token in scan(text)):
        raise ValueError(f"{what} {_short(text)} may not contain SQL comments")
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        raise ValueError(f"{what} {_short(text)} must be a single expression, not statements")
    select = statements[0].stmt
    if select.op or any(getattr(select, clause, None) for clause in _CLAUSES):
        raise ValueError(f"{what} {_short(text)} must be a single expression, not a query")
    targets = select.targetList or ()
    if len(targets) != 1 or targets[0].name is not None:
        raise ValueError(f"{what} {_short(text)} must be exactly one expression")
    return targets[0].val  # type: ignore[no-any-return]


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
