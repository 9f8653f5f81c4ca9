"""The rules of one column's declared intent on its own; :mod:`contracts.intent` has the rest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from contracts.errors import Problem


class Column(Protocol):
    """What these rules read of :class:`contracts.manifest.Column` (which imports them)."""

    @property
    def name(self) -> str: ...

    @property
    def renamed_from(self) -> str | None: ...

    @property
    def using(self) -> str | None: ...

    @property
    def reverse(self) -> str | None: ...

    @property
    def backfill(self) -> str | None: ...

    @property
    def generated(self) -> str | None: ...

    @property
    def default(self) -> str | None: ...

    @property
    def identity(self) -> object | None: ...


__all__ = ["INFO_KEY", "INTENT_KEYS", "check_column_intent", "declares_intent", "intent_from_info"]

#: The intent fields of a column, in the order the README lists them
INTENT_KEYS = ("renamed_from", "using", "reverse", "backfill")
#: The key of SQLAlchemy's ``Column.info`` the adapter reads a column's declared intent from
INFO_KEY = "schemaheal"
_KEYS = ", ".join(INTENT_KEYS)


def intent_from_info(
    info: Mapping[Any, Any], where: str, problems: list[Problem]
) -> dict[str, str]:
    """``Column(info={"schemaheal": {"renamed_from": …, "using": …, "reverse": …,
    "backfill": …}})``: the column's declared intent, checked by the manifest like the rest."""
    given = info.get(INFO_KEY)
    if given is None:
        return {}
    if not isinstance(given, dict):
        problems.append(Problem(where, f'info["{INFO_KEY}"] must be a dict of {_KEYS}'))
        return {}
    unknown = sorted(str(key) for key in given if key not in INTENT_KEYS)
    if unknown:
        message = f'info["{INFO_KEY}"]: unknown key(s) {", ".join(unknown)}; use {_KEYS}'
        problems.append(Problem(where, message))
    out = {}
    for key in INTENT_KEYS:
        value = given.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(Problem(where, f'info["{INFO_KEY}"]["{key}"] must be a string'))
        elif value is not None:
            out[key] = value
    return out


def declares_intent(column: Column) -> bool:
    return any(getattr(column, key) is not None for key in INTENT_KEYS)


def check_column_intent(column: Column) -> None:
    """Raise ValueError when the column's intent contradicts itself or its other fields."""
    name = column.name
    if column.renamed_from == name:
        raise ValueError(f"column {name}: renamed_from names the column itself; remove it")
    if column.generated is not None and declares_intent(column):
        raise ValueError(
            f"column {name}: a generated column computes its own value; remove renamed_from, "
            "using, reverse and backfill"
        )
    if column.backfill is not None:
        others = [
            key
            for key in ("renamed_from", "using", "reverse", "default", "identity")
            if getattr(column, key) is not None
        ]
        if others:
            raise ValueError(
                f"column {name}: backfill fills a new column; it cannot be combined with "
                f"{' and '.join(others)} (a renamed column takes the old one's values, a default "
                "fills existing rows itself)"
            )
    if column.reverse is not None and column.renamed_from is None:
        raise ValueError(
            f"column {name}: reverse writes the old column back; name it with renamed_from "
            "(a change in place under the same name needs no reverse)"
        )
