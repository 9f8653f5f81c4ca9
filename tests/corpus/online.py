"""Issue 19 on real applications' models: the changes a user makes to them for a new version
(``driver.changed``), the rows the old version holds, and the writes of both versions while the
migrations run. Data only, and the writers that play it.

Each case changes real tables the way the issue's three kinds need them: an integer primary key
that foreign keys reference widened to ``bigint`` in place (``using``), a column renamed
(``renamed_from``) and a NOT NULL column added with a ``backfill`` over the row's own columns.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

import asyncpg

#: rows added to each table a case changes (besides the one rows.fill puts in every table)
ROWS = 3000


@dataclass(frozen=True, slots=True)
class Write:
    """One statement a writer repeats, ``$1`` a fresh integer each time. An UPDATE returns the
    primary key of the row it changed."""

    table: str
    sql: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    app: str
    #: driver.changed's changes: the new version's models
    changes: tuple[dict[str, Any], ...]
    #: the old version's rows in the changed tables (after rows.fill), ``{n}`` rows each
    fill: str
    #: what replicas of the old version keep writing from expand to the end of the backfill
    old_writes: tuple[Write, ...]
    #: what replicas of the new version write once it booted (the expand committed)
    new_writes: tuple[Write, ...]

    def widened(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if "using" in c["intent"]]

    def renamed(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if "renamed_from" in c["intent"]]

    def backfilled(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if "backfill" in c["intent"]]

    def tables(self) -> list[str]:
        return sorted({c["table"] for c in self.changes})


def widen(table: str, column: str) -> dict[str, Any]:
    return {"table": table, "column": column, "type": "bigint", "intent": {"using": column}}


def rename(table: str, column: str, to: str) -> dict[str, Any]:
    return {"table": table, "column": column, "name": to, "intent": {"renamed_from": column}}


def add(table: str, column: str, type_: str, backfill: str) -> dict[str, Any]:
    return {"table": table, "add": column, "type": type_, "intent": {"backfill": backfill}}


_TRIAL = """INSERT INTO trials (number, study_id, state)
    SELECT $1::int, min(study_id), '{state}' FROM studies"""
_VALUE = """INSERT INTO trial_values (trial_id, objective, value, value_type{label})
    SELECT max(trial_id), $1::int, 0.5, 'FINITE'{value} FROM trials"""
_ATTRIBUTE = """INSERT INTO trial_user_attributes (trial_id, key, {column})
    SELECT max(trial_id), '{who}' || $1::int, '"{who} ' || $1::int || '"' FROM trials"""
_UPDATE = """UPDATE trial_user_attributes SET {column} = '"updated by {who} ' || $1::int || '"'
    WHERE trial_user_attribute_id = 1 + ($1::int * {k}) % 2000 RETURNING trial_user_attribute_id"""

OPTUNA = Case(
    app="optuna",
    changes=(
        widen("trials", "trial_id"),  # referenced by six tables' foreign keys
        rename("trial_user_attributes", "value_json", "value"),
        add("trial_values", "objective_label", "text", "'objective ' || objective"),
    ),
    fill="""
        INSERT INTO studies (study_name) SELECT 'study ' || g FROM generate_series(1, 4) g;
        INSERT INTO trials (number, study_id, state, datetime_start)
            SELECT g, (SELECT min(study_id) FROM studies) + g % 4, 'COMPLETE',
                   timestamp '2026-01-01' + g * interval '1 s'
            FROM generate_series(1, {n}) g;
        INSERT INTO trial_values (trial_id, objective, value, value_type)
            SELECT trial_id, 0, number * 0.5, 'FINITE' FROM trials WHERE number IS NOT NULL;
        INSERT INTO trial_user_attributes (trial_id, key, value_json)
            SELECT trial_id, 'k0', '"v' || number || '"' FROM trials WHERE number IS NOT NULL;
        INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)
            SELECT trial_id, 'x', number, '{{}}' FROM trials WHERE number IS NOT NULL;""",
    old_writes=(
        Write("trials", _TRIAL.format(state="RUNNING")),
        Write("trial_values", _VALUE.format(label="", value="")),
        Write("trial_user_attributes", _ATTRIBUTE.format(column="value_json", who="old")),
        Write("trial_user_attributes", _UPDATE.format(column="value_json", who="old", k=1)),
    ),
    new_writes=(
        Write("trials", _TRIAL.format(state="WAITING")),
        Write(
            "trial_values",
            _VALUE.format(label=", objective_label", value=", 'objective ' || $1::int"),
        ),
        Write("trial_user_attributes", _ATTRIBUTE.format(column="value", who="new")),
        Write("trial_user_attributes", _UPDATE.format(column="value", who="new", k=7)),
    ),
)

CASES = {case.app: case for case in (OPTUNA,)}


@dataclass(slots=True)
class Writes:
    """What the writers did: rows inserted per table, primary keys updated per table."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, set[Any]] = field(default_factory=dict)
    during_backfill: int = 0
    #: writes a deadlock with the in-place swap rolled back (retried): see
    #: tests/engine/test_swap_locks.py, xfailed for the swap's lock order
    deadlocks: int = 0


async def write(
    dsn: str, writes: tuple[Write, ...], done: Writes, stop: asyncio.Event, *, first: int
) -> None:
    """Repeat ``writes`` in turn, each its own transaction, ``$1`` counting from ``first``
    (writers take distinct ranges: their unique keys never collide), until ``stop`` is set.
    Every write must succeed: a writer of either version never sees an error from a migration."""
    conn = await asyncpg.connect(dsn)
    numbers = itertools.count(first)
    try:
        for item in itertools.cycle(writes):
            if stop.is_set():
                return
            number = next(numbers)
            try:
                await _write_once(conn, item, number, done)
            except asyncpg.DeadlockDetectedError:
                done.deadlocks += 1
                await _write_once(conn, item, number, done)
            await asyncio.sleep(0.002)
    finally:
        await conn.close()


async def _write_once(conn: asyncpg.Connection, item: Write, number: int, done: Writes) -> None:
    if item.sql.lstrip().startswith("UPDATE"):
        key = await conn.fetchval(item.sql, number)
        if key is not None:
            done.updated.setdefault(item.table, set()).add(key)
    else:
        status = await conn.execute(item.sql, number)
        done.inserted[item.table] = done.inserted.get(item.table, 0) + int(status.split()[-1])
