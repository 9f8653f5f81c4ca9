"""A rename whose column keeps its index's name (found on optuna's models: studies.study_name,
under a unique index, renamed with the index's name kept, as an explicitly named ``Index`` is).
Pure.

The index of that name stays on the old column, which old replicas use until contract; the new
column's index is built meanwhile under ``<name>__sh_rn`` (CONCURRENTLY, as every added index),
and contract renames it to its name (:mod:`worker.engine.expand_handover`). Neither version's
manifest sees drift on the way.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.builders import column, index
from tests.engine.test_diff_intent import users, wants
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.diff import diff
from worker.engine.expand_parts import handover_index

NEW = wants("full_name", renamed_from="name")
OLD_INDEX = index("users_name_key", "name", unique=True)
NEW_INDEX = index("users_name_key", "full_name", unique=True)
HANDOVER = index("users_name_key__sh_rn", "full_name", unique=True)


def _planned(current: m.Realm, desired: m.Realm) -> tuple[list[str], list[str]]:
    changes, drift = diff(current, desired)
    names = []
    for c in changes:
        name = type(c).__name__
        if isinstance(c, ch.AddIndex | ch.RebuildInvalidIndex):
            name += f"({c.index.name} on {c.index.elements[0].column})"
        elif isinstance(c, ch.ExpandColumn) and c.expanded:
            name += "(expanded)"
        names.append(name)
    return names, [f"{d.kind} {d.target}" for d in drift]


@pytest.mark.parametrize(
    ("phase", "columns", "indexes", "changes"),
    [
        (
            "before expand",
            (column("name"),),
            (OLD_INDEX,),
            ["ExpandColumn", "AddIndex(users_name_key__sh_rn on full_name)"],
        ),
        (
            "expanded, its index not built yet",
            (column("name"), column("full_name")),
            (OLD_INDEX,),
            ["ExpandColumn(expanded)", "AddIndex(users_name_key__sh_rn on full_name)"],
        ),
        (
            "expanded, its index built",
            (column("name"), column("full_name")),
            (OLD_INDEX, HANDOVER),
            ["ExpandColumn(expanded)"],
        ),
        (
            "its index's build interrupted",
            (column("name"), column("full_name")),
            (OLD_INDEX, replace(HANDOVER, valid=False)),
            ["ExpandColumn(expanded)", "RebuildInvalidIndex(users_name_key__sh_rn on full_name)"],
        ),
        (
            "contracted, the old column kept",
            (column("name"), column("full_name")),
            (NEW_INDEX,),
            ["ExpandColumn(expanded)"],
        ),
        ("contracted", (column("full_name"),), (NEW_INDEX,), []),
    ],
)
def test_the_new_manifest_builds_the_index_under_another_name_until_contract(
    phase: str, columns: tuple[m.Column, ...], indexes: tuple[m.Index, ...], changes: list[str]
) -> None:
    current = users(*columns, indexes=indexes)
    desired = users(NEW, indexes=(NEW_INDEX,))
    planned, drift = _planned(current, desired)
    assert planned == changes, phase
    assert [d for d in drift if "extra-column" not in d] == [], phase


def test_the_old_manifest_sees_the_index_it_uses_and_only_informational_drift() -> None:
    current = users(column("name"), column("full_name"), indexes=(OLD_INDEX, HANDOVER))
    desired = users(column("name"), indexes=(OLD_INDEX,))
    changes, drift = diff(current, desired)
    assert list(changes) == []
    assert [(d.kind, d.target, d.blocking) for d in drift] == [
        ("extra-column", "public.users.full_name", False),
        ("extra-index", "public.users.users_name_key__sh_rn", False),
    ]


@pytest.mark.parametrize(
    "new_name",
    ["users_full_name_key", "users_name_key"],  # named after the new column, or the name kept
)
def test_an_index_on_a_renamed_column_is_planned_with_the_rename(new_name: str) -> None:
    current = users(column("name"), indexes=(OLD_INDEX,))
    desired = users(NEW, indexes=(index(new_name, "full_name", unique=True),))
    changes, drift = diff(current, desired)
    assert any(isinstance(c, ch.ExpandColumn) for c in changes)
    assert [d for d in drift if d.blocking] == []


def test_another_definition_under_the_kept_name_is_still_a_difference() -> None:
    """Only the same index moved to the new column is handed over: not a non-unique one."""
    current = users(column("name"), indexes=(OLD_INDEX,))
    desired = users(NEW, indexes=(index("users_name_key", "full_name"),))
    _, drift = _planned(current, desired)
    assert [d for d in drift if "extra-column" not in d] == [
        "index-differs public.users.users_name_key"
    ]


@pytest.mark.parametrize(
    ("name", "handover"),
    [
        ("ix_studies_study_name", "ix_studies_study_name__sh_rn"),
        ("i" * 56, "i" * 56 + "__sh_rn"),  # 63 bytes: kept whole
        ("i" * 57, "i" * 47 + "_bef92df2__sh_rn"),  # cut, and a hash keeps long names apart
        ("é" * 30, "é" * 23 + "_f96161c7__sh_rn"),  # cut on a character, not inside one
    ],
)
def test_the_handover_name_fits_in_63_bytes(name: str, handover: str) -> None:
    assert handover_index(name) == handover
    assert len(handover.encode()) <= 63


def _unique(*columns: str, **extra: bool) -> tuple[m.UniqueConstraint, ...]:
    return (m.UniqueConstraint(name="users_name_key", columns=columns, **extra),)


BACKING = replace(OLD_INDEX, constraint="users_name_key")


@pytest.mark.parametrize(
    ("phase", "columns", "indexes", "unique", "changes"),
    [
        (
            "before expand",
            (column("name"),),
            (BACKING,),
            _unique("name"),
            ["ExpandColumn", "AddIndex(users_name_key__sh_rn on full_name)"],
        ),
        (
            "expanded, its index built",
            (column("name"), column("full_name")),
            (BACKING, HANDOVER),
            _unique("name"),
            ["ExpandColumn(expanded)"],
        ),
        (
            "its index's build interrupted",
            (column("name"), column("full_name")),
            (BACKING, replace(HANDOVER, valid=False)),
            _unique("name"),
            ["ExpandColumn(expanded)", "RebuildInvalidIndex(users_name_key__sh_rn on full_name)"],
        ),
        (
            "contracted",
            (column("full_name"),),
            (replace(NEW_INDEX, constraint="users_name_key"),),
            _unique("full_name"),
            [],
        ),
    ],
)
def test_a_unique_constraint_keeping_its_name_is_built_aside_until_contract(
    phase: str,
    columns: tuple[m.Column, ...],
    indexes: tuple[m.Index, ...],
    unique: tuple[m.UniqueConstraint, ...],
    changes: list[str],
) -> None:
    current = users(*columns, indexes=indexes, unique=unique)
    planned, drift = _planned(current, users(NEW, unique=_unique("full_name")))
    assert planned == changes, phase
    assert [d for d in drift if "extra-column" not in d] == [], phase
    old = users(column("name"), unique=_unique("name"))
    if phase != "contracted":  # the old version's manifest: nothing blocking
        assert [d for d in diff(current, old)[1] if d.blocking] == [], phase


def test_a_unique_constraint_with_nulls_not_distinct_is_still_a_difference() -> None:
    """An index has no NULLS NOT DISTINCT to add the constraint back USING: not handed over."""
    current = users(column("name"), indexes=(BACKING,), unique=_unique("name"))
    desired = users(NEW, unique=_unique("full_name", nulls_not_distinct=True))
    _, drift = _planned(current, desired)
    assert [d for d in drift if "extra-column" not in d] == [
        "constraint-differs public.users.users_name_key"
    ]
