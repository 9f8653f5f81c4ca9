"""Online migrations of a partitioned table: which are refused before their expand.

PostgreSQL clones the sync trigger to every partition (and to partitions made later), the
backfill's updates go through the parent, and a NOT NULL check, a rename or a drop of a column
reach every partition: so a rename, a computed backfill or an in-place change of a column
without an index run as on a plain table. Two things cannot:

- an index built ``CONCURRENTLY`` (PostgreSQL cannot on a partitioned table), which an old column
  with an index needs: the rename's handover index, the in-place change's prepared indexes and
  its key's unique index;
- a column of the partition key (plainly or in a key expression) cannot move to a new column:
  contract could never drop it, and an in-place swap could not rename a new column into the key.

An index counts when its keys, key expressions, INCLUDE columns or predicate read the column.

So a migration on a partitioned table whose old column is indexed or in the partition key is
refused before anything runs (:class:`~worker.errors.PartitionedTable`), in the heal and in
``plan``. :func:`refusal` is pure; :func:`partitioned_refusals` reads the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from worker.engine.connection import Connection
from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import table_name

__all__ = ["partitioned_refusals", "refusal"]

#: $1 = the table (qualified text), $2 = the old column: is it partitioned, the columns its
#: partition key reads (plain or in an expression: PostgreSQL makes each depend internally on the
#: table), and the indexes (the primary key's included) whose keys, expressions, INCLUDE or
#: predicate read the column (each such column is a dependency of the index)
_READ = """
SELECT c.relkind = 'p' AS partitioned,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND c.relkind = 'p'
                AND (EXISTS (SELECT FROM pg_partitioned_table pt WHERE pt.partrelid = c.oid
                                AND a.attnum = ANY (pt.partattrs::int2[]))
                     OR EXISTS (SELECT FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.objsubid = a.attnum AND d.deptype = 'i'
                                   AND d.refclassid = 'pg_class'::regclass
                                   AND d.refobjid = c.oid AND d.refobjsubid = 0))
              ORDER BY a.attnum) AS partition_key,
       ARRAY(SELECT DISTINCT ic.relname::text FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2
              WHERE i.indrelid = c.oid
                AND (a.attnum = ANY (i.indkey::int2[])
                     OR EXISTS (SELECT FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass
                                   AND d.objid = i.indexrelid
                                   AND d.refclassid = 'pg_class'::regclass
                                   AND d.refobjid = c.oid AND d.refobjsubid = a.attnum))
              ORDER BY 1) AS indexes
  FROM pg_class c WHERE c.oid = to_regclass($1)"""


def refusal(
    m: ColumnMigration, *, partition_key: Sequence[str], indexes: Sequence[str]
) -> str | None:
    """Why ``m``, on a partitioned table with ``partition_key`` whose old column has
    ``indexes``, cannot run online (None: it can)."""
    if m.old_column is None:
        return None
    table = f"{m.schema}.{m.table}"
    if m.old_column in partition_key:
        why = (f"{m.old_column} is in its partition key, which cannot move to a new column "
               f"(contract could never drop {m.old_column})")  # fmt: skip
    elif indexes:
        why = (f"{m.old_column} is indexed ({', '.join(indexes)}), and the online migration "
               "builds its indexes CONCURRENTLY, which PostgreSQL cannot on a partitioned "
               "table")  # fmt: skip
    else:
        return None
    return (
        f"the {m.kind.value} of {table}.{m.old_column} to {m.new_column} {m.new_type} cannot run "
        f"online: {table} is a partitioned table and {why}. Leave the column as it is, or "
        "change it by hand in a maintenance window (then deploy a manifest that declares the "
        "result without renamed_from/using)"
    )


async def partitioned_refusals(
    conn: Connection, migrations: Iterable[ColumnMigration]
) -> tuple[tuple[ColumnMigration, str], ...]:
    """Each migration of ``migrations`` on a partitioned table that cannot run online, with why."""
    found = []
    for m in migrations:
        if m.old_column is None:
            continue
        row = await conn.fetchrow(_READ, table_name(m), m.old_column)
        if row is None or not row["partitioned"]:
            continue
        why = refusal(m, partition_key=row["partition_key"], indexes=row["indexes"])
        if why is not None:
            found.append((m, why))
    return tuple(found)
