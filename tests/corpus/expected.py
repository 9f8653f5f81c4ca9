"""Which corpus checks fail today, and why: the exact class of issue 12 the adapter branch fixes.

Each entry becomes ``pytest.mark.xfail(strict=True)``: when the class is fixed the test passes,
strict xfail turns that into a failure, and the entry is deleted here.
"""

from __future__ import annotations

import pytest

from tests.corpus.apps import APPS

CHECKS = ("heal-empty", "drift", "second-heal", "migrations")

# (application, check) -> reason. Filled from running the corpus; see the report of issue 12.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {}


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
