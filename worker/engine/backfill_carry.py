"""The runner's part in carrying what uses the old column of an in-place swap (I/O).

Three enforce steps (:class:`~worker.engine.expand_parts.Carry`):

- :func:`in_key_tablespace`: the new primary key's unique index is built where the old key's
  index is (a tablespace the plan cannot see: it is read when the step runs).

- :func:`prepare_indexes`, outside any transaction and without the heal lock (it scans): each
  index on the old column gets its equivalent on the shadow column, built ``CONCURRENTLY``;
  an INVALID one (an interrupted or failed build) is dropped and built again.
- :func:`swap_carrying`, in the swap's one short transaction under ``lock_timeout``: lock the
  table, read the dependents into values, refuse what cannot be carried, drop what is re-created,
  run the swap, create again. An index made on the old column after the prepare step has no
  equivalent yet: :class:`Unprepared` sends the runner back to the prepare step.
"""

from __future__ import annotations

from contracts.identifiers import qualified, quote_ident
from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration
from worker.engine.expand_dependents import (
    Index,
    after_swap,
    before_swap,
    prepared_index_sql,
    prepared_name,
    refusal,
)
from worker.engine.expand_dependents_read import read_dependents
from worker.engine.expand_parts import physical_column, table_name

__all__ = [
    "BUILD_ATTEMPTS",
    "Unmovable",
    "Unprepared",
    "in_key_tablespace",
    "prepare_indexes",
    "swap_carrying",
]

#: builds of one prepared index that may end INVALID before the migration stops
BUILD_ATTEMPTS = 3


class Unprepared(Exception):
    """An index on the old column has no valid equivalent on the shadow yet."""


class Unmovable(Exception):
    """Objects use the old column that the swap cannot carry; the message names them."""


async def in_key_tablespace(conn: Connection, m: ColumnMigration, sql: str) -> str:
    """``sql`` (a CREATE INDEX) placed in the tablespace of the table's primary key index, when
    it has one of its own (``pg_get_indexdef`` and the plan leave it out)."""
    space = await conn.fetchval(
        """SELECT t.spcname::text FROM pg_constraint c
             JOIN pg_class i ON i.oid = c.conindid
             JOIN pg_tablespace t ON t.oid = i.reltablespace
            WHERE c.conrelid = $1::regclass AND c.contype = 'p'""",
        table_name(m),
    )
    return sql if space is None else f"{sql} TABLESPACE {quote_ident(space)}"


async def prepare_indexes(conn: Connection, m: ColumnMigration) -> None:
    """Build the equivalent of each index on the old column on the shadow, concurrently."""
    assert m.old_column is not None  # an in-place change has an old column
    if not await _shadow_exists(conn, m):
        return  # swapped already
    dependents = await read_dependents(conn, table_name(m), m.old_column)
    for index in dependents.indexes:
        await _build(conn, m, index)


async def _build(conn: Connection, m: ColumnMigration, index: Index) -> None:
    assert m.old_column is not None
    name = qualified(m.schema, prepared_name(index))
    for _ in range(BUILD_ATTEMPTS):
        valid = await _valid(conn, name)
        if valid:
            return
        if valid is not None:  # INVALID: IF NOT EXISTS would keep it
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        await conn.execute(prepared_index_sql(index, m.old_column, physical_column(m)))
    if not await _valid(conn, name):
        raise Unmovable(
            f"the index {name} built on {physical_column(m)} to replace {index.name} stayed "
            f"INVALID after {BUILD_ATTEMPTS} builds; drop it and see why it fails "
            f"({prepared_index_sql(index, m.old_column, physical_column(m))})"
        )


async def _valid(conn: Connection, name: str) -> bool | None:
    """Whether the index ``name`` is valid; None when there is none."""
    valid = await conn.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", name
    )
    return None if valid is None else bool(valid)


async def swap_carrying(conn: Connection, m: ColumnMigration, swap: str, then: str) -> None:
    """``swap`` (the DO block), with the dependents dropped before it and re-created after it;
    in the caller's transaction, whose ``lock_timeout`` bounds the wait for the table's lock.
    ``then``: how to go on once what cannot be carried is dropped."""
    assert m.old_column is not None
    table = table_name(m)
    await _lock(conn, table, m.old_column)
    if not await _shadow_exists(conn, m):
        return  # swapped already (the record of the step was lost with a crash)
    dependents = await read_dependents(conn, table, m.old_column, physical_column(m))
    if dependents.unmovable:
        raise Unmovable(refusal(dependents.unmovable, table, m.old_column, then))
    missing = [
        index.name
        for index in dependents.indexes
        if not await _valid(conn, qualified(m.schema, prepared_name(index)))
    ]
    if missing:
        raise Unprepared(", ".join(missing))
    for command in before_swap(dependents, m.schema, m.table):
        await conn.execute(command)
    await conn.execute(swap)
    for command in after_swap(dependents, m.schema, m.table):
        await conn.execute(command)


#: the tables whose foreign keys reference the table, then the views that use the column
#: (LOCK TABLE on a view also locks the tables it reads): everything the swap changes besides
#: the table itself, in the order writers take them — a writer of a referencing table locks it,
#: then the table its foreign key check reads
_LOCK_FIRST = """
SELECT name FROM (
    SELECT DISTINCT conrelid::regclass::text AS name, 1 AS rank FROM pg_constraint
     WHERE contype = 'f' AND confrelid = $1::regclass AND conrelid <> $1::regclass
    UNION
    SELECT DISTINCT r.ev_class::regclass::text, 2 FROM pg_depend d
      JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class c ON c.oid = r.ev_class
     WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
       AND d.refobjid = $1::regclass AND c.relkind = 'v'
       AND d.refobjsubid = (SELECT attnum FROM pg_attribute WHERE attrelid = $1::regclass
                              AND attname = $2)
) AS l ORDER BY rank, name"""

#: waits for a lock at most half the deadlock_timeout: a writer that queued behind the swap
#: before the swap began to wait is never the one the deadlock check rolls back (the swap gives
#: up first, and is retried)
_SHORT_WAIT = """
SELECT set_config('lock_timeout', (CASE WHEN l.setting::int = 0 THEN d.setting::int / 2
                  ELSE least(l.setting::int, d.setting::int / 2) END)::text, true)
  FROM pg_settings l, pg_settings d
 WHERE l.name = 'lock_timeout' AND d.name = 'deadlock_timeout'"""


async def _lock(conn: Connection, table: str, old: str) -> None:
    """Every lock the swap needs, before it changes anything, in one statement: the
    referencing tables and the views, then the table."""
    first = [r["name"] for r in await conn.fetch(_LOCK_FIRST, table, old)]
    await conn.fetchval(_SHORT_WAIT)
    await conn.execute(f"LOCK TABLE {', '.join([*first, table])} IN ACCESS EXCLUSIVE MODE")


async def _shadow_exists(conn: Connection, m: ColumnMigration) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = $1::regclass"
            " AND attname = $2 AND NOT attisdropped)",
            table_name(m),
            physical_column(m),
        )
    )
