"""Plan: turn changes into ordered statements, each with its timeouts and hazards. Pure.

Order follows dependencies: schemas, extensions, enum types and labels, sequences, new tables in
foreign-key order, columns, sequence owners, indexes, keys, foreign keys, checks, validations,
comments. Statements of one group run in one transaction; a statement that cannot run in a
transaction (``CREATE INDEX CONCURRENTLY``) is a group of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import assert_never

from contracts.identifiers import qualified, quote_ident
from contracts.naming import default_name
from worker.engine import changes as ch
from worker.engine import model as m
from worker.engine import render as r
from worker.engine.expand import MigrationKind
from worker.engine.hazards import Hazard
from worker.engine.plan_expand import contract_statements, expand_commands
from worker.engine.plan_partitioned import (
    Step,
    partitioned_foreign_key,
    partitioned_index,
    partitioned_key,
    shape,
)
from worker.engine.statements import Plan, PlanSettings, Statement

__all__ = ["Plan", "PlanSettings", "Statement", "make_plan"]


@dataclass(slots=True)
class _Step:
    """One SQL command of a change, before groups and timeouts are assigned."""

    sql: str
    hazards: tuple[Hazard, ...] = ()
    transactional: bool = True
    long: bool = False
    joins_previous: bool = False  # runs in the same transaction as the step before it
    cleanup_sql: str | None = None


_PHASES: dict[type, int] = {
    ch.AddSchema: 0,
    ch.AddExtension: 1,
    ch.AddEnum: 2,
    ch.AddEnumLabel: 3,
    ch.AddSequence: 4,
    ch.AddTable: 5,
    ch.AddColumn: 6,
    ch.ExpandColumn: 6,
    ch.WidenType: 6,
    ch.SetDefault: 7,
    ch.DropNotNull: 7,
    ch.SetNotNull: 8,
    ch.SetSequenceOwner: 9,
    ch.RebuildInvalidIndex: 10,
    ch.AddIndex: 10,
    ch.AddKeyConstraint: 11,
    ch.AddForeignKey: 12,
    ch.AddCheck: 13,
    ch.ValidateConstraint: 14,
    ch.SetComment: 15,
}


def make_plan(
    changes: tuple[ch.Change, ...],
    drift: tuple[ch.Drift, ...] = (),
    settings: PlanSettings | None = None,
    registered: frozenset[str] | None = None,
) -> Plan:
    """Order ``changes`` and render each into statements with timeouts and hazards.

    ``registered``: the ids of the migrations recorded for their backfill, when known; a
    migration the catalog shows expanded but that is not among them is expanded again (its
    expand is idempotent), so that it gets registered."""
    settings = settings or PlanSettings()
    changes = tuple(c for c in (_registered(c, registered) for c in changes) if c is not None)
    ordered = sorted(changes, key=lambda c: _PHASES[type(c)])  # stable: keeps FK order of tables
    new_tables = {c.table.qualified for c in ordered if isinstance(c, ch.AddTable)}
    statements: list[Statement] = []
    group = 0
    batch = 0  # new tables in the current transaction
    previous: ch.Change | None = None
    for change in ordered:
        batched = _batches_with(previous, change, new_tables) and batch < MAX_TABLES_PER_BATCH
        batch = batch + 1 if batched else 1
        for i, step in enumerate(_render(change)):
            joins = step.joins_previous or (i == 0 and batched)
            after_transactional = bool(statements) and statements[-1].transactional
            if not (joins and step.transactional and after_transactional):
                group += 1
            timeout = (
                settings.long_statement_timeout_ms if step.long else settings.statement_timeout_ms
            )
            statements.append(
                Statement(
                    sql=step.sql,
                    change=change,
                    hazards=step.hazards,
                    transactional=step.transactional,
                    group=group,
                    lock_timeout_ms=_lock_timeout(settings, step.transactional, timeout),
                    statement_timeout_ms=timeout,
                    cleanup_sql=step.cleanup_sql,
                )
            )
        previous = change
    running = tuple(c for c in ordered if isinstance(c, ch.ExpandColumn))
    return Plan(
        statements=tuple(statements),
        drift=drift,
        changes=tuple(c for c in ordered if not (isinstance(c, ch.ExpandColumn) and c.expanded)),
        migrations=tuple(c.migration for c in running),
        contract=contract_statements(running, settings, group + 1),
    )


def _registered(change: ch.Change, registered: frozenset[str] | None) -> ch.Change | None:
    """An expanded migration nobody registered: a plain NOT NULL column already (None: no
    migration), or expanded again — never a change in place, whose swap may have run."""
    if not isinstance(change, ch.ExpandColumn) or not change.expanded or registered is None:
        return change
    if change.migration.in_place or change.migration.id in registered:
        return change
    current = change.table.column(change.migration.new_column)
    if change.migration.kind is MigrationKind.BACKFILL and current and not current.nullable:
        return None
    return replace(change, expanded=False)


def _lock_timeout(settings: PlanSettings, transactional: bool, statement_timeout_ms: int) -> int:
    if transactional:
        return settings.lock_timeout_ms
    wait = max(settings.lock_timeout_ms, settings.concurrent_lock_timeout_ms)
    return min(wait, statement_timeout_ms - 1)  # still below its statement_timeout


#: New tables per transaction: each takes about six locks (table, TOAST, indexes), and the shared
#: lock table holds max_locks_per_transaction (64) x max_connections (100) by default.
MAX_TABLES_PER_BATCH = 100


def _batches_with(previous: ch.Change | None, change: ch.Change, new_tables: set[str]) -> bool:
    """New tables whose foreign keys point only at new tables share a transaction: nobody can
    see them yet, and no existing table's lock is held while the batch runs."""
    if not (isinstance(previous, ch.AddTable) and isinstance(change, ch.AddTable)):
        return False
    return all(
        qualified(fk.ref_schema, fk.ref_table) in new_tables
        for t in (previous.table, change.table)
        for fk in t.foreign_keys
    )


