"""The names PostgreSQL gives constraints and indexes that were created without one.

A manifest may leave a constraint or index unnamed, as ``metadata.create_all()`` often does. We
fill in the very name PostgreSQL would choose (``makeObjectName`` in ``indexcmds.c``), so the
healed catalog is indistinguishable from one that ``CREATE TABLE`` built, and a later manifest that
spells the name out means the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["default_name", "unique_name"]

_MAX = 63


def default_name(table: str, columns: Iterable[str], label: str) -> str:
    """``table_col1_col2_label``, shortened the way PostgreSQL shortens it to fit 63 bytes."""
    joined = "_".join(columns)
    return _make_object_name(table, joined or None, label)


def unique_name(base_table: str, columns: Iterable[str], label: str, taken: set[str]) -> str:
    """Like :func:`default_name`, adding 1, 2, … before the label while the name is taken."""
    joined = "_".join(columns) or None
    name = _make_object_name(base_table, joined, label)
    counter = 0
    while name in taken:
        counter += 1
        name = _make_object_name(base_table, joined, f"{label}{counter}")
    taken.add(name)
    return name


def _make_object_name(name1: str, name2: str | None, label: str) -> str:
    """Port of PostgreSQL's makeObjectName: trim the longer part until everything fits."""
    part1 = name1.encode("utf-8")
    part2 = name2.encode("utf-8") if name2 is not None else b""
    overhead = len(label.encode()) + 1 + (1 if name2 is not None else 0)
    while len(part1) + len(part2) > _MAX - overhead:
        if len(part1) > len(part2):
            part1 = _clip(part1)
        else:
            part2 = _clip(part2)
    pieces = [part1.decode("utf-8")]
    if name2 is not None:
        pieces.append(part2.decode("utf-8"))
    pieces.append(label)
    return "_".join(pieces)


def _clip(data: bytes) -> bytes:
    """Drop the last character (not byte) — pg_mbcliplen never splits a character."""
    return data.decode("utf-8")[:-1].encode("utf-8")
