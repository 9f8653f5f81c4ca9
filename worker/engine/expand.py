"""Expand/contract: the value of one online column migration. Pure.

A migration replaces or fills one column while replicas of the old and the new version of a
service run side by side. *Expand* adds the new column, keeps old and new in step for writers of
either version (triggers), backfills existing rows in short batches by key, then enforces NOT NULL
without a long scan under a strong lock. *Contract* drops the triggers and retires the old column,
only once no live instance uses the old shape.

The planner (:mod:`worker.engine.plan`) makes these values from the manifest's declared intent
(``renamed_from``, ``using``, ``reverse``, ``backfill``) and the catalog; the SQL of each step is
rendered by :mod:`worker.engine.expand_sql`; the backfill is run by :mod:`worker.engine.backfill`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ColumnMigration", "MigrationKind", "Phase"]


class Phase(StrEnum):
    EXPAND = "expand"
    CONTRACT = "contract"


class MigrationKind(StrEnum):
    #: the column was ``renamed_from`` an older one: the new column is filled from it and both
    #: are kept in step (old replicas write the old name, new ones the new name)
    RENAME = "rename"
    #: the column's type changes with a ``using`` conversion (and ``reverse`` for old writers):
    #: under a new name (``renamed_from`` + ``using``), or in place when the old type widens
    #: into the new one (``in_place``: the new column takes the old one's name at the swap)
    CONVERT = "convert"
    #: a new NOT NULL column on a populated table, computed by ``backfill`` from the row's columns
    BACKFILL = "backfill"


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMigration:
    """One column's migration. Expressions are validated SQL over the row's own columns."""

    kind: MigrationKind
    schema: str
    table: str
    #: the table's primary key columns: backfill batches page by them (keyset, ascending)
    key: tuple[str, ...]
    #: the column the new version uses (physical name during expand; see ``in_place``)
    new_column: str
    #: its SQL type, as the renderer writes it (``bigint``, ``character varying(80)``)
    new_type: str
    #: SQL expression over the row's columns giving the new column's value
    forward: str
    #: the column the old version uses; None for BACKFILL
    old_column: str | None = None
    #: SQL expression over the row's columns giving the old column's value, so that rows written
    #: by new replicas stay readable by old ones; None when old replicas never read it back
    reverse: str | None = None
    not_null: bool = False
    #: CONVERT that widens in place: the new column is built under a shadow name and swapped in
    #: for ``old_column`` (same name) at the end of expand; the old one is kept until contract
    in_place: bool = False

    @property
    def id(self) -> str:
        """Stable across workers and restarts: the ledger's progress rows are keyed by it."""
        parts = (
            self.kind,
            self.schema,
            self.table,
            self.new_column,
            self.new_type,
            self.forward,
            self.old_column or "",
            self.reverse or "",
            str(self.in_place),
        )
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
        return f"{self.schema}.{self.table}.{self.new_column}:{digest}"
