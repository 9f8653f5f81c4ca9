"""The handover at contract of an index (or unique constraint) whose name a rename keeps
(:mod:`worker.engine.expand_handover`): the commands, exactly, read from the catalog's table.
Pure; run on real PostgreSQL by test_contract_handover.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.builders import column, index
from tests.engine.test_expand_sql import MIGRATIONS
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.expand_column_props import carry_properties
from worker.engine.expand_handover import contract_steps, handover
from worker.engine.plan_expand import contract_statements
from worker.engine.statements import PlanSettings

RENAME = MIGRATIONS["rename"]  # public.users: name → full_name
#: the old column's privileges, settings, comment and labels given to the new one, then the
#: trigger and its function dropped
SYNC = (
    f"{carry_properties('public.users', 'name', 'full_name')}; "
    "DROP TRIGGER IF EXISTS schemaheal_sync_d5469f6751d729fc ON public.users; "
    "DROP FUNCTION IF EXISTS public.schemaheal_sync_d5469f6751d729fc()"
)
OLD = index("users_name_key", "name", unique=True)
BUILT = index("users_name_key__sh_rn", "full_name", unique=True)
AS_INDEX = (
    "DROP INDEX public.users_name_key",
    "ALTER INDEX public.users_name_key__sh_rn RENAME TO users_name_key",
)
AS_CONSTRAINT = (
    "ALTER TABLE public.users DROP CONSTRAINT users_name_key",
    "ALTER TABLE public.users ADD CONSTRAINT users_name_key UNIQUE "
    "USING INDEX users_name_key__sh_rn",
)


def users(*indexes: m.Index, unique: tuple[m.UniqueConstraint, ...] = ()) -> m.Table:
    columns = (column("id", "integer"), column("name"), column("full_name"))
    key = m.PrimaryKey(name="users_pkey", columns=("id",))
    return m.Table(schema="public", name="users", columns=columns, primary_key=key,
                   indexes=indexes, unique=unique)  # fmt: skip


CONSTRAINT = replace(OLD, constraint="users_name_key")
UNIQUE = (m.UniqueConstraint(name="users_name_key", columns=("name",)),)


@pytest.mark.parametrize(
    ("case", "table", "commands"),
    [
        ("an index built aside", users(OLD, BUILT), AS_INDEX),
        ("a unique constraint", users(CONSTRAINT, BUILT, unique=UNIQUE), AS_CONSTRAINT),
        ("not built (another name declared)", users(OLD), ()),
        ("its build interrupted", users(OLD, replace(BUILT, valid=False)), ()),
        ("built on another column", users(OLD, index(BUILT.name, "id")), ()),
        ("the old index not on the old column", users(index(OLD.name, "id"), BUILT), ()),
        ("the primary key's index", users(replace(OLD, constraint="users_pkey"), BUILT), ()),
        ("no table (dropped meanwhile)", None, ()),
    ],
)
def test_the_handover_is_read_from_the_catalog(
    case: str, table: m.Table | None, commands: tuple[str, ...]
) -> None:
    assert handover(RENAME, table) == commands, case


def test_names_are_quoted_and_qualified() -> None:
    m_ = replace(RENAME, schema="Sales", table="Users", old_column="Name", new_column="Full")
    old, built = index("Users Name", "Name"), index("Users Name__sh_rn", "Full")
    table = replace(users(old, built), schema="Sales", name="Users")
    assert handover(m_, table) == (
        'DROP INDEX "Sales"."Users Name"',
        'ALTER INDEX "Sales"."Users Name__sh_rn" RENAME TO "Users Name"',
    )


def test_a_change_in_place_hands_nothing_over() -> None:
    in_place = MIGRATIONS["convert_in_place_column"]
    table = users(index("t", "title"), index("t__sh_rn", "title"))
    assert handover(in_place, replace(table, name="orders")) == ()


def test_the_handover_runs_in_the_transaction_dropping_the_trigger() -> None:
    sync, drop = contract_steps(RENAME, users(OLD, BUILT))
    assert sync.sql == "; ".join((SYNC, *AS_INDEX)) and not sync.drops_column
    assert drop.sql == "ALTER TABLE public.users DROP COLUMN IF EXISTS name" and drop.drops_column
    assert [s.sql for s in contract_steps(RENAME, users(OLD))] == [SYNC, drop.sql]


def test_plan_shows_the_handover_with_the_contract() -> None:
    """``plan``'s contract statements come from the same steps, read from the change's table."""
    table = users(OLD, BUILT)
    column_ = column("full_name")
    change = ch.ExpandColumn(table=table, column=column_, migration=RENAME, expanded=True)
    shown = contract_statements((change,), PlanSettings(), 3)
    assert [(s.sql, s.group) for s in shown] == [
        ("; ".join((SYNC, *AS_INDEX)), 3),
        ("ALTER TABLE public.users DROP COLUMN IF EXISTS name", 4),
    ]
