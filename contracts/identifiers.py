"""PostgreSQL identifiers: what a manifest may name, and how such a name is written in SQL.

A manifest names schemas, tables, columns, constraints, indexes, types and sequences. It may use
every name a real schema uses — ``users``, ``UserAccount``, ``parent.parent_id``, ``order-items``,
``Größe`` — because safety comes from *always quoting* a name that is not plain (``quote_ident``),
never from pasting it into SQL. What no real schema needs is refused, because it only serves to
confuse a reader or a tool: quotes, ``;``, backslashes, control and invisible characters (NUL,
zero-width joiners, bidi overrides, the BOM), punctuation and symbols beyond ASCII (the minus
sign that looks like ``-``, emoji), leading or trailing spaces, characters that Unicode
folds into other ones (fullwidth letters), and words that mix Latin letters with Greek or
Cyrillic look-alikes (``table`` spelt with a Cyrillic ``a``). Every name fits in 63 bytes
(NAMEDATALEN - 1): PostgreSQL silently truncates longer ones, and a service must never believe
it has a column that the database calls something else.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from pglast import keywords

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_IDENTIFIER_BYTES",
    "check_identifier",
    "qualified",
    "quote_ident",
    "split_qualified",
]

MAX_IDENTIFIER_BYTES = 63
#: The ASCII part of the rule, published in the JSON Schema (the Unicode part is checked here).
IDENTIFIER_PATTERN = r"""^[^"';\\\x00-\x1f\x7f]+$"""
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*\Z")
_REFUSED = frozenset("\"';\\")
# Letters of these scripts look alike; a name may use one of them, not a mix.
_CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
# Keywords that cannot be used as bare column names must be quoted; PostgreSQL's
# quote_identifier() quotes every keyword except the unreserved ones, and so do we.
_NEEDS_QUOTES = (
    frozenset(keywords.RESERVED_KEYWORDS)
    | frozenset(keywords.COL_NAME_KEYWORDS)
    | frozenset(keywords.TYPE_FUNC_NAME_KEYWORDS)
)


def check_identifier(name: str) -> str:
    """Return ``name`` if a manifest may use it; raise ValueError saying what to change.

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
        _check_unusual(name)
    return name


@lru_cache(maxsize=16384)
def _check_unusual(name: str) -> None:
    bad = next((ch for ch in name if ch in _REFUSED or not _visible(ch)), None)
    if bad is not None:
        raise ValueError(
            f"identifier {name!r} contains {unicodedata.name(bad, repr(bad))}: names may not "
            "contain quotes, ';', backslashes, control or invisible characters, or punctuation and "
            "symbols beyond ASCII; rename it"
        )
    if name != name.strip():
        raise ValueError(f"identifier {name!r} starts or ends with a space: remove it")
    if unicodedata.normalize("NFKC", name) != name:
        raise ValueError(
            f"identifier {name!r} has characters Unicode treats as look-alikes of others "
            f"(it folds to {unicodedata.normalize('NFKC', name)!r}): write that instead"
        )
    scripts = {_script(ch) for ch in name if ch.isalpha()} & set(_CONFUSABLE_SCRIPTS)
    if len(scripts) > 1:
        raise ValueError(
            f"identifier {name!r} mixes {' and '.join(sorted(scripts)).lower()} letters, which "
            "look alike: write it in one alphabet"
        )


def _visible(ch: str) -> bool:
    """Printable ASCII, and letters, marks and digits beyond it.

    Punctuation and symbols outside ASCII are where the look-alikes of ASCII ones live (the
    minus sign, the one-dot leader, the full stop of other scripts), so they are refused.
    """
    if ch.isascii():
        return " " <= ch <= "~"
    return unicodedata.category(ch)[0] in "LMN"


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]


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


def split_qualified(text: str) -> list[str]:
    """``'a."B.c"'`` → ``['a', 'B.c']``: a dotted name as PostgreSQL reads it (regclass text).

    Unquoted parts are folded to lower case, quoted ones kept; raise ValueError if malformed.
    """
    parts: list[str] = []
    rest = text
    while True:
        if rest.startswith('"'):
            match = re.match(r'"((?:[^"]|"")+)"', rest)
            if match is None:
                raise ValueError(f"{text!r} is not a well-formed name")
            parts.append(match.group(1).replace('""', '"'))
        else:
            match = re.match(r"[^.\"]+", rest)
            if match is None:
                raise ValueError(f"{text!r} is not a well-formed name")
            parts.append(match.group(0).strip().translate(_ASCII_LOWER))
        rest = rest[match.end() :]
        if not rest:
            return parts
        if not rest.startswith("."):
            raise ValueError(f"{text!r} is not a well-formed name")
        rest = rest[1:]
