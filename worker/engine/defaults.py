"""Expressions PostgreSQL stores in another spelling: asked of PostgreSQL, not re-implemented.

A manifest's ``'0'`` on a boolean column is stored as ``false``, ``'0'`` on an integer as ``0``,
``'2020-01-01'`` on a timestamp as ``'2020-01-01 00:00:00'::timestamp without time zone``; a
generation expression's ``'{a, b}'`` where a ``text[]`` is wanted as ``'{a,b}'::text[]``. The
comparison form of :mod:`worker.engine.normalize` cannot know PostgreSQL's rules for every type
and operator, so where a current and a desired expression still differ PostgreSQL is asked:

- two *constant* defaults (no column, no sequence, only immutable functions, no ``CURRENT_…``):
  are they the same value of the column's type? A constant default gives the same value on every
  insert, so equal values mean the same default. One query for all such columns.
- two generation expressions: does PostgreSQL's own deparser (``EXPLAIN VERBOSE`` of both over
  the table, read-only, no DDL) print them alike? One query per table.
- a *moment* default -- a string literal PostgreSQL reads as the time it is read (``'now()'``,
  ``'today'``, ``'tomorrow'``, ``'yesterday'``: what ``server_default="now()"`` writes) on a
  date/time column -- is turned into a fixed constant when the column is made, so any constant
  of the column's type satisfies it, settled without asking. (Never drift on a healthy
  create_all database; a heal that adds the column writes the literal create_all writes.)

Only queries run, only when there are questions; the desired realm then takes the current
spelling, and the pure diff sees no difference. Three steps, so the planner stays pure:
:func:`default_questions` (pure) → :func:`ask` (I/O) → :func:`adopt_defaults` (pure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from itertools import groupby

from contracts.expressions import parse_expression
from contracts.identifiers import qualified
from worker.engine import model as m
from worker.engine.connection import DATABASE_ERRORS, Connection
from worker.engine.diff_table import same_index
from worker.engine.diff_unchanged import unchanged
from worker.engine.normalize import same_expression

__all__ = ["DefaultQuestion", "adopt_defaults", "ask", "default_questions"]

# PostgreSQL's special date/time inputs that depend on when they are read (its docs, "Special
# Date/Time Inputs"); 'epoch', 'infinity' and '-infinity' are constants like any other.
_MOMENT = re.compile(r"\b(now|today|tomorrow|yesterday)\b", re.IGNORECASE)
_LITERAL = re.compile(r"'(?:[^']|'')*'")
_DATETIME = ("date", "time", "timestamp")


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultQuestion:
    """Are ``current`` and ``desired`` the same ``part`` of ``column`` (a default, a generation
    expression) or of the index named ``column`` (``where``, ``key N``)? Both are canonical SQL
    of ``type`` (None: an index's own); ``stored`` is the current one as the catalog prints it.
    A ``moment`` question is settled without asking."""

    schema: str
    table: str
    column: str
    type: str | None
    current: str
    desired: str
    stored: str
    part: str = "default"
    moment: bool = False

    @property
    def sql(self) -> str:
        return f"({self.desired})::{self.type} IS NOT DISTINCT FROM ({self.current})::{self.type}"

    @property
    def deparsed(self) -> bool:
        """Asked of PostgreSQL's deparser (any expression) rather than by value (a constant)."""
        return self.part != "default"

    @property
    def pair(self) -> str:
        """Both expressions, as ``EXPLAIN VERBOSE`` prints them over the table."""
        if self.type is None:
            return f"({self.desired}), ({self.current})"
        return f"CAST(({self.desired}) AS {self.type}), CAST(({self.current}) AS {self.type})"


def default_questions(current: m.Realm, desired: m.Realm) -> tuple[DefaultQuestion, ...]:
    """The columns whose two defaults or generation expressions differ in spelling only
    PostgreSQL can settle."""
    questions = []
    for table in desired.tables:
        existing = current.table(table.schema, table.name)
        if existing is None or unchanged(existing, table):  # equal texts: nothing to ask
            continue
        for column in table.columns:
            have = existing.column(column.name)
            if have is None or have.type != column.type or have.identity is not None:
                continue
            question = _default_question(have, column) or _generated_question(have, column)
            if question is not None:
                questions.append(replace(question, schema=table.schema, table=table.name))
        for index in table.indexes:
            questions += _index_questions(existing, table, index)
    return tuple(questions)


def _default_question(have: m.Column, column: m.Column) -> DefaultQuestion | None:
    return _question(column, have.default, column.default, _constant, part="default")


def _generated_question(have: m.Column, column: m.Column) -> DefaultQuestion | None:
    return _question(column, have.generated, column.generated, _canonical, part="generated")


def _question(
    column: m.Column,
    stored: str | None,
    wanted: str | None,
    canonical: Callable[[str], str | None],
    *,
    part: str,
) -> DefaultQuestion | None:
    if stored is None or wanted is None or same_expression(stored, wanted):
        return None
    current, desired = canonical(stored), canonical(wanted)
    if current is None or desired is None:
        return None
    return DefaultQuestion(
        schema="", table="", column=column.name, type=column.type,
        current=current, desired=desired, stored=stored, part=part,
        moment=part == "default" and _moment(desired, column.type),
    )  # fmt: skip


def _index_questions(current: m.Table, desired: m.Table, index: m.Index) -> list[DefaultQuestion]:
    """The keys and predicate of a same-named index that differ in spelling only, when nothing
    else of it differs (then it is drift whatever PostgreSQL says)."""
    have = next((i for i in current.indexes if i.name == index.name and i.valid), None)
    if have is None or have.constraint is not None or len(have.elements) != len(index.elements):
        return []
    parts = [(f"key {n}", a.expression, b.expression) for n, (a, b) in enumerate(
        zip(have.elements, index.elements, strict=True))]  # fmt: skip
    differ = [
        (part, stored, wanted)
        for part, stored, wanted in [*parts, ("where", have.where, index.where)]
        if stored is not None and wanted is not None and not same_expression(stored, wanted)
    ]
    # the usual index has no expression spelt differently: no question, whatever its shape
    if not differ or not _same_shape(have, index):
        return []
    questions = []
    for part, stored, wanted in differ:
        pair = _canonical(stored), _canonical(wanted)
        if pair[0] is not None and pair[1] is not None:
            questions.append(DefaultQuestion(
                schema=desired.schema, table=desired.name, column=index.name, type=None,
                current=pair[0], desired=pair[1], stored=stored, part=part,
            ))  # fmt: skip
    return questions


def _same_shape(current: m.Index, desired: m.Index) -> bool:
    """The two indexes alike but for the text of their expressions."""

    def shape(index: m.Index) -> m.Index:
        keys = tuple(replace(e, expression=e.expression and "?") for e in index.elements)
        return replace(index, elements=keys, where=index.where and "?", valid=True)

    return same_index(shape(current), shape(desired))


def _moment(text: str, column_type: str) -> bool:
    """A string literal naming a moment (``'now()'``, ``'today'``, …) on a date/time column."""
    is_datetime = column_type.split(" ", 1)[0].split("(", 1)[0] in _DATETIME
    return is_datetime and bool(_LITERAL.fullmatch(text)) and bool(_MOMENT.search(text))


def _canonical(text: str) -> str | None:
    """``text`` re-written from its parse tree; None outside what a manifest may say (never
    evaluated then, compared as text)."""
    try:
        return parse_expression(text, what="expression").sql
    except ValueError:
        return None


def _constant(text: str) -> str | None:
    """``text`` re-written from its parse tree when it is a constant expression, else None."""
    try:
        expr = parse_expression(text, what="default")
    except ValueError:
        return None
    return expr.sql if expr.immutable else None


_Asker = Callable[[Connection, tuple["DefaultQuestion", ...]], Awaitable[list[bool]]]


async def ask(conn: Connection, questions: Iterable[DefaultQuestion]) -> frozenset[DefaultQuestion]:
    """The questions whose two expressions PostgreSQL finds the same (moments: all of them).

    One query for all constant defaults and one per table for generation expressions; if one
    fails (a default that does not cast), each is asked alone and a failing one counts as
    different — the diff then reports it as drift, as before.
    """
    asked = tuple(questions)
    settled = {q for q in asked if q.moment}
    values = tuple(q for q in asked if not q.moment and not q.deparsed)
    settled |= await _settle(conn, values, _same_values)
    deparsed = sorted((q for q in asked if q.deparsed), key=_where)
    for _, group in groupby(deparsed, key=_where):
        settled |= await _settle(conn, tuple(group), _same_deparsed)
    return frozenset(settled)


def _where(question: DefaultQuestion) -> tuple[str, str]:
    return question.schema, question.table


async def _settle(
    conn: Connection, asked: tuple[DefaultQuestion, ...], how: _Asker
) -> set[DefaultQuestion]:
    if not asked:
        return set()
    answers = await _guarded(conn, asked, how)
    if answers is None:
        answers = [bool(await _guarded(conn, (q,), how) == [True]) for q in asked]
    return {q for q, same in zip(asked, answers, strict=True) if same}


async def _guarded(
    conn: Connection, questions: tuple[DefaultQuestion, ...], how: _Asker
) -> list[bool] | None:
    try:
        async with conn.transaction():  # a savepoint when the caller is in a transaction
            return await how(conn, questions)
    except DATABASE_ERRORS:
        return None


async def _same_values(conn: Connection, questions: tuple[DefaultQuestion, ...]) -> list[bool]:
    sql = "SELECT ARRAY[" + ", ".join(q.sql for q in questions) + "]"
    return list(await conn.fetchval(sql))


async def _same_deparsed(conn: Connection, questions: tuple[DefaultQuestion, ...]) -> list[bool]:
    """Each pair printed by PostgreSQL's deparser, after its parse analysis and constant folding
    (a plan, not a run: nothing is read or written)."""
    table = qualified(questions[0].schema, questions[0].table)
    pairs = ", ".join(q.pair for q in questions)
    found = await conn.fetchval(
        f"EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) SELECT {pairs} FROM {table}"
    )
    output = (json.loads(found) if isinstance(found, str) else found)[0]["Plan"]["Output"]
    return [output[2 * i] == output[2 * i + 1] for i in range(len(questions))]


def adopt_defaults(desired: m.Realm, settled: frozenset[DefaultQuestion]) -> m.Realm:
    """``desired`` with each settled default, generation expression and index expression spelt
    as the database spells it, so the diff finds the two equal at its first comparison."""
    if not settled:
        return desired
    spelling: dict[tuple[str, str], dict[tuple[str, str], DefaultQuestion]] = {}
    for q in settled:
        spelling.setdefault(_where(q), {})[(q.column, q.part)] = q
    tables = tuple(
        _respelt(table, spelling[(table.schema, table.name)])
        if (table.schema, table.name) in spelling
        else table
        for table in desired.tables
    )
    return replace(desired, tables=tables, _by_name={})


def _respelt(table: m.Table, settled: dict[tuple[str, str], DefaultQuestion]) -> m.Table:
    columns = tuple(_adopted(c, settled) for c in table.columns)
    indexes = tuple(_respelt_index(i, settled) for i in table.indexes)
    return replace(table, columns=columns, indexes=indexes)


def _adopted(column: m.Column, settled: dict[tuple[str, str], DefaultQuestion]) -> m.Column:
    if (column.name, "generated") in settled:
        return replace(column, generated=settled[column.name, "generated"].stored)
    if (column.name, "default") in settled:
        return replace(column, default=settled[column.name, "default"].stored)
    return column


def _respelt_index(index: m.Index, settled: dict[tuple[str, str], DefaultQuestion]) -> m.Index:
    parts = {part: q.stored for (name, part), q in settled.items() if name == index.name}
    if not parts:
        return index
    keys = tuple(
        replace(e, expression=parts.get(f"key {n}", e.expression))
        for n, e in enumerate(index.elements)
    )
    return replace(index, elements=keys, where=parts.get("where", index.where))
