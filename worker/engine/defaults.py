"""Defaults PostgreSQL stores in another spelling: asked of PostgreSQL, not re-implemented.

A manifest's ``'0'`` on a boolean column is stored as ``false``, ``'0'`` on an integer as ``0``,
``'2020-01-01'`` on a timestamp as ``'2020-01-01 00:00:00'::timestamp without time zone``. The
comparison form of :mod:`worker.engine.normalize` cannot know PostgreSQL's input rules for every
type, so when a current and a desired default still differ and *both are constants* (no column,
no sequence, only immutable functions, no ``CURRENT_…``), PostgreSQL itself is asked whether they
are the same value of the column's type — one query for all such columns, only when there are
any. A constant default gives the same value on every insert, so equal values mean the same
default. The desired realm then takes the current spelling, and the pure diff sees no difference.

Three steps, so the planner stays pure: :func:`default_questions` (pure) → :func:`ask` (I/O) →
:func:`adopt_defaults` (pure).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from contracts.expressions import parse_expression
from worker.engine import model as m
from worker.engine.connection import DATABASE_ERRORS, Connection
from worker.engine.normalize import same_expression

__all__ = ["DefaultQuestion", "adopt_defaults", "ask", "default_questions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultQuestion:
    """Are ``current`` and ``desired`` the same value of ``type``? Both are canonical SQL;
    ``stored`` is the current default as the catalog prints it."""

    schema: str
    table: str
    column: str
    type: str
    current: str
    desired: str
    stored: str

    @property
    def sql(self) -> str:
        return f"({self.desired})::{self.type} IS NOT DISTINCT FROM ({self.current})::{self.type}"


def default_questions(current: m.Realm, desired: m.Realm) -> tuple[DefaultQuestion, ...]:
    """The columns whose two constant defaults differ in spelling only PostgreSQL can settle."""
    questions = []
    for table in desired.tables:
        existing = current.table(table.schema, table.name)
        for column in table.columns if existing is not None else ():
            assert existing is not None
            have = existing.column(column.name)
            if have is None or have.type != column.type or have.identity is not None:
                continue
            if have.default is None or column.default is None:
                continue
            if same_expression(have.default, column.default):
                continue
            pair = (_constant(have.default), _constant(column.default))
            if pair[0] is not None and pair[1] is not None:
                questions.append(
                    DefaultQuestion(
                        schema=table.schema,
                        table=table.name,
                        column=column.name,
                        type=column.type,
                        current=pair[0],
                        desired=pair[1],
                        stored=have.default,
                    )
                )
    return tuple(questions)


def _constant(text: str) -> str | None:
    """``text`` re-written from its parse tree when it is a constant expression, else None."""
    try:
        expr = parse_expression(text, what="default")
    except ValueError:
        return None  # outside what a manifest may say: never evaluated, compared as text
    return expr.sql if expr.immutable else None


async def ask(conn: Connection, questions: Iterable[DefaultQuestion]) -> frozenset[DefaultQuestion]:
    """The questions whose two defaults PostgreSQL evaluates to the same value.

    One query for all; if it fails (a default that does not cast), each is asked alone and a
    failing one counts as different — the diff then reports it as drift, as before.
    """
    asked = tuple(questions)
    if not asked:
        return frozenset()
    answers = await _ask(conn, asked)
    if answers is None:
        answers = [bool(await _ask(conn, (q,)) == [True]) for q in asked]
    return frozenset(q for q, same in zip(asked, answers, strict=True) if same)


async def _ask(conn: Connection, questions: tuple[DefaultQuestion, ...]) -> list[bool] | None:
    sql = "SELECT ARRAY[" + ", ".join(q.sql for q in questions) + "]"
    try:
        async with conn.transaction():  # a savepoint when the caller is in a transaction
            return list(await conn.fetchval(sql))
    except DATABASE_ERRORS:
        return None


def adopt_defaults(desired: m.Realm, settled: frozenset[DefaultQuestion]) -> m.Realm:
    """``desired`` with each settled column's default spelt as the database spells it (so the
    diff finds the two columns equal at its first comparison)."""
    if not settled:
        return desired
    spelling: dict[tuple[str, str], dict[str, str]] = {}
    for q in settled:
        spelling.setdefault((q.schema, q.table), {})[q.column] = q.stored
    tables = tuple(
        _respelt(table, spelling[(table.schema, table.name)])
        if (table.schema, table.name) in spelling
        else table
        for table in desired.tables
    )
    return replace(desired, tables=tables, _by_name={})


def _respelt(table: m.Table, defaults: dict[str, str]) -> m.Table:
    columns = tuple(
        replace(c, default=defaults[c.name]) if c.name in defaults else c for c in table.columns
    )
    return replace(table, columns=columns)
