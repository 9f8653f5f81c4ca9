"""Liveness and the contract decision (:mod:`worker.engine.liveness`). Pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.engine.builders import column, realm, table
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.liveness import Lease, decide, shape_of, uses_new_shape, uses_old_shape

RENAME = ColumnMigration(kind=MigrationKind.RENAME, schema="public", table="users", key=("id",),
                         new_column="full_name", new_type="text", forward="name",
                         old_column="name", reverse="full_name")  # fmt: skip
WIDEN = ColumnMigration(kind=MigrationKind.CONVERT, schema="public", table="orders", key=("id",),
                        new_column="id", new_type="bigint", forward="id::bigint",
                        old_column="id", in_place=True)  # fmt: skip
FILL = ColumnMigration(kind=MigrationKind.BACKFILL, schema="public", table="users", key=("id",),
                       new_column="label", new_type="text", forward="name", not_null=True)  # fmt: skip


@pytest.mark.parametrize(
    ("migration", "columns", "old", "new"),
    [
        (RENAME, [("id", "integer"), ("name", "text")], True, False),
        (RENAME, [("id", "integer"), ("full_name", "text")], False, True),
        (RENAME, [("id", "integer"), ("name", "text"), ("full_name", "text")], True, True),
        (WIDEN, [("id", "integer")], True, False),
        (WIDEN, [("id", "bigint")], False, True),
        (FILL, [("id", "integer"), ("name", "text")], True, False),
        (FILL, [("id", "integer"), ("name", "text"), ("label", "text")], False, True),
    ],
)
def test_old_and_new_shape(
    migration: ColumnMigration, columns: list[tuple[str, str]], old: bool, new: bool
) -> None:
    shape = shape_of(realm(table(migration.table, *(column(n, t) for n, t in columns))))
    assert uses_old_shape(shape, migration) is old
    assert uses_new_shape(shape, migration) is new


def test_a_manifest_without_the_table_uses_neither_shape() -> None:
    shape = shape_of(realm(table("other", column("id", "integer"))))
    assert not uses_old_shape(shape, RENAME) and not uses_new_shape(shape, RENAME)


NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=30)
OLD_SHAPE = frozenset({("public", "users", "id", "integer"), ("public", "users", "name", "text")})
NEW_SHAPE = frozenset(
    {("public", "users", "id", "integer"), ("public", "users", "full_name", "text")}
)


def lease(old: bool = True, expires: float = 60, ended: float | None = None) -> Lease:
    """A lease using RENAME's old shape (or not), expiring/ended that many seconds from NOW."""
    return Lease(service="app", instance="i-1", manifest_hash="h",
                 shape=OLD_SHAPE if old else NEW_SHAPE,
                 expires_at=NOW + timedelta(seconds=expires),
                 ended_at=None if ended is None else NOW + timedelta(seconds=ended))  # fmt: skip


@pytest.mark.parametrize(
    ("leases", "grace_s", "contractable", "reason"),
    [
        ([], 300, True, "no live instance"),
        ([lease(old=False)], 300, True, "no live instance"),
        ([lease()], 0, False, "still used in its old shape by app/i-1"),
        ([lease(expires=-10)], 0, True, "no live instance"),
        ([lease(expires=-10)], 60, False, "grace period"),
        ([lease(expires=-100)], 60, True, "no live instance"),
        ([lease(expires=3600, ended=-10)], 60, False, "grace period"),
        ([lease(expires=3600, ended=-100)], 60, True, "no live instance"),
        ([lease(expires=-100), lease(expires=-10)], 60, False, "grace period"),
        ([lease(expires=-100), lease(expires=5)], 0, False, "still used"),
    ],
)
def test_decide(leases: list[Lease], grace_s: float, contractable: bool, reason: str) -> None:
    decision = decide(RENAME, leases, now=NOW, grace_s=grace_s, tracked_since=LONG_AGO,
                      lease_ttl_s=3600)  # fmt: skip
    assert decision.contractable is contractable
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("tracked_s_ago", "contractable"), [(0, False), (3599, False), (3601, True)]
)
def test_instances_booted_before_leases_were_recorded_are_presumed_running(
    tracked_s_ago: float, contractable: bool
) -> None:
    """No lease at all, but leases are recorded only since ``tracked_s_ago`` (TTL 3600 s)."""
    since = NOW - timedelta(seconds=tracked_s_ago)
    decision = decide(RENAME, [], now=NOW, grace_s=0, tracked_since=since, lease_ttl_s=3600)
    assert decision.contractable is contractable
    if not contractable:
        assert "instances that booted before may run until" in decision.reason
