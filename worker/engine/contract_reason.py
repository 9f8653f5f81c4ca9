"""Where a migration's contract stands, and why it waits, in words a person can act on. Pure.

From the migration's progress record (how far expand got), its contracts record (how far contract
got) and the leases (:mod:`worker.engine.liveness`), read at one moment: ``plan``, the heal's
reply, ``replay`` and the worker's metrics all say it through :func:`contract_reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from worker.engine.expand import ColumnMigration
from worker.engine.expand_parts import retired_column
from worker.engine.lease_store import ContractRecord
from worker.engine.liveness import Decision, Lease, Wait, decide

__all__ = ["ContractReason", "ContractState", "Expand", "Liveness", "contract_reason"]


class ContractState(StrEnum):
    """A closed set (a metric's label values)."""

    WAITING = "waiting"  # not contractable yet: ``wait`` says why
    READY = "ready"  # contractable: the worker's next contract round runs it
    RETIRED_KEPT = "retired-kept"  # the trigger is gone; the old column waits for approval
    DONE = "done"  # contracted: trigger and old column gone
    ABANDONED = "abandoned"  # abandoned during expand: nothing to contract


@dataclass(frozen=True, slots=True, kw_only=True)
class Expand:
    """How far the migration's expand got (its progress record)."""

    #: backfilling, enforcing, expanded, abandoned, or unregistered
    state: str
    rows_done: int = 0
    #: the table's estimated rows (pg_class.reltuples; None: not known)
    rows_estimate: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Liveness:
    """The leases and the settings contract decides with, read at ``now``."""

    leases: tuple[Lease, ...]
    now: datetime
    #: since when the database records leases (None: it does not yet)
    tracked_since: datetime | None
    grace_s: float
    lease_ttl_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ContractReason:
    state: ContractState
    wait: Wait | None
    reason: str


def contract_reason(
    m: ColumnMigration,
    expand: Expand,
    contracted: ContractRecord | None,
    liveness: Liveness,
    *,
    drop_approved: bool | None = None,
) -> ContractReason:
    """Where ``m``'s contract stands (``contracted``: its contracts record, None before contract
    began). ``drop_approved``: whether the access policy grants
    column-drop to the service owning the table (None: not known here, e.g. ``plan``)."""
    if contracted is not None and contracted.sync_dropped_at is not None:
        return _contracted(m, contracted, drop_approved)
    if expand.state == "abandoned":
        why = "abandoned: its trigger and new column are dropped; nothing to contract"
        return ContractReason(state=ContractState.ABANDONED, wait=None, reason=why)
    if expand.error is not None:
        return _waiting(Wait.STOPPED, f"backfill stopped: {expand.error}")
    if expand.state != "expanded":
        return _waiting(Wait.BACKFILL, _expanding(expand))
    if liveness.tracked_since is None:
        ttl = f"{liveness.lease_ttl_s:g} s"
        why = f"no lease recorded yet: contract waits one lease TTL ({ttl}) after the first one"
        return _waiting(Wait.TRACKING, why)
    decision = decide(
        m, liveness.leases, now=liveness.now, grace_s=liveness.grace_s,
        tracked_since=liveness.tracked_since, lease_ttl_s=liveness.lease_ttl_s,
    )  # fmt: skip
    if decision.wait is not None:
        return _waiting(decision.wait, _decided(decision, liveness.grace_s))
    return ContractReason(state=ContractState.READY, wait=None, reason=_ready(m, drop_approved))


def _contracted(
    m: ColumnMigration, contracted: ContractRecord, drop_approved: bool | None
) -> ContractReason:
    column = retired_column(m)
    if column is None or contracted.column_dropped_at is not None:
        gone = "the trigger" + (" and the old column are" if column is not None else " is")
        return ContractReason(state=ContractState.DONE, wait=None, reason=f"done: {gone} dropped")
    if contracted.column_kept is None or drop_approved:
        why = "ready: the trigger is dropped; the next contract round drops the old column"
        return ContractReason(state=ContractState.READY, wait=None, reason=why)
    return ContractReason(
        state=ContractState.RETIRED_KEPT, wait=Wait.APPROVAL,
        reason=f"waiting: approval for column-drop needed (access policy: grant the hazard "
        f"column-drop on this database to the service that owns {m.schema}.{m.table}); the "
        f"trigger is dropped and {column} is kept, unused",
    )  # fmt: skip


def _expanding(expand: Expand) -> str:
    if expand.state == "unregistered":
        return "expand not applied yet: the next heal of this manifest runs it"
    if expand.state == "enforcing":
        return f"backfill done ({expand.rows_done} row(s)); enforcing NOT NULL or the swap"
    if expand.rows_estimate:
        share = min(99, 100 * expand.rows_done // expand.rows_estimate)
        return (f"backfill running {share}% ({expand.rows_done} of about "
                f"{expand.rows_estimate} row(s))")  # fmt: skip
    return f"backfill running ({expand.rows_done} row(s) so far)"


def _decided(decision: Decision, grace_s: float) -> str:
    until = _at(decision.until)
    if decision.wait is Wait.LEASE:
        last = decision.holders[-1]
        more = len(decision.holders) - 1
        others = f" (and {more} more instance(s))" if more else ""
        return (f"service {last.service} instance {last.instance} with the old shape holds a "
                f"lease until {until}{others}; then a grace period of {grace_s:g} s")  # fmt: skip
    if decision.wait is Wait.GRACE:
        return f"grace period until {until} (the last instance with the old shape ended)"
    return f"instances that booted before leases were recorded may run until {until}"


def _ready(m: ColumnMigration, drop_approved: bool | None) -> str:
    if retired_column(m) is None:
        return "ready: no live instance uses the old shape; the next round drops the trigger"
    column = {
        True: "and the old column (column-drop is approved)",
        False: "and keeps the old column until column-drop is approved",
        None: "and the old column if column-drop is approved (else keeps it)",
    }[drop_approved]
    return f"ready: no live instance uses the old shape; the next round drops the trigger {column}"


def _waiting(wait: Wait, why: str) -> ContractReason:
    return ContractReason(state=ContractState.WAITING, wait=wait, reason=f"waiting: {why}")


def _at(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when is not None else "unknown"
