"""The planned statements of online column migrations (:mod:`worker.engine.expand`). Pure.

Part of :mod:`worker.engine.plan`: the expand commands of an :class:`~worker.engine.changes.
ExpandColumn` (one transaction, run by the heal) and the contract phase of every migration (shown
by ``plan``, not run by the heal). The SQL itself is :mod:`worker.engine.expand_sql`'s.
"""

from __future__ import annotations

from worker.engine import changes as ch
from worker.engine.expand import Phase
from worker.engine.expand_handover import contract_steps
from worker.engine.expand_sql import render
from worker.engine.hazards import Hazard
from worker.engine.statements import PlanSettings, Statement

__all__ = ["contract_statements", "expand_commands"]


def expand_commands(change: ch.ExpandColumn) -> tuple[str, ...]:
    """The expand's commands, in one transaction; none when the catalog shows they ran."""
    return () if change.expanded else render(change.migration).expand


def contract_statements(
    changes: tuple[ch.Change, ...], settings: PlanSettings, first_group: int
) -> tuple[Statement, ...]:
    """The contract steps of each migration among ``changes``, each its own group (with the
    handover of the indexes built under another name that the catalog shows)."""
    migrations = [c for c in changes if isinstance(c, ch.ExpandColumn)]
    out: list[Statement] = []
    for change in migrations:
        for step in contract_steps(change.migration, change.table):
            hazards: tuple[Hazard, ...] = (Hazard.STRONG_LOCK,)
            if step.drops_column:
                hazards += (Hazard.COLUMN_DROP,)
            out.append(
                Statement(
                    sql=step.sql,
                    change=change,
                    hazards=hazards,
                    transactional=step.transactional,
                    group=first_group + len(out),
                    lock_timeout_ms=settings.lock_timeout_ms,
                    statement_timeout_ms=settings.statement_timeout_ms,
                    phase=Phase.CONTRACT,
                )
            )
    return tuple(out)
