"""A rename whose column keeps its index's name (found on optuna's models: studies.study_name,
under a unique index, renamed with the index's name kept, as an explicitly named ``Index`` is).
Pure.

Today the desired index (the name, on the new column) meets the current one (the same name, on
the old column, which old replicas still use until contract): a difference that needs a person,
and the boot is blocked; its detail says to give the new column's index another name. What the
new version would need: the index built on the new column under another name during expand,
renamed to its name once contract dropped the old column (and the old index with it).
"""

from __future__ import annotations

import pytest

from tests.engine.builders import column, index
from tests.engine.test_diff_intent import outcome, users, wants
from worker.engine.diff import diff

KEEPS_ITS_NAME = pytest.mark.xfail(
    strict=True,
    reason="plan (worker/engine/diff_table.py): an index keeping its name on a renamed column "
    "is a difference that needs a person (the boot is blocked)",
)


@pytest.mark.parametrize(
    "new_name",
    [
        "users_full_name_key",  # named after the new column: built on it at expand
        pytest.param("users_name_key", marks=KEEPS_ITS_NAME),  # the name kept
    ],
)
def test_an_index_on_a_renamed_column_is_planned_with_the_rename(new_name: str) -> None:
    current = users(column("name"), indexes=(index("users_name_key", "name", unique=True),))
    desired = users(
        wants("full_name", renamed_from="name"),
        indexes=(index(new_name, "full_name", unique=True),),
    )
    changes, drift = outcome(current, desired)
    assert "ExpandColumn" in changes and drift == []


def test_an_index_keeping_its_name_across_a_rename_says_what_to_do() -> None:
    """Until planned, the blocking difference names the rename and the way out."""
    current = users(column("name"), indexes=(index("users_name_key", "name", unique=True),))
    desired = users(
        wants("full_name", renamed_from="name"),
        indexes=(index("users_name_key", "full_name", unique=True),),
    )
    (found,) = [d for d in diff(current, desired)[1] if d.blocking]
    assert found.target == "public.users.users_name_key"
    assert found.detail == (
        "an index of this name is on name, which full_name is renamed from, and old replicas "
        "use it until contract: give the index on full_name another name (this one goes when "
        "contract drops name)"
    )
