"""Functions whose text names a renamed or changed-in-place column are named in a warning
(issue 19): PostgreSQL does not track what a PL/pgSQL body, or an SQL function in a string,
uses. ``plan`` and the heal's reply (the migration's ``contract`` text) say it; nothing is
refused. The pure search table-tested, and one walk on a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.backfill_helpers import LABEL, RENAME, WIDE_KEY
from tests.engine.test_heal_expand import _cli
from worker.engine.connection import connect
from worker.engine.function_mentions import mentions, warning
from worker.engine.heal import Outcome, heal


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("BEGIN RETURN NEW.name; END", True),
        ("select NAME from t", True),
        ('select "name" from t', True),
        ("select t.name, 1", True),
        ("-- the name\nselect 1", True),  # conservative: a comment counts
        ("select names, first_name, name_2, name$x, x$name from t", False),
        ("select nam from t", False),
    ],
)
def test_mentions_is_a_whole_word_search(source: str, found: bool) -> None:
    assert mentions(source, "name") is found


def test_warning_names_the_functions_and_what_to_do() -> None:
    text = warning(RENAME, ["public.f()", "public.g(integer)"])
    assert text is not None
    assert text.startswith("public.users.name is renamed, and function(s) public.f(), ")
    assert "before the contract" in text
    assert "changed in place" in (warning(WIDE_KEY, ["public.f()"]) or "")
    assert warning(RENAME, []) is None
    assert warning(LABEL, ["public.f()"]) is None  # a new column: nothing had its name


FUNCTIONS = """
CREATE TABLE public.people (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO public.people SELECT i, 'p' || i FROM generate_series(1, 20) i;
CREATE FUNCTION public.greet(i integer) RETURNS text LANGUAGE plpgsql AS
    $$ BEGIN RETURN (SELECT name FROM public.people WHERE id = i); END $$;
CREATE FUNCTION public.count_named(text) RETURNS bigint LANGUAGE sql AS
    'SELECT count(*) FROM public.people WHERE name = $1';
CREATE FUNCTION public.unrelated() RETURNS text LANGUAGE sql AS $$ SELECT 'names' $$;
CREATE FUNCTION public.tracked() RETURNS bigint LANGUAGE sql
    BEGIN ATOMIC SELECT count(name) FROM public.people; END;
"""


async def test_plan_and_the_reply_name_the_functions(
    database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute(FUNCTIONS)
    wanted = manifest(table("people", column("id", "integer", nullable=False),
                            column("full_name", nullable=False, renamed_from="name"),
                            primary_key=pk("id")))  # fmt: skip
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(wanted))
    code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    assert code == 2, err  # pending: a warning refuses nothing
    (said,) = json.loads(out)["warnings"]
    assert "public.count_named(text), public.greet(integer) name it" in said
    conn = await connect(database.dsn)
    try:
        result = await heal(conn, load_manifest(wanted))
        assert result.outcome is Outcome.HEALED, result.error_message
        (status,) = result.migrations
        assert said in status.contract
        assert "unrelated" not in status.contract and "tracked" not in status.contract
    finally:
        await conn.close()
