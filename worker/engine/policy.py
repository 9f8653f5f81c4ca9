"""Policy: which hazards a heal may run without a person's approval. Pure.

Default: everything the planner emits is allowed except a table rewrite on a table whose size on
disk is at or above ``rewrite_threshold_bytes`` (default 32 MiB). Such a plan is *blocked: needs
approval*, with the exact statements; ``heal --allow-hazard table-rewrite`` approves. Any hazard
named in ``require_approval`` is blocked whatever the table size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.engine.hazards import Hazard
from worker.engine.model import Table
from worker.engine.statements import Plan, Statement


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    allow: frozenset[Hazard] = frozenset()
    require_approval: frozenset[Hazard] = frozenset()
    rewrite_threshold_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Blocked:
    """A statement that needs approval, and why."""

    statement: Statement
    hazard: Hazard
    reason: str


def rewritten_tables(plan: Plan) -> set[str]:
    """Qualified names of the tables that statements of ``plan`` would rewrite."""
    return {
        table.qualified
        for s in plan.statements
        if Hazard.TABLE_REWRITE in s.hazards
        and isinstance(table := getattr(s.change, "table", None), Table)
    }


def review(
    plan: Plan, policy: Policy, sizes: Mapping[str, int] | None = None
) -> tuple[Blocked, ...]:
    """The statements of ``plan`` that ``policy`` does not allow to run unattended.

    ``sizes`` (qualified table → bytes, measured) override the catalog's estimates, which stay 0
    until a table is first vacuumed or analysed."""
    blocked = []
    for statement in plan.statements:
        for hazard in statement.hazards:
            reason = _reason(statement, hazard, policy, sizes or {})
            if reason is not None:
                blocked.append(Blocked(statement=statement, hazard=hazard, reason=reason))
    return tuple(blocked)


def _reason(
    statement: Statement, hazard: Hazard, policy: Policy, sizes: Mapping[str, int]
) -> str | None:
    if hazard in policy.allow:
        return None
    approve = f"approve with --allow-hazard {hazard.value}"
    if hazard in policy.require_approval:
        return f"{hazard.value} needs approval by policy; {approve}"
    if hazard is Hazard.COLUMN_DROP:
        return f"drops a column and its data; until approved it stays, unused; {approve}"
    if hazard is Hazard.TABLE_REWRITE:
        table = getattr(statement.change, "table", None)
        size = table.size_bytes if isinstance(table, Table) else 0
        if isinstance(table, Table):
            size = max(size, sizes.get(table.qualified, 0))
        if size >= policy.rewrite_threshold_bytes:
            mib = size / 1024 / 1024
            limit = policy.rewrite_threshold_bytes / 1024 / 1024
            return (
                f"rewrites a {mib:.1f} MiB table (limit {limit:.0f} MiB) under an exclusive "
                f"lock; {approve}"
            )
    return None
