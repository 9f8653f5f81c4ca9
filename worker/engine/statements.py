"""The plan's values: the settings it is made with, its statements and the plan itself. Pure.

They live apart from :mod:`worker.engine.plan` (which makes them) so that the renderer, the
policy and apply can use them without importing the planner, and the planner can use the
renderer without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.engine import changes as ch
from worker.engine.expand import ColumnMigration, Phase
from worker.engine.hazards import Hazard

__all__ = ["Plan", "PlanSettings", "Statement"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanSettings:
    """Timeouts, in milliseconds. Every lock_timeout is below its statement_timeout."""

    lock_timeout_ms: int = 2_000
    statement_timeout_ms: int = 60_000
    long_statement_timeout_ms: int = 3_600_000  # index builds, validations, rewrites
    #: How long a CONCURRENTLY index build or drop waits for a lock, above all for the older
    #: transactions it must outlive: its SHARE UPDATE EXCLUSIVE lock, held or awaited, blocks no
    #: reader and no writer, so only the heal waits. Under ``lock_timeout`` it could never finish
    #: while transactions longer than that keep overlapping (each attempt left an INVALID index).
    concurrent_lock_timeout_ms: int = 30_000

    def __post_init__(self) -> None:
        if not 0 < self.lock_timeout_ms < self.statement_timeout_ms:
            raise ValueError("lock_timeout must be positive and below statement_timeout")
        if self.long_statement_timeout_ms < self.statement_timeout_ms:
            raise ValueError("long_statement_timeout must be at least statement_timeout")


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    sql: str
    change: ch.Change
    hazards: tuple[Hazard, ...]
    transactional: bool
    group: int
    lock_timeout_ms: int
    statement_timeout_ms: int
    #: run when the statement fails: a failed CREATE INDEX CONCURRENTLY leaves an INVALID index
    cleanup_sql: str | None = None
    #: expand runs in the heal; contract only once no live instance uses the old shape
    phase: Phase = Phase.EXPAND


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    #: what the heal runs (the expand phase)
    statements: tuple[Statement, ...]
    drift: tuple[ch.Drift, ...] = ()
    changes: tuple[ch.Change, ...] = field(default=())
    #: every online column migration of the manifest not yet contracted: those this plan
    #: expands and those whose expand ran before (their backfill or contract remains)
    migrations: tuple[ColumnMigration, ...] = ()
    #: the contract phase of those migrations: shown, never run by the heal (it waits until no
    #: live instance uses the old shape; dropping a column needs approval)
    contract: tuple[Statement, ...] = ()

    @property
    def expanding(self) -> tuple[ColumnMigration, ...]:
        """The migrations whose expand statements are in this plan: the heal registers them
        for their backfill in the transaction of their expand."""
        return tuple(c.migration for c in self.changes if isinstance(c, ch.ExpandColumn))

    @property
    def empty(self) -> bool:
        """Nothing to run (drift may remain)."""
        return not self.statements

    @property
    def blocking_drift(self) -> tuple[ch.Drift, ...]:
        return tuple(d for d in self.drift if d.blocking)

    def groups(self) -> list[list[Statement]]:
        """Statements grouped into the transactions (or lone statements) they run as."""
        out: list[list[Statement]] = []
        for statement in self.statements:
            if out and out[-1][0].group == statement.group:
                out[-1].append(statement)
            else:
                out.append([statement])
        return out
