"""Abandoning a migration, the pure part: when it is refused and what it drops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.engine.backfill_helpers import CENTS, LABEL, RENAME, WIDE_KEY
from worker.engine.abandon import refusal, statements, swapped, warnings
from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import Carry
from worker.engine.expand_sql import render
from worker.engine.liveness import Lease

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
NEW_LEASE = Lease(
    service="app", instance="new-1", manifest_hash="new",
    shape=frozenset({("public", "users", "full_name", "text")}),
    expires_at=NOW + timedelta(minutes=5),
)  # fmt: skip
#: WIDE_KEY's enforce steps: 3 for NOT NULL, the key's unique index, the other indexes, the swap
SWAP_AT = 5


def why(m: ColumnMigration, **given: object) -> str | None:
    values: dict[str, object] = {
        "enforce_steps": 0, "contracted": False, "old_column_exists": True,
        "new_shape_users": (), "ignore_leases": False,
    }  # fmt: skip
    values.update(given)
    return refusal(m, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("m", "given", "expected"),
    [
        (RENAME, {}, None),
        (CENTS, {"enforce_steps": 3}, None),  # not in place: no swap to undo
        (LABEL, {"old_column_exists": False}, None),  # a backfill has no old column to lose
        (WIDE_KEY, {"enforce_steps": SWAP_AT}, None),  # before the swap
        (WIDE_KEY, {"enforce_steps": SWAP_AT + 1}, "has swapped id of public.users in place"),
        (RENAME, {"contracted": True}, "has contracted (its trigger is dropped)"),
        (RENAME, {"old_column_exists": False}, "the old column public.users.name"),
        (RENAME, {"new_shape_users": (NEW_LEASE,)}, "live instances rely on public.users"),
        (RENAME, {"new_shape_users": (NEW_LEASE,), "ignore_leases": True}, None),
    ],
)
def test_refusal(m: ColumnMigration, given: dict[str, object], expected: str | None) -> None:
    found = why(m, **given)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_a_lease_refusal_names_the_instances_and_what_to_do() -> None:
    found = why(RENAME, new_shape_users=(NEW_LEASE,))
    assert found is not None
    assert "app/new-1 (leases until 2026-12-02T12:05:00+00:00)" in found
    assert "--ignore-leases" in found and "Roll them back" in found


def test_swapped_counts_only_the_swap_of_a_change_in_place() -> None:
    steps = render(WIDE_KEY).enforce
    assert steps[SWAP_AT].carry is Carry.SWAP
    assert [swapped(WIDE_KEY, n) for n in range(len(steps) + 1)] == [
        n > SWAP_AT for n in range(len(steps) + 1)
    ]
    assert not swapped(RENAME, len(render(RENAME).enforce))


def test_statements_drop_the_trigger_the_function_and_the_added_column_only() -> None:
    (trigger, function, column) = statements(WIDE_KEY)
    assert trigger.startswith("DROP TRIGGER IF EXISTS schemaheal_sync_")
    assert function.startswith("DROP FUNCTION IF EXISTS public.schemaheal_sync_")
    assert column == "ALTER TABLE public.users DROP COLUMN IF EXISTS id__sh_new"
    assert statements(RENAME)[2] == "ALTER TABLE public.users DROP COLUMN IF EXISTS full_name"
    assert statements(LABEL)[2] == "ALTER TABLE public.users DROP COLUMN IF EXISTS label"


def test_warnings_say_what_is_lost_with_the_new_column() -> None:
    assert warnings(RENAME) == ()  # the reverse kept the old column written
    assert "declares no reverse" in warnings(WIDE_KEY)[0]
    assert "including any the new version wrote itself" in warnings(LABEL)[0]
