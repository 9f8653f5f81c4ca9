"""Which declared migrations clash with a running one (pure; see test_expand_changed)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_changed import clashes, message


def m(kind: MigrationKind, new: str, forward: str, **more: Any) -> ColumnMigration:
    values: dict[str, Any] = {"schema": "public", "table": "users", "key": ("id",), **more}
    return ColumnMigration(kind=kind, new_column=new, new_type="text", forward=forward, **values)


RENAME = m(MigrationKind.RENAME, "full_name", "name", old_column="name")
LABEL = m(MigrationKind.BACKFILL, "label", "'u' || id", not_null=True)
WIDE = m(MigrationKind.CONVERT, "id", "id::bigint", old_column="id", in_place=True)


@pytest.mark.parametrize(
    ("wanted", "running", "clash"),
    [
        (RENAME, RENAME, False),  # the same migration: it goes on
        (m(MigrationKind.RENAME, "full_name", "upper(name)", old_column="name"), RENAME, True),
        (m(MigrationKind.RENAME, "nick", "full_name", old_column="full_name"), RENAME, True),
        (m(MigrationKind.BACKFILL, "label", "'user ' || id", not_null=True), LABEL, True),
        (LABEL, RENAME, False),  # another column of the table
        (m(MigrationKind.BACKFILL, "label", "'x'", table="orders"), LABEL, False),
        (
            m(MigrationKind.CONVERT, "id", "id::bigint + 0", old_column="id", in_place=True),
            WIDE,
            True,
        ),  # the same key, another expression
        (m(MigrationKind.BACKFILL, "id__sh_new", "1"), WIDE, True),  # its shadow column
    ],
)
def test_clashes(wanted: ColumnMigration, running: ColumnMigration, clash: bool) -> None:
    found = clashes([wanted], [running])
    assert bool(found) is clash
    if clash:
        text = message(found[0], "schemaheal")
        assert f"--ledger-schema schemaheal --abandon '{running.id}'" in text
