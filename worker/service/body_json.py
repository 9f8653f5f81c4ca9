"""A record's JSON object body, read with the exact text of each member's value. Pure.

Replicas of one service send the same manifest inside bodies that differ elsewhere (the
instance). Knowing the exact text of the ``manifest`` member lets the gate recognise a manifest
it has validated before by a digest of that text, and not decode it again: a text seen before
is taken from ``known`` by comparing the characters, never by a digest alone.

The result is what :func:`json.loads` gives for the same bytes (the same encodings, the last of
repeated keys, the same errors as :class:`ValueError`); anything the member reader does not
follow (a body that is not an object) is left to :func:`json.loads`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.decoder import JSONDecodeError
from typing import Any

__all__ = ["Members", "read_object"]

_SPACE = re.compile(r"[ \t\n\r]*")
_BLANK = frozenset(" \t\n\r")
_DECODER = json.JSONDecoder()

#: ``known(name, text, start)``: for member ``name``, an object decoded before whose exact
#: text starts ``text`` at ``start``, and where that text ends; None when there is none.
Known = Callable[[str, str, int], tuple[Any, int] | None]


class Members:
    """A JSON object's members and the exact text of each member's value."""

    __slots__ = ("texts", "values")

    def __init__(self, values: Any, texts: dict[str, str]) -> None:
        self.values = values  # the decoded body (a dict when it is an object)
        self.texts = texts  # member name -> the exact text of its value (the last one)


def read_object(value: bytes, known: Known | None = None) -> Members:
    """The body decoded as :func:`json.loads` would, with its members' texts (none when the
    body is not a JSON object). ``known`` may supply values decoded before. Raises
    :class:`ValueError` (or :class:`RecursionError`) as :func:`json.loads` does."""
    text = value.decode(json.detect_encoding(value), "surrogatepass")
    if text.startswith("\ufeff"):
        raise JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    start = _skip(text, 0)
    if not text.startswith("{", start):
        return Members(json.loads(text), {})
    values: dict[str, Any] = {}
    texts: dict[str, str] = {}
    at = _skip(text, start + 1)
    if text.startswith("}", at):
        return _whole(text, at + 1, Members(values, texts))
    while True:
        if not text.startswith('"', at):
            raise JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
        name, at = _DECODER.raw_decode(text, at)  # a string: it starts with a quote
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise JSONDecodeError("Expecting ':' delimiter", text, at)
        at = _skip(text, at + 1)
        found = known(name, text, at) if known is not None else None
        member, end = found if found is not None else _DECODER.raw_decode(text, at)
        values[name], texts[name] = member, text[at:end]
        at = _skip(text, end)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif text.startswith("}", at):
            return _whole(text, at + 1, Members(values, texts))
        else:
            raise JSONDecodeError("Expecting ',' delimiter", text, at)


def _skip(text: str, at: int) -> int:
    """The first position at or after ``at`` that is not JSON white space."""
    if text[at : at + 1] not in _BLANK:  # compact JSON: nothing to skip (json's own shortcut)
        return at
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # always matches


def _whole(text: str, end: int, members: Members) -> Members:
    if _skip(text, end) != len(text):
        raise JSONDecodeError("Extra data", text, end)
    return members
