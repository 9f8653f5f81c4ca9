"""Functions whose text names a column that is renamed or changed in place (issue 19).

PostgreSQL tracks what a function uses only for SQL functions written in the standard-SQL body
form (``BEGIN ATOMIC`` / ``RETURN``); a PL/pgSQL body, or an SQL function in a string, is text it
never reads until the call. Such a function keeps naming the old column: after a rename's
contract (the old column dropped) or an in-place swap (its type changed under the old name) it
may fail or behave differently. So ``plan`` and the heal's reply warn — never refuse — naming
each function of the table's schema whose text names the column as a whole word: a
conservative search (a comment or a string that names it counts too). :func:`mentions` and
:func:`warning` are pure; :func:`function_warnings` reads the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration, MigrationKind

__all__ = ["function_warnings", "mentions", "warning"]

#: $1 = the schema: functions with a body PostgreSQL does not parse into dependencies (C and
#: internal functions are not text; the sync triggers of online migrations are ours)
_READ = """
SELECT p.oid::regprocedure::text AS name, p.prosrc AS source
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = $1 AND l.lanname NOT IN ('c', 'internal') AND p.prosqlbody IS NULL
   AND p.proname NOT LIKE 'schemaheal\\_sync\\_%'
 ORDER BY 1"""
_READ_BEFORE_14 = _READ.replace("AND p.prosqlbody IS NULL", "")


def mentions(source: str, column: str) -> bool:
    """Does ``source`` name ``column`` as a whole word (letters, digits, ``_`` and ``$`` are
    word characters), ignoring case — or quoted, exactly?"""
    word = rf"(?<![\w$]){re.escape(column)}(?![\w$])"
    if re.search(word, source, re.IGNORECASE):
        return True
    return f'"{column}"' in source


def warning(m: ColumnMigration, functions: Sequence[str]) -> str | None:
    """What to check before ``m`` contracts, given the ``functions`` that name its old column."""
    if not functions or m.old_column is None:
        return None
    what = "renamed" if m.kind is MigrationKind.RENAME else "changed in place"
    return (
        f"{m.schema}.{m.table}.{m.old_column} is {what}, and function(s) "
        f"{', '.join(functions)} name it in their text, which PostgreSQL does not track: check "
        "them (and change them to the new shape) before the contract"
    )


def _concerned(m: ColumnMigration) -> bool:
    return m.old_column is not None and (m.kind is MigrationKind.RENAME or m.in_place)


async def function_warnings(
    conn: Connection, migrations: Iterable[ColumnMigration]
) -> tuple[tuple[ColumnMigration, str], ...]:
    """Each renamed or changed-in-place column of ``migrations`` that functions name, with the
    warning (before PostgreSQL 14 no function has a parsed body)."""
    migrations = [m for m in migrations if _concerned(m)]
    if not migrations:
        return ()
    version = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
    read = _READ if version >= 140000 else _READ_BEFORE_14
    found: list[tuple[ColumnMigration, str]] = []
    by_schema: dict[str, list[tuple[str, str]]] = {}
    for m in migrations:
        if m.schema not in by_schema:
            by_schema[m.schema] = [
                (r["name"], r["source"]) for r in await conn.fetch(read, m.schema)
            ]
        assert m.old_column is not None
        names = [name for name, source in by_schema[m.schema] if mentions(source, m.old_column)]
        text = warning(m, names)
        if text is not None:
            found.append((m, text))
    return tuple(found)
