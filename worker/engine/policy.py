"""Policy: which hazards a heal may run without a person's approval. Pure.

Default: everything the planner emits is allowed except a table rewrite on a table whose size on
disk is at or above ``rewrite_threshold_bytes`` (default 32 MiB). Such a plan is *blocked: needs
approval*, with the exact statements; ``heal --allow-hazard table-rewrite`` approves. Any hazard
named in ``require_approval`` is blocked whatever the table size.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.engine.hazards import Hazard
from worker.engine.plan import Plan, Statement


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


def review(plan: Plan, policy: Policy) -> tuple[Blocked, ...]:
    """The statements of ``plan`` that ``policy`` does not allow to run unattended."""
    blocked = []
    for statement in plan.statements:
        for hazard in statement.hazards:
            reason = _reason(statement, hazard, policy)
            if reason is not None:
                blocked.append(Blocked(statement=statement, hazard=hazard, reason=reason))
    return tuple(blocked)


def _reason(statement: Statement, hazard: Hazard, policy: Policy) -> str | None:
    if hazard in policy.allow:
        return None
    approve = f"approve with --allow-hazard {hazard.value}"
    if hazard in policy.require_approval:
        return f"{hazard.value} needs approval by policy; {approve}"
    if hazard is Hazard.TABLE_REWRITE:
        size = getattr(getattr(statement.change, "table", None), "size_bytes", 0)
        if size >= policy.rewrite_threshold_bytes:
            mib = size / 1024 / 1024
            limit = policy.rewrite_threshold_bytes / 1024 / 1024
            return (
                f"rewrites a {mib:.1f} MiB table (limit {limit:.0f} MiB) under an exclusive "
                f"lock; {approve}"
            )
    return None
