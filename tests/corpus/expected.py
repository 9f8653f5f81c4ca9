"""Which corpus checks fail today, and why: the exact class of issue 12 the adapter branch fixes.

Each entry becomes ``pytest.mark.xfail(strict=True)``: when the class is fixed the test passes,
strict xfail turns that into a failure, and the entry is deleted here.
"""

from __future__ import annotations

import pytest

from tests.corpus.apps import APPS

CHECKS = ("heal-empty", "drift", "second-heal", "migrations")

QUALIFIED = "issue 12: expressions that SQLAlchemy compiles with the table in front of the column"
TEXT_ORDERING = "issue 12: index elements given as text with an ordering"
LONG_NAMES = (
    "issue 12: constraint names from a MetaData(naming_convention=...) longer than 63 bytes"
)
ZERO_ELEMENTS = "issue 12: after an element was refused, an index was left with zero elements"
LONG_CHECK = "issue 12: a CHECK over 4096 characters"
NAMES = "issue 12: names that are not plain lowercase identifiers"
UNIQUE_ON_PK = "issue 12: a UNIQUE constraint on exactly the primary-key columns"
FETCHED_VALUE = "issue 12: server_default=FetchedValue()"

# Every check of an application fails on the manifest (or, for zenml, on the heal) today, for
# these classes, in the order the adapter reports them (see the report of issue 12).
_BY_APP: dict[str, tuple[str, ...]] = {}
_MIGRATING = ("mlflow", "phoenix")

# (application, check) -> reason.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    (app, check): "; ".join(classes)
    for app, classes in _BY_APP.items()
    for check in CHECKS
    if check != "migrations" or app in _MIGRATING
}


def params(check: str, apps: tuple[str, ...] | None = None) -> list[object]:
    names = apps or tuple(app.name for app in APPS)
    return [
        pytest.param(
            name, id=name,
            marks=[pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[name, check])]
            if (name, check) in EXPECTED_FAILURES else [],
        )
        for name in names
    ]  # fmt: skip
