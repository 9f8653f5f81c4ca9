"""PostgreSQL identifiers: what a manifest may name, and how such a name is written in SQL.

A manifest names schemas, tables, columns, constraints, indexes, types and sequences. Every such
name must be a *plain* PostgreSQL identifier: it starts with a lowercase letter or underscore and
continues with lowercase letters, digits, underscores or ``$``, and fits in 63 bytes (NAMEDATALEN
- 1). PostgreSQL silently truncates longer names; we refuse them, so a service never believes it
has a column that the database calls something else.

Restricting names to the plain form (no quoted identifiers with spaces, capitals or punctuation)
costs real applications almost nothing and closes a whole family of injection and look-alike
attacks: a name is safe to write in SQL exactly when it matches this pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pglast import keywords

__all__ = ["MAX_IDENTIFIER_BYTES", "check_identifier", "qualified", "quote_ident"]

MAX_IDENTIFIER_BYTES = 63
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")
# Keywords that cannot be used as bare column names must be quoted; PostgreSQL's
# quote_identifier() quotes every keyword except the unreserved ones, and so do we.
_NEEDS_QUOTES = (
    frozenset(keywords.RESERVED_KEYWORDS)
    | frozenset(keywords.COL_NAME_KEYWORDS)
    | frozenset(keywords.TYPE_FUNC_NAME_KEYWORDS)
)


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain identifier of at most 63 bytes; raise ValueError otherwise.

    The message says what to change, because it reaches the author of a manifest.
    """
    if not isinstance(name, str):  # pydantic passes str, direct callers might not
        raise TypeError("an identifier must be a string")
    if not name:
        raise ValueError("an identifier may not be empty")
    size = len(name.encode("utf-8"))
    if size > MAX_IDENTIFIER_BYTES:
        raise ValueError(
            f"identifier {name[:20]!r}… is {size} bytes; PostgreSQL keeps only 63 and would "
            "silently truncate it: choose a shorter name"
        )
    if not _PLAIN.match(name):
        raise ValueError(
            f"identifier {name!r} is not a plain PostgreSQL name: use lowercase ASCII letters, "
            "digits, '_' and '$', starting with a letter or '_'"
        )
    return name


@lru_cache(maxsize=65536)  # called for every identifier of every plan: names repeat a lot
def quote_ident(name: str) -> str:
    """Write ``name`` the way PostgreSQL's ``quote_ident()`` does: quoted only when needed.

    Matching PostgreSQL's own choice matters: the inspected catalog prints names this way
    (``format_type``, ``pg_get_expr``), and comparisons are done on that text.
    """
    if _PLAIN.match(name) and "$" not in name and name not in _NEEDS_QUOTES:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    """``schema.name``, each part quoted as PostgreSQL would."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"
