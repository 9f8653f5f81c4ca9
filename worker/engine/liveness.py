"""Which manifests are live, and when a migration may be contracted. Pure.

Every boot the gate sees is an instance of a manifest: it holds a *lease* (service, instance)
that says which registered migrations that manifest still uses in their *old shape*
(:func:`uses_old_shape`). A lease lasts ``lease_ttl_s`` after the boot or the instance's last
heartbeat, and ends when the instance says it stopped. A migration whose expand is complete is
*contractable* (:func:`decide`) when no unexpired lease uses its old shape and the last such
lease ended more than ``grace_s`` ago.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from worker.engine.expand import ColumnMigration, MigrationKind
from worker.engine.model import Realm

__all__ = ["Decision", "Lease", "decide", "old_shape_ids", "uses_new_shape", "uses_old_shape"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """One running instance of a manifest, as last seen."""

    service: str
    instance: str
    manifest_hash: str
    #: ids of the registered migrations whose old shape this instance's manifest uses
    old_shape: frozenset[str]
    #: ids of the registered migrations whose new shape it declares (its service owns them)
    new_shape: frozenset[str] = frozenset()
    expires_at: datetime
    #: when the instance said it stopped (None: it did not)
    ended_at: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.ended_at is None and self.expires_at > now

    @property
    def end(self) -> datetime:
        """When the lease ended, or will end unless renewed."""
        return self.ended_at if self.ended_at is not None else self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    contractable: bool
    reason: str


def uses_old_shape(desired: Realm, m: ColumnMigration) -> bool:
    """True when ``desired`` (a manifest) is a version from before ``m``: it declares the old
    column (the old type, for a change in place), or, for a backfill, the table without the new
    column (its inserts rely on the trigger to fill it)."""
    table = desired.table(m.schema, m.table)
    if table is None:
        return False
    if m.kind is MigrationKind.BACKFILL:
        return table.column(m.new_column) is None
    old = table.column(m.old_column) if m.old_column is not None else None
    if old is None:
        return False
    return not m.in_place or old.type != m.new_type


def uses_new_shape(desired: Realm, m: ColumnMigration) -> bool:
    """True when ``desired`` declares the migration's new column with its new type."""
    table = desired.table(m.schema, m.table)
    column = table.column(m.new_column) if table is not None else None
    return column is not None and column.type == m.new_type


def old_shape_ids(desired: Realm, migrations: Iterable[ColumnMigration]) -> frozenset[str]:
    return frozenset(m.id for m in migrations if uses_old_shape(desired, m))


def decide(
    migration_id: str, leases: Iterable[Lease], *, now: datetime, grace_s: float
) -> Decision:
    """May the migration (its expand complete) be contracted now?"""
    users = [lease for lease in leases if migration_id in lease.old_shape]
    live = sorted(f"{lease.service}/{lease.instance}" for lease in users if lease.live(now))
    if live:
        shown = ", ".join(live[:5]) + (f" and {len(live) - 5} more" if len(live) > 5 else "")
        return Decision(contractable=False, reason=f"still used in its old shape by {shown}")
    if users:
        last = max(lease.end for lease in users)
        until = last + timedelta(seconds=grace_s)
        if until > now:
            return Decision(
                contractable=False,
                reason=f"the last instance using its old shape ended at {last.isoformat()}; "
                f"contract waits for the grace period, until {until.isoformat()}",
            )
    return Decision(contractable=True, reason="no live instance uses its old shape")
