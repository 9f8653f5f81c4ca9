"""The last check before execution: only statement kinds a plan may contain."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.engine.guard import UnsafeStatementError, check

CASES = Path(__file__).parent.parent / "cases"


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE public.tenants",
        "DROP INDEX public.i",  # not concurrent: takes a strong lock
        "DELETE FROM public.tenants",
        "UPDATE public.tenants SET name = ''",
        "TRUNCATE public.tenants",
        "DO $$ BEGIN PERFORM 1; END $$",
        "ALTER TABLE public.t DROP COLUMN a",
        "ALTER TABLE public.t RENAME COLUMN a TO b",
        "ALTER TABLE public.t DROP CONSTRAINT c",  # without IF EXISTS
        "CREATE TABLE public.t (a int); DROP TABLE public.u",
        "SET search_path = public",
        "GRANT ALL ON public.t TO public",
        "SELECT pg_sleep(10)",
        "CREATE TABLE (",
    ],
)
def test_anything_a_plan_cannot_contain_is_refused(sql: str) -> None:
    with pytest.raises(UnsafeStatementError, match="refusing"):
        check(sql)


def test_every_golden_statement_passes() -> None:
    """All SQL of the golden cases, one command at a time, is of an allowed kind."""
    count = 0
    for expected in sorted(CASES.glob("*/expected.sql")):
        text = "\n".join(
            line for line in expected.read_text().splitlines() if not line.startswith("--")
        )
        for command in (c.strip() for c in text.split(";\n")):
            if command and command.rstrip(";") not in ("BEGIN", "COMMIT"):
                check(command.rstrip(";"))
                count += 1
    assert count > 100
