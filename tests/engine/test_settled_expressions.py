"""Expressions PostgreSQL stores in another spelling, found by the real-world corpus: the pure
parts (which are asked, how a moment is settled, LIKE in the comparison form); the heals are in
tests/engine/test_equivalence.py (tests/contracts/corpus_models.py)."""

from __future__ import annotations

from tests.engine.builders import column, realm, table
from worker.engine.defaults import adopt_defaults, default_questions
from worker.engine.normalize import same_expression


def test_like_compares_as_the_operator_postgresql_stores() -> None:
    assert same_expression("(url ~~ 'https://%'::text)", "url LIKE 'https://%'")
    assert same_expression("(a !~~* 'x'::text)", "a NOT ILIKE 'x'")
    assert not same_expression("(a ~~* 'x'::text)", "a LIKE 'x'")


def test_generation_expressions_spelt_differently_are_asked() -> None:
    stored = "COALESCE(((m #>> '{a,b}'::text[]))::boolean, false)"
    current = realm(table("t", column("g", "boolean", generated=stored)))
    desired = realm(table("t", column("g", "boolean", generated="COALESCE(CAST(m #>> '{a, b}' AS boolean), FALSE)")))  # fmt: skip
    [question] = default_questions(current, desired)
    assert (question.part, question.moment, question.stored) == ("generated", False, stored)
    assert question.pair.startswith("CAST((COALESCE(CAST(m #>> '{a, b}' AS boolean), FALSE)) AS boolean)")  # fmt: skip
    [t] = adopt_defaults(desired, frozenset({question})).tables
    assert (t.columns[0].generated, t.columns[0].default) == (stored, None)


def test_a_moment_literal_is_satisfied_by_a_constant_of_the_type() -> None:
    taken = "'2026-12-02 05:52:29.137312+00'::timestamp with time zone"
    current = realm(
        table(
            "t",
            column("a", "timestamp with time zone", default=taken),
            column("b", "date", default="'2026-12-02'::date"),
            column("c", "text", default="'x'::text"),  # text: 'now()' is just text
            column("d", "timestamp with time zone", default="now()"),  # not a constant
            column("e", "timestamp without time zone", default="'infinity'::timestamp"),
        )
    )
    desired = realm(
        table(
            "t",
            column("a", "timestamp with time zone", default="'now()'"),
            column("b", "date", default="'Today'"),
            column("c", "text", default="'now()'"),
            column("d", "timestamp with time zone", default="'now()'"),
            column("e", "timestamp without time zone", default="'2020-01-01'"),
        )
    )
    asked = {q.column: q.moment for q in default_questions(current, desired)}
    assert asked == {"a": True, "b": True, "c": False, "e": False}
