"""The pure half of settling an interrupted heal: which catalog fact shows that each kind of
planned statement committed (:func:`catalog_check`), and the verdict from what the catalog holds
(:func:`verdict`). The I/O half runs against real PostgreSQL in
``tests/service/test_killed_concurrently.py`` and ``tests/engine/test_ledger_upgrade.py``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.builders import ID, column, index, pk, table
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine.intent import (
    CatalogCheck,
    CheckKind,
    Found,
    StatementState,
    catalog_check,
    verdict,
)
from worker.engine.plan import make_plan

T = table("t", ID, column("name"), schema="app")
IDX = index("t_name_idx", "name")
MOOD = m.EnumType(schema="app", name="mood", labels=("ok",))


def _checks(change: ch.Change) -> list[tuple[str, CatalogCheck | None]]:
    """Each statement the planner makes of ``change``: its first word and its check."""
    return [(s.sql.split()[0], catalog_check(s)) for s in make_plan((change,)).statements]


def _index(kind: CheckKind, name: str) -> CatalogCheck:
    return CatalogCheck(kind=kind, schema="app", name=name)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # transactional: the row commits with the statement, so no catalog check is needed
        (ch.AddColumn(table=T, column=column("extra")), [("ALTER", None)]),
        (ch.AddTable(table=table("u", ID, schema="app", indexes=(IDX,))),
         [("CREATE", None), ("CREATE", None)]),
        (ch.AddEnumLabel(enum=MOOD, label="sad", after="ok"), [("ALTER", None)]),
        # CONCURRENTLY: cannot share a transaction with its row; the catalog tells
        (ch.AddIndex(table=T, index=IDX),
         [("CREATE", _index(CheckKind.INDEX_VALID, "t_name_idx"))]),
        (ch.RebuildInvalidIndex(table=T, index=IDX),
         [("DROP", _index(CheckKind.INDEX_ABSENT, "t_name_idx")),
          ("CREATE", _index(CheckKind.INDEX_VALID, "t_name_idx"))]),
        (ch.AddKeyConstraint(table=T, constraint=pk("t_pkey", "id")),
         [("CREATE", _index(CheckKind.INDEX_VALID, "t_pkey")), ("ALTER", None)]),
        (ch.AddKeyConstraint(table=T, constraint=pk("t_pkey", "id"), index_exists=True),
         [("ALTER", None)]),
    ],
)  # fmt: skip
def test_each_non_transactional_statement_names_the_catalog_fact_that_shows_it_ran(
    change: ch.Change, expected: list[tuple[str, CatalogCheck | None]]
) -> None:
    assert _checks(change) == expected


def test_a_non_transactional_statement_of_an_unknown_kind_cannot_be_confirmed() -> None:
    """A change no case knows, made non-transactional: never guessed as applied or not."""
    (statement,) = make_plan((ch.SetComment(table=T, column=None, comment="x"),)).statements
    check = catalog_check(replace(statement, transactional=False))
    assert check == CatalogCheck(kind=CheckKind.NONE)
    assert verdict(check, None) is StatementState.UNCONFIRMED


def test_an_enum_label_added_outside_a_transaction_is_checked_in_pg_enum() -> None:
    (statement,) = make_plan((ch.AddEnumLabel(enum=MOOD, label="sad", after="ok"),)).statements
    check = catalog_check(replace(statement, transactional=False))
    assert check == CatalogCheck(kind=CheckKind.ENUM_LABEL, schema="app", name="mood", label="sad")


VALID, ABSENT, LABEL = (CatalogCheck(kind=k, schema="app", name="x")
                        for k in (CheckKind.INDEX_VALID, CheckKind.INDEX_ABSENT,
                                  CheckKind.ENUM_LABEL))  # fmt: skip
C, N = StatementState.CONFIRMED, StatementState.NOT_APPLIED


@pytest.mark.parametrize(
    ("check", "found", "state"),
    [
        (None, None, N),  # transactional and still planned: rolled back with its row
        (VALID, Found.PRESENT, C),  # built and valid: committed before its row was written
        (VALID, Found.INVALID, N),  # the build stopped halfway: the next heal rebuilds it
        (VALID, Found.MISSING, N),
        (ABSENT, Found.MISSING, C),  # dropped
        (ABSENT, Found.INVALID, N),
        (ABSENT, Found.PRESENT, N),
        (LABEL, Found.PRESENT, C),
        (LABEL, Found.MISSING, N),
        (CatalogCheck(kind=CheckKind.NONE), None, StatementState.UNCONFIRMED),
    ],
)
def test_the_verdict_on_a_statement_still_planned_after_an_interruption(
    check: CatalogCheck | None, found: Found | None, state: StatementState
) -> None:
    assert verdict(check, found) is state


@pytest.mark.parametrize("check", [VALID, ABSENT, LABEL, CatalogCheck(kind=CheckKind.NONE)])
def test_a_check_survives_its_trip_through_the_ledger(check: CatalogCheck) -> None:
    assert CatalogCheck.from_json(check.to_json()) == check


def test_a_check_of_a_kind_a_later_version_wrote_is_not_guessed() -> None:
    check = CatalogCheck.from_json({"kind": "sequence-exists", "schema": "app", "name": "s"})
    assert verdict(check, None) is StatementState.UNCONFIRMED
