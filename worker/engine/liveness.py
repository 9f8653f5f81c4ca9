"""Which manifests are live, and when a migration may be contracted. Pure.

Every boot the gate sees is an instance of a manifest: it holds a *lease* (service, instance)
on that manifest's *shape* (every column it declares, with its type: :func:`shape_of`). A
migration registered after the boot is judged against the same shape, so an old replica that
booted before the new version's expand still holds the old shape (:func:`uses_old_shape`). A
lease lasts ``lease_ttl_s`` after the boot or the instance's last
heartbeat, and ends when the instance says it stopped. A migration whose expand is complete is
*contractable* (:func:`decide`) when no unexpired lease uses its old shape and the last such
lease ended more than ``grace_s`` ago.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.model import Realm

__all__ = [
    "Decision",
    "Lease",
    "Shape",
    "Wait",
    "decide",
    "shape_of",
    "uses_new_shape",
    "uses_old_shape",
]

#: (schema, table, column, type) of every column a manifest declares
Shape = frozenset[tuple[str, str, str, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """One running instance of a manifest, as last seen."""

    service: str
    instance: str
    manifest_hash: str
    #: the columns its manifest declares
    shape: Shape
    expires_at: datetime
    #: when the instance said it stopped (None: it did not)
    ended_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    @property
    def end(self) -> datetime:
        """When the lease ended, or will end unless renewed."""
        return self.ended_at if self.ended_at is not None else self.expires_at


class Wait(StrEnum):
    """Why a contract waits: a closed set (a metric's label values)."""

    BACKFILL = "backfill"  # the expand is not complete: backfill or enforce still runs
    STOPPED = "stopped"  # the backfill stopped on an error a person must fix
    TRACKING = "tracking"  # leases are recorded only recently: older instances may still run
    LEASE = "lease"  # a live instance uses the old shape
    GRACE = "grace"  # the grace period after the last such instance ended
    APPROVAL = "approval"  # the old column stays until column-drop is approved


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    contractable: bool
    reason: str
    #: why it waits (None: contractable)
    wait: Wait | None = None
    #: when the wait ends unless a lease is renewed (None: contractable)
    until: datetime | None = None
    #: the live leases using the old shape, soonest ending first
    holders: tuple[Lease, ...] = ()


def shape_of(desired: Realm) -> Shape:
    return frozenset((t.schema, t.name, c.name, c.type) for t in desired.tables for c in t.columns)


def _columns(shape: Shape, m: ColumnMigration) -> dict[str, str] | None:
    """The table's declared columns → types, or None when the manifest has no such table."""
    found = {c: ty for s, t, c, ty in shape if (s, t) == (m.schema, m.table)}
    return found or None


def uses_old_shape(shape: Shape, m: ColumnMigration) -> bool:
    """True when ``shape`` (a manifest's) is of a version from before ``m``: it declares the
    old column (the old type, for a change in place), or, for a backfill, the table without the
    new column (its inserts rely on the trigger to fill it)."""
    columns = _columns(shape, m)
    if columns is None:
        return False
    if m.kind is MigrationKind.BACKFILL:
        return m.new_column not in columns
    old = columns.get(m.old_column) if m.old_column is not None else None
    if old is None:
        return False
    return not m.in_place or old != m.new_type


def uses_new_shape(shape: Shape, m: ColumnMigration) -> bool:
    """True when ``shape`` declares the migration's new column with its new type."""
    return (_columns(shape, m) or {}).get(m.new_column) == m.new_type


def decide(
    m: ColumnMigration,
    leases: Iterable[Lease],
    *,
    now: datetime,
    grace_s: float,
    tracked_since: datetime,
    lease_ttl_s: float,
) -> Decision:
    """May the migration (its expand complete) be contracted now? ``tracked_since``: when the
    worker began recording leases; an instance that booted before holds none, so it is presumed
    to run (in any shape) until a lease of its own would have expired."""
    untracked_until = tracked_since + timedelta(seconds=lease_ttl_s)
    if untracked_until > now:
        why = (f"leases are recorded since {tracked_since.isoformat()}: instances that booted "
               f"before may run until {untracked_until.isoformat()}")  # fmt: skip
        return _wait(why, Wait.TRACKING, untracked_until)
    users = [lease for lease in leases if uses_old_shape(lease.shape, m)]
    holders = tuple(sorted((u for u in users if u.live(now)), key=lambda u: (u.end, u.service)))
    if holders:
        live = sorted(f"{lease.service}/{lease.instance}" for lease in holders)
        shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        last = max(lease.end for lease in holders)
        return _wait(f"still used in its old shape by {shown}", Wait.LEASE, last, holders)
    if users:
        last = max(lease.end for lease in users)
        until = last + timedelta(seconds=grace_s)
        if until > now:
            why = (
                f"the last instance using its old shape ended at {last.isoformat()}; "
                f"contract waits for the grace period, until {until.isoformat()}"
            )
            return _wait(why, Wait.GRACE, until)
    return Decision(contractable=True, reason="no live instance uses its old shape")


def _wait(reason: str, wait: Wait, until: datetime, holders: tuple[Lease, ...] = ()) -> Decision:
    return Decision(contractable=False, reason=reason, wait=wait, until=until, holders=holders)
