"""A database's online migrations and leases, counted for the worker's gauges. Pure.

Every label value is from a closed set (:data:`PHASES`, :class:`~worker.engine.liveness.Wait`,
:data:`SHAPES`) except the service, which the access policy bounds; every phase and wait is
counted, zeros included, so dashboards tell zero from no data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from worker.engine import backfill_store
from worker.engine.backfill_store import Progress
from worker.engine.contract_reason import ContractReason, ContractState, Expand, Liveness
from worker.engine.contract_reason import contract_reason as reason_of
from worker.engine.expand import ColumnMigration
from worker.engine.lease_store import ContractRecord
from worker.engine.liveness import Wait, uses_old_shape

__all__ = ["PHASES", "SHAPES", "Census", "census", "phase"]

#: where a migration stands, as one word: expand's states, then contract's
PHASES = ("backfilling", "enforcing", "stopped", "contract-waiting", "contract-ready",
          "retired-kept", "contracted", "abandoned")  # fmt: skip
#: a live instance's shape: ``old`` uses the old shape of a migration not yet contracted
SHAPES = ("old", "current")

#: may the old column of this migration be dropped (None: not known)
Approval = Callable[[ColumnMigration], bool | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Census:
    #: phase → migrations (every phase)
    phases: Mapping[str, int]
    #: why contract waits → migrations (every :class:`Wait`)
    waiting: Mapping[str, int]
    #: (service, shape) → live instances
    leases: Mapping[tuple[str, str], int]


def phase(progress: Progress, reason: ContractReason) -> str:
    """One of :data:`PHASES`."""
    if progress.state == backfill_store.ABANDONED:
        return progress.state
    if progress.failed:
        return "stopped"
    if progress.state != backfill_store.EXPANDED:
        return progress.state
    return {
        ContractState.WAITING: "contract-waiting",
        ContractState.READY: "contract-ready",
        ContractState.RETIRED_KEPT: "retired-kept",
        ContractState.DONE: "contracted",
        ContractState.ABANDONED: "abandoned",
    }[reason.state]


def census(
    migrations: Sequence[Progress],
    records: Mapping[str, ContractRecord],
    liveness: Liveness,
    approved: Approval,
) -> Census:
    """Count ``migrations`` by phase and by why their contract waits, and the live leases by
    service and shape."""
    phases = Counter(dict.fromkeys(PHASES, 0))
    waiting = Counter(dict.fromkeys((w.value for w in Wait), 0))
    unfinished = []
    for p in migrations:
        m = p.migration
        expand = Expand(state=p.state, rows_done=p.rows_touched, error=p.error)
        reason = reason_of(m, expand, records.get(m.id), liveness, drop_approved=approved(m))
        phases[phase(p, reason)] += 1
        if reason.wait is not None:
            waiting[reason.wait.value] += 1
        record = records.get(m.id)
        if (record is None or not record.contracted) and p.state != backfill_store.ABANDONED:
            unfinished.append(m)
    leases: Counter[tuple[str, str]] = Counter()
    for lease in liveness.leases:
        if lease.live(liveness.now):
            old = any(uses_old_shape(lease.shape, m) for m in unfinished)
            leases[lease.service, "old" if old else "current"] += 1
    return Census(phases=dict(phases), waiting=dict(waiting), leases=dict(leases))
