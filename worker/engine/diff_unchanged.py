"""The no-drift shortcut of the table diff: a table equal to its declaration, part by part as
values, needs no walk (:func:`worker.engine.diff_table.diff_table`). Pure."""

from __future__ import annotations

from typing import TypeVar

from worker.engine import model as m

__all__ = ["compare", "unchanged"]


_Named = TypeVar("_Named", m.UniqueConstraint, m.ForeignKey, m.CheckConstraint, m.Index)

#: Answers by the pair of objects asked about, which each entry keeps alive (so their ids stay
#: theirs). Tables are immutable and both sides reuse them between inspections (the inspected
#: ones by their catalog rows, the desired ones by manifest), so a plan asks about the same pairs
#: again: twice per plan (defaults, diff) and once per plan of the same manifest. Bounded
#: (cleared when full): it only saves time, it never decides anything.
_ANSWERS: dict[tuple[int, int], tuple[m.Table, m.Table, bool]] = {}
_MAX_ANSWERS = 20_000


def unchanged(current: m.Table, desired: m.Table) -> bool:
    """:func:`compare`, answered from :data:`_ANSWERS` for a pair of objects asked about before."""
    key = (id(current), id(desired))
    seen = _ANSWERS.get(key)
    if seen is not None and seen[0] is current and seen[1] is desired:
        return seen[2]
    answer = compare(current, desired)
    if len(_ANSWERS) >= _MAX_ANSWERS:
        _ANSWERS.clear()
    _ANSWERS[key] = (current, desired, answer)
    return answer


def compare(current: m.Table, desired: m.Table) -> bool:
    """True when the table is as declared, part by part as values, so diffing it would find
    nothing: the no-drift case decided with a few tuple comparisons instead of a walk.

    Sufficient, never necessary (False only means "diff it"): no declared intent (a migration
    may have steps left on an equal shape), every constraint and index valid (an invalid one is
    rebuilt or validated), and no index beyond those declared but the ones backing keys."""
    if (
        current.columns != desired.columns  # interned: mostly an identity check
        or current.primary_key != desired.primary_key
        or (desired.comment is not None and desired.comment != current.comment)
    ):
        return False
    for column in desired.columns:
        if column.intent is not None:
            return False
    own_indexes = tuple([index for index in current.indexes if index.constraint is None])
    return (
        _same_parts(current.unique, desired.unique)
        and _same_parts(current.foreign_keys, desired.foreign_keys)
        and _same_parts(current.checks, desired.checks)
        and _same_parts(own_indexes, desired.indexes)
        and _all_valid(current)
    )


def _all_valid(table: m.Table) -> bool:
    return (
        not [fk for fk in table.foreign_keys if not fk.valid]
        and not [check for check in table.checks if not check.valid]
        and not [index for index in table.indexes if not index.valid]
    )


def _same_parts(current: tuple[_Named, ...], desired: tuple[_Named, ...]) -> bool:
    """Equal as values, whatever order the manifest lists them in (the catalog's are by name)."""
    if current == desired:
        return True
    return len(current) == len(desired) and current == tuple(sorted(desired, key=_name))


def _name(part: _Named) -> str:
    return part.name
