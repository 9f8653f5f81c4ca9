"""The SQL of one online column migration (:class:`~worker.engine.expand.ColumnMigration`). Pure.

:func:`render` returns every command a migration runs, in the order it runs them:

- ``expand`` (one transaction, in the heal): the new column, nullable, and a BEFORE INSERT OR
  UPDATE row trigger that keeps old and new in step for writers of either version. On INSERT a
  missing new value is computed from the row (``forward``), else the old column is written from
  the new one (``reverse``, when given). On UPDATE, a changed old column recomputes the new one; a
  changed new column rewrites the old one (``reverse``); an untouched row whose new column is
  still NULL gets it computed. So the backfill only has to *touch* each existing row.
- ``backfill_first`` / ``backfill_batch`` (in the background, each its own short transaction):
  touch the next rows by primary key (keyset, ascending) with ``SET new = new``; the trigger
  converts them. Touching, not ``SET new = forward``: the trigger would then see the new column
  change and rewrite the old one from it, which is wrong when ``reverse`` is lossy.
- ``unconverted``: counts the rows the backfill left behind (must be 0 before enforcing).
- ``enforce`` (after the backfill): NOT NULL without a long scan under a strong lock, then the
  in-place swap (:mod:`worker.engine.expand_swap`).
- ``contract``: drop the trigger and its function; retire the old column (a hazard).

Expressions are the manifest's, already checked and re-written by ``contracts``; inside the
trigger their column references are re-written from the parse tree to ``NEW.<column>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast
from pglast.stream import RawStream

from contracts._select import select_target
from contracts.expressions import _walk
from contracts.identifiers import qualified, quote_ident
from worker.engine import expand_swap
from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.expand_column_props import carry_properties
from worker.engine.expand_parts import (
    Step,
    dollar_quoted,
    drop_sync,
    object_name,
    physical_column,
    retired_column,
    table_name,
)

__all__ = ["MigrationSql", "Step", "on_new_row", "recorded_batch", "render"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationSql:
    #: one transaction: the new column, the sync function and its trigger (idempotent)
    expand: tuple[str, ...]
    #: one row, one value: the greatest key now (jsonb text {"<key column>": value, …}), or
    #: NULL for an empty table; the backfill stops there (rows written since went through the
    #: trigger), so that it never chases a table that keeps growing
    backfill_stop_key: str
    #: the first batch; $1 = the stop key, $2 = batch size. Returns no row when no row is left,
    #: else one row (scanned, touched, last_key): last_key is jsonb text like the stop key
    backfill_first: str
    #: the next batch; $1 = the stop key, $2 = the previous batch's last_key, $3 = batch size
    backfill_batch: str
    #: one row, one bigint: rows whose new column the backfill has yet to fill (0 when done)
    unconverted: str
    #: after the backfill: NOT NULL, then the in-place swap; each step its own transaction
    enforce: tuple[Step, ...]
    #: drop the trigger and function; then drop the old column (``drops_column``: a hazard)
    contract: tuple[Step, ...]
    #: the sync function (qualified) and trigger the migration creates
    function: str
    trigger: str


def render(m: ColumnMigration) -> MigrationSql:
    """Every command of ``m``; the same migration renders the same text byte for byte."""
    enforce = _not_null_steps(m) + (expand_swap.steps(m) if m.in_place else ())
    return MigrationSql(
        expand=_expand(m),
        backfill_stop_key=_stop_key(m),
        backfill_first=_batch(m, first=True),
        backfill_batch=_batch(m, first=False),
        unconverted=_unconverted(m),
        enforce=enforce,
        contract=_contract(m),
        function=qualified(m.schema, object_name(m, "sync")),
        trigger=object_name(m, "sync"),
    )


def _expand(m: ColumnMigration) -> tuple[str, ...]:
    table = table_name(m)
    column = quote_ident(physical_column(m))
    function = qualified(m.schema, object_name(m, "sync"))
    body = dollar_quoted(_trigger_body(m))
    return (
        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {m.new_type}",
        *_carried(m),
        # no SET search_path on the function: saving and restoring it on every row halves the
        # backfill's rate; unqualified built-ins resolve in pg_catalog first anyway, and the
        # manifest's expressions qualify what is not built in (they run on engine connections,
        # whose search_path is pg_catalog alone)
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS {body}",
        f"CREATE OR REPLACE TRIGGER {quote_ident(object_name(m, 'sync'))} "
        f"BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()",
    )


def on_new_row(expression: str) -> str:
    """``expression`` with every column reference re-written as ``NEW.<column>`` (PL/pgSQL)."""
    root = select_target(expression, what="migration expression")
    for node in _walk(root):
        if isinstance(node, ast.ColumnRef):
            node.fields = (ast.String(sval="new"), (node.fields or ())[-1])
    return str(RawStream(special_functions=True)(root))


def _trigger_body(m: ColumnMigration) -> str:
    new = f"NEW.{quote_ident(physical_column(m))}"
    fill = f"{new} := {on_new_row(m.forward)};"
    if m.kind is MigrationKind.BACKFILL or m.old_column is None:
        return f"BEGIN\n  IF {new} IS NULL THEN\n    {fill}\n  END IF;\n  RETURN NEW;\nEND"
    old = f"NEW.{quote_ident(m.old_column)}"
    reverse = f"{old} := {on_new_row(m.reverse)};" if m.reverse is not None else None
    lines = ["BEGIN", "  IF TG_OP = 'INSERT' THEN", f"    IF {new} IS NULL THEN", f"      {fill}"]
    if reverse is not None:
        lines += ["    ELSE", f"      {reverse}"]
    lines += ["    END IF;", f"  ELSIF {_changed(m.old_column)} THEN", f"    {fill}"]
    if reverse is not None:
        lines += [f"  ELSIF {_changed(physical_column(m))} THEN", f"    {reverse}"]
    lines += [f"  ELSIF {new} IS NULL THEN", f"    {fill}", "  END IF;", "  RETURN NEW;", "END"]
    return "\n".join(lines)


def _changed(column: str) -> str:
    # compared as text: every type has a text form, not every type has '=' (json, point, xml)
    c = quote_ident(column)
    return f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text"


def _keys(m: ColumnMigration, prefix: str = "") -> str:
    return ", ".join(prefix + quote_ident(k) for k in m.key)


def _row(m: ColumnMigration, prefix: str = "") -> str:
    return f"({_keys(m, prefix)})" if len(m.key) > 1 else _keys(m, prefix)


def _bound(m: ColumnMigration, parameter: str) -> str:
    """A key travelling as jsonb, read back through the table's row type: each key column gets
    its own type without the renderer knowing it."""
    return f"(SELECT {_keys(m)} FROM jsonb_populate_record(NULL::{table_name(m)}, {parameter}))"


def _last_key(m: ColumnMigration, rows: str) -> str:
    """The greatest key of ``rows`` as jsonb text ({"<key column>": value, …})."""
    return f"(SELECT to_jsonb(sh_last.*) FROM {_greatest(m, rows)} AS sh_last)::text"


def _greatest(m: ColumnMigration, rows: str) -> str:
    descending = ", ".join(f"{quote_ident(k)} DESC" for k in m.key)
    return f"(SELECT {_keys(m)} FROM {rows} ORDER BY {descending} LIMIT 1)"


def _batch(m: ColumnMigration, *, first: bool, record: str = "", returns: str = "") -> str:
    """Touch the next rows by key, up to the stop key (the greatest key when the backfill
    started: rows written since went through the trigger). The batch's keys are read from the
    index alone; the update then takes their range, so that it is an index range scan too (a
    join with the batch's keys may be planned as a scan of the whole table). ``record``: more
    data-modifying CTEs run by the same statement (they may read sh_batch, sh_last and
    sh_touched); ``returns``: more columns of its answer."""
    table = table_name(m)
    order = _keys(m)
    column = quote_ident(physical_column(m))
    where = f"{_row(m)} <= {_bound(m, '$1::jsonb')}"
    after = f"{_row(m, 'sh_t.')} > {_bound(m, '$2::jsonb')} AND " if not first else ""
    if not first:
        where += f" AND {_row(m)} > {_bound(m, '$2::jsonb')}"
    limit = "$2" if first else "$3"
    # the aliases are prefixed so that no key column can be mistaken for one
    return (
        f"WITH sh_batch AS (SELECT {order} FROM {table} WHERE {where} "
        f"ORDER BY {order} LIMIT {limit}), "
        f"sh_last AS {_greatest(m, 'sh_batch')}, "
        f"sh_touched AS (UPDATE {table} AS sh_t SET {column} = sh_t.{column} "
        f"WHERE {after}{_row(m, 'sh_t.')} <= (SELECT {order} FROM sh_last) RETURNING 1)"
        f"{record} "
        "SELECT (SELECT count(*) FROM sh_batch) AS scanned, "
        "(SELECT count(*) FROM sh_touched) AS touched, "
        f"(SELECT to_jsonb(sh_last.*) FROM sh_last)::text AS last_key{returns} "
        "WHERE EXISTS (SELECT FROM sh_batch)"
    )


def recorded_batch(m: ColumnMigration, *, first: bool, record: str) -> str:
    """``backfill_first`` (``first``) or ``backfill_batch``, with ``record`` — a
    data-modifying statement over sh_batch, sh_last and sh_touched, whose parameters follow the
    batch's (``$3`` after the first batch's, ``$4`` after a next batch's) — run by the same
    statement: a batch and its progress record are one statement, one round trip, one
    transaction. ``record`` returns a row when it recorded the batch; the answer's ``recorded``
    counts them (0: the migration's row refused the record — it was abandoned)."""
    return _batch(
        m,
        first=first,
        record=f", sh_record AS ({record})",
        returns=", (SELECT count(*) FROM sh_record) AS recorded",
    )


def _stop_key(m: ColumnMigration) -> str:
    return f"SELECT {_last_key(m, table_name(m))}"


def _unconverted(m: ColumnMigration) -> str:
    column = quote_ident(physical_column(m))
    missing = f"{column} IS NULL"
    if not _needs_not_null(m):  # a NULL that the forward expression gives too is converted
        missing += f" AND ({m.forward}) IS NOT NULL"
    return f"SELECT count(*) FROM {table_name(m)} WHERE {missing}"


def _needs_not_null(m: ColumnMigration) -> bool:
    """NOT NULL is enforced when declared, and for a key column swapped in place."""
    return m.not_null or (m.in_place and m.old_column in m.key)


def _not_null_steps(m: ColumnMigration) -> tuple[Step, ...]:
    """CHECK NOT VALID (short lock), VALIDATE (scan under a lock that blocks no writer), SET NOT
    NULL (proved by the valid check: no scan), drop the check."""
    if not _needs_not_null(m):
        return ()
    table = table_name(m)
    column = quote_ident(physical_column(m))
    check = quote_ident(object_name(m, "nn"))
    return (
        Step(
            sql=f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}, "
            f"ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
        ),
        Step(
            sql=f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}",
            long=True,
            proves_converted=f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}",
        ),
        Step(
            sql=f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL; "
            f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check}"
        ),
    )


def _carried(m: ColumnMigration) -> tuple[str, ...]:
    """A new column that replaces an old one under another name (a rename's) gets the old
    one's privileges, settings, comment and labels (:mod:`worker.engine.expand_column_props`):
    at expand, so that a role granted only the old column can use it, and again at contract
    (with the sync trigger's drop: from then on no one uses the old column), for what was
    granted on the old one meanwhile. The shadow of a change in place gets them at
    its swap (:mod:`worker.engine.expand_swap`)."""
    if m.in_place or m.old_column is None:
        return ()
    return (carry_properties(table_name(m), m.old_column, m.new_column),)


def _contract(m: ColumnMigration) -> tuple[Step, ...]:
    steps = [Step(sql="; ".join((*_carried(m), *drop_sync(m))))]
    retired = retired_column(m)
    if retired is not None:
        drop = f"ALTER TABLE {table_name(m)} DROP COLUMN IF EXISTS {quote_ident(retired)}"
        steps.append(Step(sql=drop, drops_column=True))
    return tuple(steps)
