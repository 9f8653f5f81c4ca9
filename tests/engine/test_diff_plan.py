"""The pure middle: diff and plan, table-driven, no database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.builders import ID, column, fk, index, pk, realm, table
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import DriftKind
from worker.engine.diff import diff, is_metadata_only_widening
from worker.engine.hazards import Hazard
from worker.engine.plan import PlanSettings, make_plan
from worker.engine.policy import Policy, review
from worker.engine.render import script


def plan_of(current: m.Realm, desired: m.Realm) -> list[str]:
    changes, drift = diff(current, desired)
    return [s.sql for s in make_plan(changes, drift).statements]


def kinds(current: m.Realm, desired: m.Realm) -> list[str]:
    changes, _ = diff(current, desired)
    return [type(c).__name__ for c in changes]


def drift_kinds(current: m.Realm, desired: m.Realm) -> list[DriftKind]:
    return [d.kind for d in diff(current, desired)[1]]


TENANTS = table("tenants", ID, column("name"), primary_key=pk("tenants_pkey", "id"))


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        # nothing to do
        (realm(TENANTS), realm(TENANTS), []),
        # the seed's heal: a missing column
        (realm(TENANTS), realm(replace(TENANTS, columns=(*TENANTS.columns, column("openai_api_key")))), ["AddColumn"]),
        # a missing table, a missing schema
        (realm(), realm(TENANTS), ["AddTable"]),
        (realm(schemas=()), realm(TENANTS), ["AddSchema", "AddTable"]),
        # relaxing NOT NULL, tightening it, a missing default
        (realm(table("t", column("a", nullable=False))), realm(table("t", column("a"))), ["DropNotNull"]),
        (realm(table("t", column("a"))), realm(table("t", column("a", nullable=False))), ["SetNotNull"]),
        (realm(table("t", column("a"))), realm(table("t", column("a", default="'x'"))), ["SetDefault"]),
        # metadata-only widening
        (realm(table("t", column("a", "character varying(10)"))), realm(table("t", column("a", "text"))), ["WidenType"]),
        # a missing index, an invalid one, a missing key
        (realm(table("t", ID)), realm(table("t", ID, indexes=(index("t_id_idx", "id"),))), ["AddIndex"]),
        (realm(table("t", ID, indexes=(index("t_id_idx", "id", valid=False),))),
         realm(table("t", ID, indexes=(index("t_id_idx", "id"),))), ["RebuildInvalidIndex"]),
        (realm(table("t", ID)), realm(table("t", ID, primary_key=pk("t_pkey", "id"))), ["AddKeyConstraint"]),
        # a missing foreign key, a NOT VALID one
        (realm(TENANTS, table("t", column("tenant_id", "integer"))),
         realm(TENANTS, table("t", column("tenant_id", "integer"), foreign_keys=(fk("t_fk", ("tenant_id",), "tenants", ("id",)),))),
         ["AddForeignKey"]),
        (realm(TENANTS, table("t", column("tenant_id", "integer"), foreign_keys=(fk("t_fk", ("tenant_id",), "tenants", ("id",), valid=False),))),
         realm(TENANTS, table("t", column("tenant_id", "integer"), foreign_keys=(fk("t_fk", ("tenant_id",), "tenants", ("id",)),))),
         ["ValidateConstraint"]),
        # a comment
        (realm(TENANTS), realm(replace(TENANTS, comment="customers")), ["SetComment"]),
    ],
)  # fmt: skip
def test_each_difference_becomes_one_kind_of_change(
    current: m.Realm, desired: m.Realm, expected: list[str]
) -> None:
    assert kinds(current, desired) == expected


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        (realm(table("t", column("a", "integer"))), realm(table("t", column("a", "uuid"))), [DriftKind.TYPE_MISMATCH]),
        (realm(table("t", column("a", "text"))), realm(table("t", column("a", "character varying(5)"))), [DriftKind.TYPE_MISMATCH]),
        (realm(table("t", column("a", default="'x'"))), realm(table("t", column("a", default="'y'"))), [DriftKind.DEFAULT_DIFFERS]),
        (realm(table("t", column("a"), column("b"))), realm(table("t", column("a"))), [DriftKind.EXTRA_COLUMN]),
        (realm(TENANTS, table("old", ID)), realm(TENANTS), [DriftKind.EXTRA_TABLE]),
        (realm(table("t", ID, indexes=(index("i", "id"),))), realm(table("t", ID)), [DriftKind.EXTRA_INDEX]),
        (realm(table("t", ID, indexes=(index("i", "id"),))), realm(table("t", ID, indexes=(index("i", "id", unique=True),))), [DriftKind.INDEX_DIFFERS]),
        # a NOT NULL column without default: only on a table known to be empty
        (realm(table("t", ID, has_rows=True)), realm(table("t", ID, column("b", nullable=False))), [DriftKind.NOT_NULL_ON_POPULATED_TABLE]),
        (realm(table("t", ID, has_rows=None)), realm(table("t", ID, column("b", nullable=False))), [DriftKind.NOT_NULL_ON_POPULATED_TABLE]),
        (realm(table("t", ID, has_rows=False)), realm(table("t", ID, column("b", nullable=False))), []),
    ],
)  # fmt: skip
def test_what_cannot_be_done_safely_is_drift_and_nothing_is_dropped(
    current: m.Realm, desired: m.Realm, expected: list[DriftKind]
) -> None:
    assert drift_kinds(current, desired) == expected
    for sql in plan_of(current, desired):
        assert "DROP" not in sql.replace("DROP NOT NULL", "")


@pytest.mark.parametrize(
    ("current", "desired", "widens"),
    [
        ("character varying(10)", "character varying(20)", True),
        ("character varying(10)", "character varying", True),
        ("character varying(10)", "text", True),
        ("character varying", "text", True),
        ("numeric(8,2)", "numeric(12,2)", True),
        ("numeric(8,2)", "numeric", True),
        ("bit varying(4)", "bit varying(8)", True),
        ("character varying(20)", "character varying(10)", False),
        ("text", "character varying(10)", False),
        ("numeric(8,2)", "numeric(12,4)", False),
        ("numeric", "numeric(12,2)", False),
        ("integer", "bigint", False),  # rewrites the table
        ("integer", "integer", False),
    ],
)
def test_only_metadata_only_widening_is_applied(current: str, desired: str, widens: bool) -> None:
    assert is_metadata_only_widening(current, desired) is widens


def test_new_tables_come_in_foreign_key_order_and_cycles_are_broken() -> None:
    a = table("a", ID, column("b_id", "integer"), primary_key=pk("a_pkey", "id"),
              foreign_keys=(fk("a_b_fk", ("b_id",), "b", ("id",)),))  # fmt: skip
    b = table("b", ID, column("a_id", "integer"), primary_key=pk("b_pkey", "id"),
              foreign_keys=(fk("b_a_fk", ("a_id",), "a", ("id",)),))  # fmt: skip
    c = table("c", ID, column("b_id", "integer"), primary_key=pk("c_pkey", "id"),
              foreign_keys=(fk("c_b_fk", ("b_id",), "b", ("id",)),))  # fmt: skip
    changes, _ = diff(realm(), realm(c, b, a))
    described = [ch.describe(x) for x in changes]
    assert described == [
        "AddTable public.a",  # cycle a<->b: a first, its key to b deferred
        "AddTable public.b",
        "AddTable public.c",
        "AddForeignKey public.a.a_b_fk",
    ]
    created = [x for x in changes if isinstance(x, ch.AddTable)]
    assert [len(x.table.foreign_keys) for x in created] == [0, 1, 1]


def test_enum_labels_are_added_in_their_declared_place() -> None:
    current = realm(enums=(m.EnumType(schema="public", name="r", labels=("b", "d")),))
    desired = realm(
        enums=(m.EnumType(schema="public", name="r", labels=("a", "b", "c", "d", "e")),)
    )
    changes, _ = diff(current, desired)
    placed = [(c.label, c.before, c.after) for c in changes if isinstance(c, ch.AddEnumLabel)]
    assert placed == [("a", "b", None), ("c", None, "b"), ("e", None, "d")]


def test_enum_labels_in_another_order_are_drift() -> None:
    current = realm(enums=(m.EnumType(schema="public", name="r", labels=("b", "a")),))
    desired = realm(enums=(m.EnumType(schema="public", name="r", labels=("a", "b")),))
    assert drift_kinds(current, desired) == [DriftKind.ENUM_LABELS_DIFFER]


def test_statements_carry_hazards_and_timeouts_with_lock_below_statement() -> None:
    current = realm(table("t", ID, size_bytes=10))
    desired = realm(table("t", ID, column("u", "uuid", nullable=False, default="gen_random_uuid()"),
                          indexes=(index("t_u_idx", "u", unique=True),)))  # fmt: skip
    changes, drift = diff(current, desired)
    plan = make_plan(changes, drift, PlanSettings(lock_timeout_ms=500, statement_timeout_ms=5_000))
    add, build = plan.statements
    assert add.hazards == (Hazard.STRONG_LOCK, Hazard.TABLE_REWRITE)
    assert add.transactional
    assert build.hazards == (Hazard.INDEX_BUILD, Hazard.MAY_FAIL_ON_EXISTING_DATA)
    assert not build.transactional
    assert build.cleanup_sql == "DROP INDEX CONCURRENTLY IF EXISTS public.t_u_idx"
    for s in plan.statements:
        assert 0 < s.lock_timeout_ms < s.statement_timeout_ms


def test_lock_timeout_must_stay_below_statement_timeout() -> None:
    with pytest.raises(ValueError, match="below"):
        PlanSettings(lock_timeout_ms=5_000, statement_timeout_ms=5_000)


def test_new_tables_are_built_with_their_indexes_in_one_transaction() -> None:
    desired = realm(table("t", ID, column("a"), indexes=(index("t_a_idx", "a"),), comment="x"))
    plan = make_plan(*diff(realm(), desired))
    assert [s.transactional for s in plan.statements] == [True, True, True]
    assert len({s.group for s in plan.statements}) == 1
    assert "CONCURRENTLY" not in plan.statements[1].sql


def test_same_inputs_give_the_same_plan_byte_for_byte() -> None:
    desired = realm(
        *(table(f"t{i}", ID, column("a"), indexes=(index(f"t{i}_a", "a"),)) for i in range(20))
    )
    current = realm(*(table(f"t{i}", ID) for i in range(0, 20, 2)))
    first = list(script(make_plan(*diff(current, desired))))
    again = list(
        script(
            make_plan(*diff(current, replace(desired, tables=desired.tables[::-1], _by_name={})))
        )
    )
    assert first == again


@pytest.mark.parametrize(
    ("size", "allow", "blocked"),
    [
        (1024, frozenset(), False),
        (64 * 1024 * 1024, frozenset(), True),
        (64 * 1024 * 1024, frozenset({Hazard.TABLE_REWRITE}), False),
    ],
)
def test_policy_blocks_rewrites_of_large_tables_unless_approved(
    size: int, allow: frozenset[Hazard], blocked: bool
) -> None:
    current = realm(table("t", ID, size_bytes=size))
    desired = realm(table("t", ID, column("u", "uuid", default="gen_random_uuid()")))
    plan = make_plan(*diff(current, desired))
    found = review(plan, Policy(allow=allow))
    assert bool(found) is blocked
    if blocked:
        assert found[0].hazard is Hazard.TABLE_REWRITE
        assert "--allow-hazard table-rewrite" in found[0].reason


def test_policy_can_require_approval_for_any_hazard() -> None:
    plan = make_plan(
        *diff(realm(table("t", ID)), realm(table("t", ID, indexes=(index("i", "id"),))))
    )
    assert [
        b.hazard for b in review(plan, Policy(require_approval=frozenset({Hazard.INDEX_BUILD})))
    ] == [Hazard.INDEX_BUILD]


def test_measured_sizes_override_the_catalogs_estimate() -> None:
    """relpages stays 0 until a table is vacuumed: a freshly filled table must not look empty."""
    current = realm(table("t", ID, size_bytes=0))
    desired = realm(table("t", ID, column("u", "uuid", default="gen_random_uuid()")))
    plan = make_plan(*diff(current, desired))
    from worker.engine.policy import rewritten_tables

    assert rewritten_tables(plan) == {"public.t"}
    assert review(plan, Policy()) == ()
    assert [b.hazard for b in review(plan, Policy(), {"public.t": 64 * 1024 * 1024})] == [
        Hazard.TABLE_REWRITE
    ]


def test_comment_changes_are_described_on_tables_and_columns() -> None:
    """Issue 15.2: a SetComment's column is a string (or None for the table's own comment);
    describing it raised AttributeError, which took the gate's whole batch down."""
    tenants = table("tenants", ID)
    assert [
        ch.describe(ch.SetComment(table=tenants, column=name, comment="c")) for name in (None, "id")
    ] == ["SetComment public.tenants", "SetComment public.tenants.id"]
