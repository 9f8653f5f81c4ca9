"""SQL text compiled from models, read the way PostgreSQL reads it.

SQLAlchemy writes a column it compiles from a column object with its table in front
(``accounts.status = 'x'``); PostgreSQL stores a CHECK, an index key or predicate without that
qualifier, so :func:`unqualify` drops a qualifier naming the expression's own table and refuses
one naming another table. An index element given as text (``sa.text("created DESC")``) carries
its ordering, NULLS order and operator class with it; :func:`index_elements` parses it with the
grammar of ``CREATE INDEX``. Both re-write the text from its parse tree, never pass it on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

from contracts._select import MAX_TEXT, select_target

__all__ = ["index_elements", "unqualify"]

_ORDER = {enums.SortByDir.SORTBY_ASC: "asc", enums.SortByDir.SORTBY_DESC: "desc"}
_NULLS = {
    enums.SortByNulls.SORTBY_NULLS_FIRST: "first",
    enums.SortByNulls.SORTBY_NULLS_LAST: "last",
}


def unqualify(text: str, *, table: str, schema: str, what: str) -> str:
    """``text`` with every ``table.column`` (or ``schema.table.column``) written ``column``.

    Raise ValueError naming the other table when a column of another table is referred to.
    """
    root = select_target(text, what=what)
    changed = False
    for node in _column_refs(root):
        fields = node.fields or ()
        if len(fields) < 2 or not all(isinstance(f, ast.String) for f in fields):
            continue
        qualifier = [str(f.sval) for f in fields[:-1]]
        if qualifier not in ([table], [schema, table]):
            owner = ".".join(qualifier)
            raise ValueError(
                f"{what} {text!r} refers to {owner}.{fields[-1].sval}, a column of another "
                f"table: a {what} may only use columns of its own table {schema}.{table}"
            )
        node.fields = (fields[-1],)
        changed = True
    return str(RawStream(special_functions=True)(root)) if changed else text


def _column_refs(node: object) -> Iterator[ast.ColumnRef]:
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _column_refs(item)
    elif isinstance(node, ast.ColumnRef):
        yield node
    elif isinstance(node, ast.Node):
        for slot in node.__slots__:  # type: ignore[attr-defined]
            yield from _column_refs(getattr(node, slot))


def index_elements(text: str, *, what: str) -> list[dict[str, Any]]:
    """The manifest elements of ``text`` read as the key list of ``CREATE INDEX … (text)``."""
    if "\x00" in text or len(text) > MAX_TEXT:
        raise ValueError(f"{what} {text[:60]!r} is not an index element")
    try:
        statements = parse_sql(f"CREATE INDEX i ON t ({text})")
    except ParseError as exc:
        raise ValueError(f"{what} {text!r} does not parse as an index element: {exc}") from None
    node = statements[0].stmt if len(statements) == 1 else None
    extra = ("whereClause", "indexIncludingParams", "options", "tableSpace")
    if not isinstance(node, ast.IndexStmt) or any(getattr(node, a, None) for a in extra):
        raise ValueError(f"{what} {text!r} must be index elements only (column or expression)")
    return [_element(elem, text, what) for elem in node.indexParams or ()]


def _element(elem: ast.IndexElem, text: str, what: str) -> dict[str, Any]:
    if elem.collation or elem.opclassopts or elem.ordering == enums.SortByDir.SORTBY_USING:
        raise ValueError(
            f"{what} {text!r}: COLLATE, operator class options and ASC/DESC USING have no "
            "manifest form; remove them"
        )
    out: dict[str, Any] = {}
    if elem.name is not None:
        out["column"] = elem.name
    else:
        out["expression"] = str(RawStream(special_functions=True)(elem.expr or ""))
    if elem.ordering in _ORDER:
        out["order"] = _ORDER[elem.ordering]
    if elem.nulls_ordering in _NULLS:
        out["nulls"] = _NULLS[elem.nulls_ordering]
    names = [str(n.sval) for n in elem.opclass or ()]
    if names[:1] == ["pg_catalog"]:
        names = names[1:]
    if len(names) > 1:
        raise ValueError(f"{what} {text!r}: name the operator class without a schema")
    if names:
        out["opclass"] = names[0]
    return out