def _render(change: ch.Change) -> list[_Step]:
    match change:
        case ch.AddSchema(schema=schema):
            return [_Step(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")]
        case ch.AddExtension(extension=ext):
            name, schema = quote_ident(ext.name), quote_ident(ext.schema)
            sql = f"CREATE EXTENSION IF NOT EXISTS {name} SCHEMA {schema}"
            return [_Step(sql, (Hazard.EXTENSION_CREATED,))]
        case ch.AddEnum(enum=enum):
            labels = ", ".join(r.literal(label) for label in enum.labels)
            return [_Step(f"CREATE TYPE {enum.qualified} AS ENUM ({labels})")]
        case ch.AddEnumLabel(enum=enum, label=label, before=before, after=after):
            where = f"AFTER {r.literal(after)}" if after else f"BEFORE {r.literal(before or '')}"
            sql = f"ALTER TYPE {enum.qualified} ADD VALUE IF NOT EXISTS {r.literal(label)} {where}"
            return [_Step(sql, (Hazard.ENUM_LABEL_ADDED,))]
        case ch.AddSequence(sequence=seq):
            return [_Step(r.create_sequence(seq))]
        case ch.SetSequenceOwner(sequence=seq):
            table, column = seq.owned_by or ("", "")
            owner = f"{quote_ident(seq.schema)}.{quote_ident(table)}.{quote_ident(column)}"
            return [_Step(f"ALTER SEQUENCE {seq.qualified} OWNED BY {owner}")]
        case ch.AddTable(table=table):
            return _add_table(table)
        case ch.AddColumn(table=table, column=column):
            return [
                _Step(
                    f"ALTER TABLE {table.qualified} ADD COLUMN IF NOT EXISTS "
                    f"{r.column_definition(column)}",
                    _add_column_hazards(column),
                    long=Hazard.TABLE_REWRITE in _add_column_hazards(column),
                )
            ]
        case ch.ExpandColumn():
            commands = expand_commands(change)
            return [_Step(sql, (Hazard.STRONG_LOCK,), joins_previous=i > 0)
                    for i, sql in enumerate(commands)]  # fmt: skip
        case ch.SetDefault(table=table, column=column):
            return [_alter_column(table, column, f"SET DEFAULT {column.default}")]
        case ch.DropNotNull(table=table, column=column):
            return [_alter_column(table, column, "DROP NOT NULL")]
        case ch.SetNotNull(table=table, column=column):
            return _set_not_null(table, column)
        case ch.WidenType(table=table, column=column):
            return [_alter_column(table, column, f"TYPE {column.type}")]
        case (
            ch.AddIndex(table=table, index=index) | ch.RebuildInvalidIndex(table=table, index=index)
        ) if table.partitioned:
            return _partitioned(partitioned_index(table, index), unique=index.unique)
        case ch.AddIndex(table=table, index=index):
            return [_concurrent_index(table, index)]
        case ch.RebuildInvalidIndex(table=table, index=index):
            drop = _drop_index(table, index.name)
            return [
                _Step(drop, (), transactional=False, long=True),
                _concurrent_index(table, index),
            ]
        case ch.AddKeyConstraint(table=table) if table.partitioned:
            return _partitioned(partitioned_key(change), unique=True)
        case ch.AddKeyConstraint():
            return _add_key(change)
        case ch.AddForeignKey(table=table, foreign_key=fk) if table.partitioned:
            return _partitioned(partitioned_foreign_key(table, fk))
        case ch.AddForeignKey(table=table, foreign_key=fk):
            return _not_valid_then_validate(table, fk.name, r.foreign_key_clause(fk))
        case ch.AddCheck(table=table, check=check):
            return _not_valid_then_validate(table, check.name, r.check_clause(check))
        case ch.ValidateConstraint(table=table, name=name):
            return [_validate(table, name)]
        case ch.SetComment(table=table, column=column, comment=comment):
            target = f"TABLE {table.qualified}"
            if column is not None:
                target = f"COLUMN {table.qualified}.{quote_ident(column)}"
            text = "NULL" if comment is None else r.literal(comment)
            return [_Step(f"COMMENT ON {target} IS {text}")]
        case _:
            assert_never(change)


def _add_table(table: m.Table) -> list[_Step]:
    steps = [_Step(r.create_table(table))]
    for index in table.indexes:
        sql = r.create_index(table, index, concurrently=False)
        steps.append(_Step(sql, joins_previous=True))
    if table.comment is not None:
        steps.append(
            _Step(
                f"COMMENT ON TABLE {table.qualified} IS {r.literal(table.comment)}",
                joins_previous=True,
            )
        )
    for column in table.columns:
        if column.comment is not None:
            target = f"{table.qualified}.{quote_ident(column.name)}"
            steps.append(
                _Step(
                    f"COMMENT ON COLUMN {target} IS {r.literal(column.comment)}",
                    joins_previous=True,
                )
            )
    return steps


def _add_column_hazards(column: m.Column) -> tuple[Hazard, ...]:
    from contracts.expressions import parse_expression

    rewrites = column.identity is not None or column.generated is not None
    if column.default is not None:
        rewrites = rewrites or parse_expression(column.default).volatile
    return (Hazard.STRONG_LOCK, Hazard.TABLE_REWRITE) if rewrites else (Hazard.STRONG_LOCK,)


def _alter_column(table: m.Table, column: m.Column, action: str) -> _Step:
    sql = f"ALTER TABLE {table.qualified} ALTER COLUMN {quote_ident(column.name)} {action}"
    return _Step(sql, (Hazard.STRONG_LOCK,))


def _set_not_null(table: m.Table, column: m.Column) -> list[_Step]:
    """NOT NULL without a long exclusive lock: CHECK … NOT VALID, VALIDATE, then SET NOT NULL
    (PostgreSQL 12+ uses the validated CHECK and skips its own scan), then drop the CHECK."""
    name = quote_ident(default_name(table.name, (column.name,), "not_null"))
    col = quote_ident(column.name)
    alter = f"ALTER TABLE {table.qualified}"
    return [
        _Step(
            f"{alter} ADD CONSTRAINT {name} CHECK ({col} IS NOT NULL) NOT VALID",
            (Hazard.STRONG_LOCK,),
        ),
        _Step(
            f"{alter} VALIDATE CONSTRAINT {name}",
            (Hazard.VALIDATION_SCAN, Hazard.MAY_FAIL_ON_EXISTING_DATA),
            long=True,
            cleanup_sql=f"{alter} DROP CONSTRAINT IF EXISTS {name}",
        ),
        _Step(f"{alter} ALTER COLUMN {col} SET NOT NULL", (Hazard.STRONG_LOCK,)),
        _Step(
            f"{alter} DROP CONSTRAINT IF EXISTS {name}", (Hazard.STRONG_LOCK,), joins_previous=True
        ),
    ]


def _concurrent_index(table: m.Table, index: m.Index) -> _Step:
    hazards: tuple[Hazard, ...] = (Hazard.INDEX_BUILD,)
    if index.unique:
        hazards += (Hazard.MAY_FAIL_ON_EXISTING_DATA,)
    sql = r.create_index(table, index, concurrently=True)
    return _Step(
        sql, hazards, transactional=False, long=True, cleanup_sql=_drop_index(table, index.name)
    )


def _partitioned(steps: list[Step], *, unique: bool = False) -> list[_Step]:
    """``plan_partitioned``'s steps, each with its hazards and how it runs."""
    return [_Step(sql, *shape(kind, unique=unique), cleanup_sql=undo) for kind, sql, undo in steps]


def _drop_index(table: m.Table, name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {quote_ident(table.schema)}.{quote_ident(name)}"


def _add_key(change: ch.AddKeyConstraint) -> list[_Step]:
    table, key = change.table, change.constraint
    steps = []
    if not change.index_exists:
        index = m.Index(
            name=key.name,
            unique=True,
            elements=tuple(m.IndexElement(column=c) for c in key.columns),
        )
        nnd = isinstance(key, m.UniqueConstraint) and key.nulls_not_distinct
        sql = r.create_index(table, index, concurrently=True, nulls_not_distinct=nnd)
        steps.append(
            _Step(
                sql,
                (Hazard.INDEX_BUILD, Hazard.MAY_FAIL_ON_EXISTING_DATA),
                transactional=False,
                long=True,
                cleanup_sql=_drop_index(table, key.name),
            )
        )
    kind = "PRIMARY KEY" if isinstance(key, m.PrimaryKey) else "UNIQUE"
    name = quote_ident(key.name)
    sql = f"ALTER TABLE {table.qualified} ADD CONSTRAINT {name} {kind} USING INDEX {name}"
    steps.append(_Step(sql, (Hazard.STRONG_LOCK,)))
    return steps


def _not_valid_then_validate(table: m.Table, name: str, clause: str) -> list[_Step]:
    """Add without scanning, then validate in its own transaction. If the data fails validation,
    the constraint this heal just added is dropped again: a heal never stops halfway."""
    add = _Step(f"ALTER TABLE {table.qualified} ADD {clause} NOT VALID", (Hazard.STRONG_LOCK,))
    validate = _validate(table, name)
    validate.cleanup_sql = (
        f"ALTER TABLE {table.qualified} DROP CONSTRAINT IF EXISTS {quote_ident(name)}"
    )
    return [add, validate]


def _validate(table: m.Table, name: str) -> _Step:
    sql = f"ALTER TABLE {table.qualified} VALIDATE CONSTRAINT {quote_ident(name)}"
    return _Step(sql, (Hazard.VALIDATION_SCAN, Hazard.MAY_FAIL_ON_EXISTING_DATA), long=True)
