"""The no-drift fast path: a table equal to its declaration is not walked part by part.

``unchanged`` may only say True where the full walk finds nothing; these cases pin both sides of
that, and interning (which only makes the comparison cheap) never changes a value."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.builders import ID, column, fk, index, pk, table
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import Drift
from worker.engine.diff_table import walk_table
from worker.engine.diff_unchanged import compare, unchanged

TENANT = column("tenant_id", "integer")
FK = fk("t_tenant_fk", ("tenant_id",), "tenants", ("id",))
CHECK = m.CheckConstraint(name="t_id_check", expression="(id > 0)")
UNIQUE = m.UniqueConstraint(name="t_tenant_key", columns=("tenant_id",))
KEY_INDEX = replace(index("t_pkey", "id", unique=True), constraint="t_pkey")
BASE = table(
    "t", ID, TENANT, primary_key=pk("t_pkey", "id"), foreign_keys=(FK,), checks=(CHECK,),
    indexes=(index("t_a_idx", "tenant_id"), index("t_b_idx", "id")), unique=(UNIQUE,),
)  # fmt: skip
AS_INSPECTED = replace(
    BASE,
    indexes=(*BASE.indexes, KEY_INDEX, replace(KEY_INDEX, name="t_tenant_key", constraint="t_tenant_key")),
    size_bytes=8192, has_rows=True, comment="set by hand",
)  # fmt: skip
RENAMED = m.Column(name="tenant_id", type="integer", intent=m.Intent(renamed_from="tenant"))


@pytest.mark.parametrize(
    ("current", "desired", "same"),
    [
        # the catalog's extras (key indexes, size, rows, a comment the manifest is silent on)
        (AS_INSPECTED, BASE, True),
        # the manifest lists its indexes, keys and checks in another order than the catalog
        (AS_INSPECTED, replace(BASE, indexes=BASE.indexes[::-1]), True),
        # anything that differs is walked
        (AS_INSPECTED, replace(BASE, comment="another"), False),
        (AS_INSPECTED, replace(BASE, columns=(ID,)), False),
        (AS_INSPECTED, replace(BASE, primary_key=pk("t_pkey", "id", "tenant_id")), False),
        (AS_INSPECTED, replace(BASE, indexes=BASE.indexes[:1]), False),  # an index of its own
        (AS_INSPECTED, replace(BASE, checks=()), False),
        # equal as values, but there is still work: a NOT VALID key, an invalid index
        (replace(AS_INSPECTED, foreign_keys=(replace(FK, valid=False),)),
         replace(BASE, foreign_keys=(replace(FK, valid=False),)), False),
        (replace(AS_INSPECTED, checks=(replace(CHECK, valid=False),)),
         replace(BASE, checks=(replace(CHECK, valid=False),)), False),
        (replace(AS_INSPECTED, indexes=(replace(BASE.indexes[0], valid=False), *AS_INSPECTED.indexes[1:])),
         replace(BASE, indexes=(replace(BASE.indexes[0], valid=False), BASE.indexes[1])), False),
        # a declared intent: the migration may have steps left on an equal shape
        (AS_INSPECTED, replace(BASE, columns=(ID, RENAMED)), False),
    ],
)  # fmt: skip
def test_only_a_table_the_walk_finds_nothing_in_is_unchanged(
    current: m.Table, desired: m.Table, same: bool
) -> None:
    changes: list[ch.Change] = []
    drift: list[Drift] = []
    walk_table(current, desired, changes, drift)
    assert unchanged(current, desired) is same
    if same:  # the safety half: the fast path hides nothing the walk would find
        assert (changes, drift) == ([], [])


def test_equal_columns_and_index_keys_are_one_object_on_both_sides() -> None:
    first, second = column("a", "integer", default="0"), column("a", "integer", default="0")
    assert first is not second and m.interned(first) is m.interned(second)
    assert m.interned(replace(first, default="1")) is not m.interned(first)
    key = m.IndexElement(column="a")
    assert m.interned(m.IndexElement(column="a")) is m.interned(key)


def test_what_is_no_part_of_a_value_is_never_lost_to_interning() -> None:
    plain = m.interned(column("b", "integer"))
    renamed = replace(plain, intent=m.Intent(renamed_from="a"))
    assert m.interned(renamed) is renamed and renamed.intent is not None
    qualified = m.IndexElement(column="v", opclass="vector_l2_ops", opclass_schema="ext")
    m.interned(m.IndexElement(column="v", opclass="vector_l2_ops"))
    assert m.interned(qualified).opclass_schema == "ext"


def test_interning_keeps_at_most_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(m, "_MAX_INTERNED", 3)
    monkeypatch.setattr(m, "_INTERNED", {})
    kept = [m.interned(column(f"c{i}")) for i in range(7)]
    assert 0 < len(m._INTERNED) <= 3
    assert [c.name for c in kept] == [f"c{i}" for i in range(7)]  # values are never changed


def test_answers_are_kept_for_the_very_objects_asked_about() -> None:
    """unchanged() answers a pair asked about before from a memo: a new object of another value
    (whatever id it gets) is compared, never answered for the pair it resembles."""
    assert unchanged(AS_INSPECTED, BASE)
    for k in range(50):  # fresh objects, freed and allocated again: ids get reused
        other = replace(BASE, comment=f"comment {k}")
        assert unchanged(AS_INSPECTED, other) is compare(AS_INSPECTED, other) is False
        assert unchanged(replace(AS_INSPECTED, columns=(ID,)), BASE) is False
    assert unchanged(AS_INSPECTED, BASE)
