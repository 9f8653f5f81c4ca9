"""The handover, at contract, of an index whose name a rename keeps. Pure.

A column renamed (``renamed_from``) whose index keeps its name in the new manifest (an explicitly
named ``Index``) cannot have that name on the new column while old replicas use the old column's
index: the heal builds the new column's index CONCURRENTLY under
:func:`~worker.engine.expand_parts.handover_index` (``<name>__sh_rn``). Contract, once no
instance uses the old shape, drops the old column's index and gives the new one its name, in the
transaction that drops the sync trigger (whether the old column is then dropped or kept). A
unique constraint is handed over likewise: dropped, and added again ``USING INDEX`` the one
built (which takes the constraint's name).
"""

from __future__ import annotations

from dataclasses import replace

from contracts.identifiers import qualified, quote_ident
from worker.engine import model
from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import Step, handover_index, table_name
from worker.engine.expand_sql import render

__all__ = ["contract_steps", "handover"]


def contract_steps(m: ColumnMigration, table: model.Table | None) -> tuple[Step, ...]:
    """``m``'s contract steps, the handover in the first (the one dropping the sync trigger)."""
    first, *rest = render(m).contract
    commands = handover(m, table)
    if commands:
        first = replace(first, sql="; ".join((first.sql, *commands)))
    return (first, *rest)


def handover(m: ColumnMigration, table: model.Table | None) -> tuple[str, ...]:
    """The commands that hand the indexes of ``m``'s old column over to the new one, read from
    ``table`` (the catalog's): those whose ``<name>__sh_rn`` is built, valid, on the new column."""
    if table is None or m.in_place or m.old_column is None:
        return ()
    by_name = {i.name: i for i in table.indexes}
    unique = {u.name for u in table.unique}
    out: list[str] = []
    for index in table.indexes:
        built = by_name.get(handover_index(index.name))
        if built is None or not built.valid or built.constraint is not None:
            continue
        if m.old_column not in _columns(index) or m.new_column not in _columns(built):
            continue
        if index.constraint is None:
            out.append(f"DROP INDEX {qualified(m.schema, index.name)}")
            out.append(f"ALTER INDEX {qualified(m.schema, built.name)} "
                       f"RENAME TO {quote_ident(index.name)}")  # fmt: skip
        elif index.constraint in unique:
            name = quote_ident(index.constraint)
            out.append(f"ALTER TABLE {table_name(m)} DROP CONSTRAINT {name}")
            out.append(f"ALTER TABLE {table_name(m)} ADD CONSTRAINT {name} UNIQUE "
                       f"USING INDEX {quote_ident(built.name)}")  # fmt: skip
    return tuple(out)


def _columns(index: model.Index) -> set[str | None]:
    return {e.column for e in index.elements}
