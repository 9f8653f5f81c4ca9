"""Database passwords out of every output.

Two defences. First, nothing that may hold a DSN is ever echoed: a databases item that is not
``ALIAS=postgresql://…`` is refused by its position, and a DSN asyncpg cannot parse is refused
without asyncpg's words (they quote pieces of it). Second, every password the process was given
is remembered and replaced by ``***`` in every log line and in the commands' error messages, in
case some library quotes one anyway (only passwords of 3 characters or more: shorter ones would
mask ordinary words).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["DSN_FORM", "REDACTED", "DatabaseItem", "redact", "remember", "split_items"]

REDACTED = "***"
DSN_FORM = (
    "write postgresql://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=…, with special characters of "
    "the password percent-encoded (@ %40, : %3A, / %2F, , %2C, = %3D, ? %3F, # %23, % %25), or "
    "leave the password out and give it in PGPASSWORD or ~/.pgpass"
)
_ALIAS = r"[a-z0-9][a-z0-9._-]{0,62}"
_URL = r"postgres(?:ql)?://"
_ITEM = re.compile(rf"\s*({_ALIAS})\s*=\s*({_URL}.*?)\s*", re.DOTALL)
#: items are lines; commas separate them too, but only before the next ALIAS=postgresql://
_COMMA = re.compile(rf",(?=\s*{_ALIAS}\s*=\s*{_URL})")
_NOT_SHOWN = "(it is not shown: it may hold a password)"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseItem:
    alias: str
    dsn: str


def split_items(text: str, where: str) -> list[tuple[str, str]]:
    """``text``'s non-empty, non-comment items, each with where it is (``line 3 of FILE``)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("#"):
            continue
        out += [(f"line {number} of {where}", i) for i in _COMMA.split(line) if i.strip()]
    return out


def parse_item(item: str, where: str) -> DatabaseItem:
    """One ``ALIAS=postgresql://…`` item; a ValueError that never shows the item otherwise."""
    matched = _ITEM.fullmatch(item)
    if matched is not None:
        remember(matched[2])
        return DatabaseItem(alias=matched[1], dsn=matched[2])
    remember(item)  # whatever it is, it may hold a password that a library could quote
    if re.match(rf"\s*{_URL}", item):
        why = "is a DSN without its alias: write ALIAS=postgresql://…"
    elif re.match(rf"\s*{_ALIAS}\s*=", item):
        alias = item.split("=", 1)[0].strip()
        why = (f"gives alias {alias!r} a DSN that is not a postgresql:// URL (key=value DSNs "
               f"are not supported); {DSN_FORM}")  # fmt: skip
    else:
        why = ("is not ALIAS=postgresql://…: an alias is lowercase letters, digits, '.', '_' "
               "and '-', and items are separated by new lines (or by commas)")  # fmt: skip
    raise ValueError(f"the database item at {where} {why} {_NOT_SHOWN}")


@dataclass(slots=True)
class _Secrets:
    known: set[str] = field(default_factory=set)

    def add(self, secret: str) -> None:
        for form in {secret, unquote(secret)}:
            if len(form) >= 3:
                self.known.add(form)


_SECRETS = _Secrets()
_QUERY_PASSWORD = re.compile(r"[?&]password=([^&#]*)", re.IGNORECASE)
_PAIR_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def remember(dsn: str) -> None:
    """Remember the passwords in ``dsn`` (URL user info, ``?password=``, ``password=…`` pairs,
    however malformed the DSN) so that :func:`redact` masks them."""
    _, scheme, rest = dsn.partition("://")
    if scheme and "@" in rest:
        user_info = rest.rsplit("@", 1)[0]
        if ":" in user_info:
            _SECRETS.add(user_info.split(":", 1)[1])
    for found in _QUERY_PASSWORD.findall(dsn) + _PAIR_PASSWORD.findall(dsn):
        _SECRETS.add(found.strip("'"))


def redact(text: str) -> str:
    """``text`` with every remembered password replaced by ``***`` (longest first)."""
    for secret in sorted(_SECRETS.known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Masks remembered passwords in a log record's message, extra fields and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _SECRETS.known:
            return True
        record.msg, record.args = redact(record.getMessage()), None
        for key, value in vars(record).items():
            if isinstance(value, str) and key != "msg":
                setattr(record, key, redact(value))
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
