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
from dataclasses import dataclass, field, replace
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
    name: str
    app: str
    #: driver.changed's changes: the new version's models
    changes: tuple[dict[str, Any], ...]
    #: the old version's rows in the changed tables (after rows.fill), ``{n}`` rows each
    fill: str
    #: what replicas of the old version keep writing from expand to the end of the backfill
    old_writes: tuple[Write, ...]
    #: what replicas of the new version write once it booted (the expand committed)
    new_writes: tuple[Write, ...]
    #: the backfill run by ``schemaheal backfill --dsn`` (a database healed without a worker)
    #: rather than by the engine's runner in the test's process
    cli: bool = False

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
    name="optuna",
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

_EXPERIMENT = """INSERT INTO experiments (name, workspace, lifecycle_stage, creation_time{label})
    VALUES ('{who} ' || $1::int, 'default', 'active', $1::int{value})"""
_RUN = """INSERT INTO runs (run_uuid, {column}, status, lifecycle_stage, experiment_id)
    SELECT md5('{who}' || $1::int), '{who} ' || $1::int, 'RUNNING', 'active', max(experiment_id)
    FROM experiments"""
_TAG = """INSERT INTO experiment_tags (key, value, experiment_id)
    SELECT '{who} ' || $1::int, 'v', max(experiment_id) FROM experiments"""
_RUN_UPDATE = """UPDATE runs SET {column} = 'updated by {who} ' || $1::int
    WHERE run_uuid = md5((1 + ($1::int * {k}) % 2000)::text) RETURNING run_uuid"""

MLFLOW = Case(
    name="mlflow",
    app="mlflow",
    changes=(
        widen("experiments", "experiment_id"),  # referenced by ten tables, in composite keys too
        add("experiments", "name_length", "integer", "length(name)"),  # the same table
        rename("runs", "name", "run_name"),  # a text primary key (run_uuid) to page by
    ),
    fill="""
        INSERT INTO experiments (name, workspace, artifact_location, lifecycle_stage,
                                 creation_time, last_update_time)
            SELECT 'exp ' || g, 'default', 's3://b/' || g, 'active', g, g
            FROM generate_series(1, {n}) g;
        INSERT INTO runs (run_uuid, name, source_type, status, start_time, lifecycle_stage,
                          artifact_uri, experiment_id)
            SELECT md5(g::text), 'run ' || g, 'LOCAL', 'FINISHED', g, 'active', 's3://r/' || g,
                   e.experiment_id
            FROM generate_series(1, {n}) g JOIN experiments e ON e.name = 'exp ' || g;
        INSERT INTO experiment_tags (key, value, experiment_id)
            SELECT 'k', 'v' || experiment_id, experiment_id FROM experiments
            WHERE name LIKE 'exp %';""",
    old_writes=(
        Write("experiments", _EXPERIMENT.format(who="old", label="", value="")),
        Write("runs", _RUN.format(column="name", who="old")),
        Write("experiment_tags", _TAG.format(who="old")),
        Write("runs", _RUN_UPDATE.format(column="name", who="old", k=1)),
    ),
    new_writes=(
        Write(
            "experiments",
            _EXPERIMENT.format(
                who="new", label=", name_length", value=", length('new ' || $1::int)"
            ),
        ),
        Write("runs", _RUN.format(column="run_name", who="new")),
        Write("experiment_tags", _TAG.format(who="new")),
        Write("runs", _RUN_UPDATE.format(column="run_name", who="new", k=7)),
    ),
)

_TASK = """INSERT INTO celery_taskmeta (id, {column}, status, date_done)
    VALUES (nextval('task_id_sequence'), '{who}-' || $1::int, 'PENDING', now())"""
_TASKSET = """INSERT INTO celery_tasksetmeta (id, taskset_id{label})
    VALUES (nextval('taskset_id_sequence'), '{who}-' || $1::int{value})"""

CELERY = Case(
    name="celery",
    app="celery",
    cli=True,
    changes=(
        widen("celery_taskmeta", "id"),  # an explicit sequence, no default: celery calls nextval
        rename("celery_taskmeta", "task_id", "task_uuid"),  # under a unique constraint
        add("celery_tasksetmeta", "label", "text", "coalesce(taskset_id, 'set ' || id)"),
    ),
    fill="""
        SELECT setval('task_id_sequence', max(id)) FROM celery_taskmeta;  -- rows.fill's row
        SELECT setval('taskset_id_sequence', max(id)) FROM celery_tasksetmeta;
        INSERT INTO celery_taskmeta (id, task_id, status, date_done, result)
            SELECT nextval('task_id_sequence'), 'task-' || g, 'SUCCESS', now(), '\\x00'
            FROM generate_series(1, {n}) g;
        INSERT INTO celery_tasksetmeta (id, taskset_id, date_done)
            SELECT nextval('taskset_id_sequence'), CASE WHEN g % 3 > 0 THEN 'set-' || g END, now()
            FROM generate_series(1, {n}) g;""",
    old_writes=(
        Write("celery_taskmeta", _TASK.format(column="task_id", who="old")),
        Write("celery_tasksetmeta", _TASKSET.format(who="old", label="", value="")),
    ),
    new_writes=(
        Write("celery_taskmeta", _TASK.format(column="task_uuid", who="new")),
        Write(
            "celery_tasksetmeta",
            _TASKSET.format(who="new", label=", label", value=", 'new-' || $1::int"),
        ),
    ),
)

#: what a user widening trials.trial_id does next: the foreign key columns referencing it, each
#: under a unique constraint that begins with it (the swap refuses those today)
OPTUNA_REFERENCES = replace(
    OPTUNA,
    name="optuna-references",
    changes=(widen("trial_values", "trial_id"), widen("trial_params", "trial_id")),
    old_writes=OPTUNA.old_writes[:2],
    new_writes=(OPTUNA.new_writes[0], OPTUNA.old_writes[1]),
)

_STUDY = """INSERT INTO studies ({column}) VALUES ('{who} study ' || $1::int)"""

#: a rename under a unique index (not a constraint), and a value computed from an enum
OPTUNA_INDEXED = replace(
    OPTUNA,
    name="optuna-indexed",
    changes=(
        rename("studies", "study_name", "name"),
        add("trials", "state_label", "text", "lower(state::text)"),
    ),
    old_writes=(
        Write("studies", _STUDY.format(column="study_name", who="old")),
        OPTUNA.old_writes[0],
    ),
    new_writes=(Write("studies", _STUDY.format(column="name", who="new")),),
)

#: the same rename, its index keeping its name (as an explicitly named Index does): built as
#: ``<name>__sh_rn`` at expand, handed its name at contract
OPTUNA_INDEX_NAME = replace(
    OPTUNA_INDEXED,
    name="optuna-index-name",
    changes=({**rename("studies", "study_name", "name"), "keep_index_names": True},),
    old_writes=OPTUNA_INDEXED.old_writes[:1],
)

CASES = {
    case.name: case
    for case in (OPTUNA, MLFLOW, CELERY, OPTUNA_INDEXED, OPTUNA_REFERENCES, OPTUNA_INDEX_NAME)
}


@dataclass(slots=True)
class Writes:
    """What the writers did: rows inserted per table, primary keys updated per table."""

    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, set[Any]] = field(default_factory=dict)
    during_backfill: int = 0


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
