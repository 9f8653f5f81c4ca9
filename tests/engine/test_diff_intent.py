"""Declared intent in the diff (issue 19): which online migration a column needs, and where
one stands according to the catalog. Pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.builders import ID, column, pk, realm, table
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.changes import DriftKind
from worker.engine.diff import diff
from worker.engine.diff_intent import shadow_column
from worker.engine.expand import ColumnMigration, MigrationKind

KEY = pk("users_pkey", "id")


def users(*columns: m.Column, **extra: Any) -> m.Realm:
    return realm(table("users", ID, *columns, primary_key=KEY, **extra))


def wants(name: str, type_: str = "text", **intent: str | None) -> m.Column:
    nullable = bool(intent.pop("nullable", True))
    return column(name, type_, nullable=nullable, intent=m.Intent(**intent))


def outcome(current: m.Realm, desired: m.Realm) -> tuple[list[str], list[DriftKind]]:
    changes, drift = diff(current, desired)
    names = [
        f"{type(c).__name__}{'(expanded)' if getattr(c, 'expanded', False) else ''}"
        for c in changes
    ]
    return names, [d.kind for d in drift if d.blocking]


def migration(current: m.Realm, desired: m.Realm) -> ColumnMigration:
    changes, _ = diff(current, desired)
    (found,) = [c for c in changes if isinstance(c, ch.ExpandColumn)]
    return found.migration


SHADOW_NEW = column(shadow_column("id", "new"), "bigint")
SHADOW_OLD = column(shadow_column("id", "old"), "integer", nullable=False)
BIG_ID = column("id", "bigint", nullable=False)


@pytest.mark.parametrize(
    ("current", "desired", "changes", "drift"),
    [
        # rename: old column there, new one not → expand; both there → expanded, nothing to run;
        # only the new one → contracted (or never renamed): a plain column, nothing to do
        (users(column("name")), users(wants("full_name", renamed_from="name")), ["ExpandColumn"], []),
        (users(column("name"), column("full_name")), users(wants("full_name", renamed_from="name")), ["ExpandColumn(expanded)"], []),
        (users(column("full_name")), users(wants("full_name", renamed_from="name")), [], []),
        # neither there (a fresh table of an existing database): added as a plain column
        (users(), users(wants("full_name", renamed_from="name")), ["AddColumn"], []),
        # a NOT NULL rename: NOT NULL waits for enforce while expanded, the heal never sets it
        (users(column("name", nullable=False), column("full_name")),
         users(wants("full_name", renamed_from="name", nullable=False)), ["ExpandColumn(expanded)"], []),
        # the new column of the expanded rename has another type than declared: drift as usual
        (users(column("name"), column("full_name", "integer")), users(wants("full_name", renamed_from="name")),
         ["ExpandColumn(expanded)"], [DriftKind.TYPE_MISMATCH]),
        # rename into another type without 'using': refused, saying what to add
        (users(column("n", "integer")), users(wants("n2", "bigint", renamed_from="n")), [], [DriftKind.MIGRATION_BLOCKED]),
        # conversion under a new name
        (users(column("n", "integer")), users(wants("n2", "bigint", renamed_from="n", using="n")), ["ExpandColumn"], []),
        # a NOT NULL old column that new replicas would leave empty: needs 'reverse'
        (users(column("n", "integer", nullable=False)), users(wants("n2", "text", renamed_from="n", using="n::text")),
         [], [DriftKind.MIGRATION_BLOCKED]),
        (users(column("n", "integer", nullable=False)),
         users(wants("n2", "text", renamed_from="n", using="n::text", reverse="n2::integer")), ["ExpandColumn"], []),
        # conversion in place: a lossless widening → expand; shadow being built → expanded;
        # swapped (the replaced column kept) → expanded; neither → nothing
        (realm(table("users", ID, primary_key=KEY)), realm(table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)),
         ["ExpandColumn"], []),
        (realm(table("users", ID, SHADOW_NEW, primary_key=KEY)),
         realm(table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)), ["ExpandColumn(expanded)"], []),
        (realm(table("users", BIG_ID, SHADOW_OLD, primary_key=KEY)),
         realm(table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)), ["ExpandColumn(expanded)"], []),
        (realm(table("users", BIG_ID, primary_key=KEY)),
         realm(table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)), [], []),
        # in place but not a lossless widening: the plain diff decides (metadata-only widening,
        # or a mismatch a person must resolve)
        (users(column("a", "character varying(5)")), users(wants("a", "text", using="a")), ["WidenType"], []),
        (users(column("a", "bigint")), users(wants("a", "integer", using="a::integer")), [], [DriftKind.TYPE_MISMATCH]),
        # backfill: a populated (or unprobed) table → expand; an empty one takes the column at once
        (users(has_rows=True), users(wants("n", "integer", backfill="id * 2", nullable=False)), ["ExpandColumn"], []),
        (users(has_rows=False), users(wants("n", "integer", backfill="id * 2", nullable=False)), ["AddColumn"], []),
        # the column is there, still nullable (enforce's NOT NULL pending) or NOT NULL (its
        # trigger stays until contract) → expanded; NOT NULL is never planned by the heal
        (users(column("n", "integer")), users(wants("n", "integer", backfill="id * 2", nullable=False)), ["ExpandColumn(expanded)"], []),
        (users(column("n", "integer", nullable=False)), users(wants("n", "integer", backfill="id * 2", nullable=False)), ["ExpandColumn(expanded)"], []),
        # renaming a key column: the backfill pages by it
        (users(), realm(table("users", wants("user_id", "integer", renamed_from="id", nullable=False), primary_key=KEY)),
         [], [DriftKind.MIGRATION_BLOCKED]),
        # no primary key: nothing to page by
        (realm(table("users", ID, column("name"))), realm(table("users", ID, wants("full_name", renamed_from="name"))),
         [], [DriftKind.MIGRATION_BLOCKED]),
    ],
)  # fmt: skip
def test_intent_becomes_a_migration_or_says_where_it_stands(
    current: m.Realm, desired: m.Realm, changes: list[str], drift: list[DriftKind]
) -> None:
    assert outcome(current, desired) == (changes, drift)


def test_a_rename_reads_the_old_column_and_writes_it_back() -> None:
    found = migration(users(column("name")), users(wants("full_name", renamed_from="name")))
    assert found == ColumnMigration(
        kind=MigrationKind.RENAME, schema="public", table="users", key=("id",),
        new_column="full_name", new_type="text", forward="name", old_column="name",
        reverse="full_name",
    )  # fmt: skip


def test_a_conversion_in_place_keeps_the_name_and_says_so() -> None:
    found = migration(
        realm(table("users", ID, primary_key=KEY)),
        realm(table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)),
    )
    assert (found.kind, found.new_column, found.old_column, found.in_place) == (
        MigrationKind.CONVERT, "id", "id", True
    )  # fmt: skip
    assert (found.new_type, found.forward, found.not_null, found.reverse) == (
        "bigint", "id", True, None
    )  # fmt: skip


def test_a_backfill_fills_a_new_not_null_column_from_the_row() -> None:
    found = migration(
        users(has_rows=True), users(wants("n", "integer", backfill="id * 2", nullable=False))
    )
    assert (found.kind, found.forward, found.old_column, found.not_null) == (
        MigrationKind.BACKFILL, "id * 2", None, True
    )  # fmt: skip


def test_the_new_columns_default_and_comment_follow_its_expand() -> None:
    desired = m.Column(
        name="full_name", type="text", default="''", comment="display name",
        intent=m.Intent(renamed_from="name"),
    )  # fmt: skip
    names, _ = outcome(users(column("name")), users(desired))
    assert names == ["ExpandColumn", "SetDefault", "SetComment"]


@pytest.mark.parametrize(
    ("current", "drift"),
    [
        # after the swap, the old version declares its narrower key: the column it still knows
        # is kept until contract, so that is not drift
        (realm(table("users", BIG_ID, SHADOW_OLD, primary_key=KEY)), []),
        # the same widening without a swap's record in the catalog: drift as before
        (realm(table("users", BIG_ID, primary_key=KEY)), [DriftKind.TYPE_MISMATCH]),
    ],
)
def test_an_old_manifest_after_a_swap_in_place(current: m.Realm, drift: list[DriftKind]) -> None:
    old_manifest = realm(table("users", ID, primary_key=KEY))
    assert outcome(current, old_manifest)[1] == drift


def test_an_old_manifest_after_a_rename_sees_only_an_extra_column() -> None:
    current = users(column("name"), column("full_name"))
    changes, drift = diff(current, users(column("name")))
    assert changes == ()
    assert [(d.kind, d.blocking) for d in drift] == [(DriftKind.EXTRA_COLUMN, False)]


def test_shadow_names_fit_63_bytes_and_stay_distinct() -> None:
    long_a, long_b = "a" * 60 + "x", "a" * 60 + "y"
    assert shadow_column("id", "new") == "id__sh_new"
    assert len(shadow_column(long_a, "new").encode()) <= 63
    assert shadow_column(long_a, "new") != shadow_column(long_b, "new")


def test_only_expanded_migrations_nobody_registered_are_expanded_again() -> None:
    """``registered`` known: a rename the catalog shows expanded but no record has is planned
    again; a registered one is not; a change in place never is (its swap may have run)."""
    from worker.engine.plan import make_plan

    renamed = users(column("name"), column("full_name"))
    wanted = users(wants("full_name", renamed_from="name"))
    changes, drift = diff(renamed, wanted)
    (marker,) = changes
    assert isinstance(marker, ch.ExpandColumn) and marker.expanded
    assert make_plan(changes, drift).statements == ()  # not known: nothing planned
    assert make_plan(changes, drift, registered=frozenset({marker.migration.id})).statements == ()
    again = make_plan(changes, drift, registered=frozenset())
    assert [c.migration.id for c in again.changes if isinstance(c, ch.ExpandColumn)] == [
        marker.migration.id
    ]
    assert again.statements and again.expanding == (marker.migration,)
    # a backfilled column already NOT NULL that nobody registered: a plain column, no migration
    filled = users(column("n", "integer", nullable=False))
    backfilled = users(wants("n", "integer", backfill="id * 2", nullable=False))
    plain = make_plan(*diff(filled, backfilled), registered=frozenset())
    assert (plain.statements, plain.migrations) == ((), ())
    swapped = realm(table("users", BIG_ID, SHADOW_OLD, primary_key=KEY))
    in_place = realm(
        table("users", wants("id", "bigint", using="id", nullable=False), primary_key=KEY)
    )
    assert make_plan(*diff(swapped, in_place), registered=frozenset()).statements == ()
