"""The one SQL renderer: DDL fragments and the session settings each statement runs under.

Everything that reaches the database is written here from model values: identifiers through
``quote_ident``, literals through :func:`literal`, types and expressions from their canonical
forms (already re-written from a parse tree by ``contracts``). ``plan --format sql``, the logs and
``apply`` all use :func:`script` / :func:`settings_sql`, so what is shown is what runs.
"""

from __future__ import annotations

from collections.abc import Iterator

from contracts.identifiers import qualified, quote_ident
from worker.engine import model as m
from worker.engine.statements import Plan, Statement


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on for every engine connection)."""
    return "'" + text.replace("'", "''") + "'"


def names(items: tuple[str, ...]) -> str:
    return ", ".join(quote_ident(i) for i in items)


def column_definition(column: m.Column) -> str:
    parts = [quote_ident(column.name), column.type]
    if column.generated is not None:
        parts.append(f"GENERATED ALWAYS AS ({column.generated}) STORED")
    if column.identity is not None:
        ident = column.identity
        options = []
        if ident.start is not None:
            options.append(f"START WITH {ident.start}")
        if ident.increment is not None:
            options.append(f"INCREMENT BY {ident.increment}")
        kind = "ALWAYS" if ident.always else "BY DEFAULT"
        parts.append(
            f"GENERATED {kind} AS IDENTITY" + (f" ({' '.join(options)})" if options else "")
        )
    if column.default is not None:
        parts.append(f"DEFAULT {column.default}")
    if not column.nullable:
        parts.append("NOT NULL")
    return " ".join(parts)


def key_clause(key: m.PrimaryKey | m.UniqueConstraint) -> str:
    if isinstance(key, m.PrimaryKey):
        return f"CONSTRAINT {quote_ident(key.name)} PRIMARY KEY ({names(key.columns)})"
    nnd = " NULLS NOT DISTINCT" if key.nulls_not_distinct else ""
    return f"CONSTRAINT {quote_ident(key.name)} UNIQUE{nnd} ({names(key.columns)})"


def foreign_key_clause(fk: m.ForeignKey) -> str:
    sql = (
        f"CONSTRAINT {quote_ident(fk.name)} FOREIGN KEY ({names(fk.columns)}) "
        f"REFERENCES {qualified(fk.ref_schema, fk.ref_table)} ({names(fk.ref_columns)})"
    )
    if fk.on_delete != "NO ACTION":
        sql += f" ON DELETE {fk.on_delete}"
    if fk.on_update != "NO ACTION":
        sql += f" ON UPDATE {fk.on_update}"
    if fk.deferrable:
        sql += " DEFERRABLE" + (" INITIALLY DEFERRED" if fk.initially_deferred else "")
    return sql


def check_clause(check: m.CheckConstraint) -> str:
    return f"CONSTRAINT {quote_ident(check.name)} CHECK ({check.expression})"


def create_table(table: m.Table) -> str:
    lines = [column_definition(c) for c in table.columns]
    if table.primary_key is not None:
        lines.append(key_clause(table.primary_key))
    lines.extend(key_clause(u) for u in table.unique)
    lines.extend(check_clause(c) for c in table.checks)
    lines.extend(foreign_key_clause(fk) for fk in table.foreign_keys)
    body = ",\n    ".join(lines)
    return f"CREATE TABLE IF NOT EXISTS {table.qualified} (\n    {body}\n)"


def create_index(
    table: m.Table,
    index: m.Index,
    *,
    concurrently: bool,
    nulls_not_distinct: bool = False,
    only: bool = False,
) -> str:
    """``only``: on the partitioned table itself, not its partitions (made invalid until
    every partition's index is attached)."""
    head = "CREATE UNIQUE INDEX" if index.unique else "CREATE INDEX"
    if concurrently:
        head += " CONCURRENTLY"
    keys = ", ".join(_element(e, index.method) for e in index.elements)
    on = "ON ONLY" if only else "ON"
    sql = (
        f"{head} IF NOT EXISTS {quote_ident(index.name)} {on} {table.qualified} "
        f"USING {index.method} ({keys})"
    )
    if index.include:
        sql += f" INCLUDE ({names(index.include)})"
    if nulls_not_distinct:
        sql += " NULLS NOT DISTINCT"
    if index.storage:  # names and values were checked to be plain words and numbers
        sql += " WITH (" + ", ".join(f"{k} = {v}" for k, v in index.storage) + ")"
    if index.where is not None:
        sql += f" WHERE {index.where}"
    return sql


def _element(element: m.IndexElement, method: str) -> str:
    text = quote_ident(element.column) if element.column else f"({element.expression})"
    if element.opclass and element.opclass_schema:
        text += f" {qualified(element.opclass_schema, element.opclass)}"
    elif element.opclass:
        text += f" {quote_ident(element.opclass)}"
    if method == "btree":
        if element.descending:
            text += " DESC"
        if element.nulls_first != element.descending:  # only when not the default for the order
            text += " NULLS FIRST" if element.nulls_first else " NULLS LAST"
    return text


def create_sequence(seq: m.Sequence) -> str:
    parts = [f"CREATE SEQUENCE IF NOT EXISTS {seq.qualified} AS {seq.data_type}"]
    parts.append(f"INCREMENT BY {seq.increment}")
    if seq.min_value is not None:
        parts.append(f"MINVALUE {seq.min_value}")
    if seq.max_value is not None:
        parts.append(f"MAXVALUE {seq.max_value}")
    if seq.start is not None:
        parts.append(f"START WITH {seq.start}")
    parts.append(f"CACHE {seq.cache}")
    parts.append("CYCLE" if seq.cycle else "NO CYCLE")
    return " ".join(parts)


def settings_sql(statement: Statement, *, local: bool) -> list[str]:
    """The SET commands a statement runs under (SET LOCAL inside a transaction)."""
    verb = "SET LOCAL" if local else "SET"
    return [
        f"{verb} lock_timeout = '{statement.lock_timeout_ms}ms'",
        f"{verb} statement_timeout = '{statement.statement_timeout_ms}ms'",
    ]


def group_commands(group: list[Statement]) -> list[tuple[Statement, list[str]]]:
    """Each statement of a group with the SET commands to run just before it: only when its
    timeouts differ from those already in force in the group's transaction."""
    out = []
    in_force: tuple[int, int] | None = None
    local = group[0].transactional
    for statement in group:
        timeouts = (statement.lock_timeout_ms, statement.statement_timeout_ms)
        out.append(
            (statement, settings_sql(statement, local=local) if timeouts != in_force else [])
        )
        in_force = timeouts if local else None
    return out


def script(plan: Plan) -> Iterator[str]:
    """The plan as the exact SQL that apply runs, one command per item, without ';'."""
    for group in plan.groups():
        transactional = group[0].transactional
        if transactional:
            yield "BEGIN"
        for statement, settings in group_commands(group):
            yield from settings
            yield statement.sql
        if transactional:
            yield "COMMIT"
