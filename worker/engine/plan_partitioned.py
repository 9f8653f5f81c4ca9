"""An index on a partitioned table, online: PostgreSQL cannot build one ``CONCURRENTLY`` on the
partitioned table itself, so (as its documentation describes) the index is made ``ON ONLY`` the
parent (invalid, no data to read), built ``CONCURRENTLY`` on each partition, and each partition's
index attached to it; the parent's index is valid once every partition's is attached.

Every step is idempotent, so a heal that stopped half-way (a crash, a timeout) is continued by
the next one: the parent's index is seen invalid, and the same steps run again. A partition's
index left invalid by a stopped ``CONCURRENTLY`` build (inspect reads which) is dropped
``CONCURRENTLY`` first. Pure.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum

from contracts.identifiers import qualified
from contracts.naming import default_name
from worker.engine import model as m
from worker.engine import render as r

__all__ = ["StepKind", "partition_index_name", "partitioned_index"]


class StepKind(Enum):
    ONLY = "only"  # CREATE INDEX … ON ONLY parent: quick, locks the parent briefly
    DROP_INVALID = "drop-invalid"  # a partition's index a stopped build left invalid
    BUILD = "build"  # CREATE INDEX CONCURRENTLY on one partition: long, not in a transaction
    ATTACH = "attach"  # ALTER INDEX … ATTACH PARTITION: quick (a no-op when attached)


def partition_index_name(partition: str, index: str) -> str:
    """The name of ``index``'s copy on ``partition`` (``<partition>_<index>_p``, shortened the
    way PostgreSQL shortens names to 63 bytes)."""
    return default_name(partition, (index,), "p")


def partitioned_index(table: m.Table, index: m.Index) -> list[tuple[StepKind, str, str | None]]:
    """The statements that build ``index`` on the partitioned ``table`` online, in order, each
    with the statement that undoes it when it fails (a failed build's invalid index)."""
    steps: list[tuple[StepKind, str, str | None]] = [
        (StepKind.ONLY, r.create_index(table, index, concurrently=False, only=True), None)
    ]
    parent_index = qualified(table.schema, index.name)
    for schema, name in table.partitions:
        own = replace(index, name=partition_index_name(name, index.name))
        target = qualified(schema, own.name)
        partition = m.Table(schema=schema, name=name, columns=())
        if target in table.invalid_partition_indexes:
            steps.append(
                (StepKind.DROP_INVALID, f"DROP INDEX CONCURRENTLY IF EXISTS {target}", None)
            )
        steps += [
            (
                StepKind.BUILD,
                r.create_index(partition, own, concurrently=True),
                f"DROP INDEX CONCURRENTLY IF EXISTS {target}",
            ),
            (StepKind.ATTACH, f"ALTER INDEX {parent_index} ATTACH PARTITION {target}", None),
        ]
    return steps
