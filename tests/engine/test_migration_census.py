"""The counts behind the worker's migration and lease gauges (:mod:`worker.engine.migration_census`).
Pure, table-driven."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.engine.test_liveness import FILL, LONG_AGO, NEW_SHAPE, NOW, RENAME, lease
from worker.engine.backfill_store import Progress
from worker.engine.contract_reason import Liveness
from worker.engine.expand import ColumnMigration
from worker.engine.lease_store import ContractRecord
from worker.engine.liveness import Lease
from worker.engine.migration_census import PHASES, census

LIVE = Liveness(leases=(), now=NOW, tracked_since=LONG_AGO, grace_s=60, lease_ttl_s=3600)


def progress(m: ColumnMigration, state: str = "expanded", error: str | None = None) -> Progress:
    return Progress(migration=m, state=state, stop_key=None, last_key=None, rows_scanned=0,
                    rows_touched=0, batches=0, enforce_steps=0, error=error, registered_at=NOW,
                    updated_at=NOW, finished_at=None)  # fmt: skip


def record(m: ColumnMigration, *, dropped: bool = False, kept: str | None = None) -> ContractRecord:
    return ContractRecord(migration_id=m.id, sync_dropped_at=NOW,
                          column_dropped_at=NOW if dropped else None, column_kept=kept)  # fmt: skip


@pytest.mark.parametrize(
    ("items", "records", "leases", "phase", "wait"),
    [
        ([progress(RENAME, "backfilling")], {}, (), "backfilling", "backfill"),
        ([progress(RENAME, "enforcing")], {}, (), "enforcing", "backfill"),
        ([progress(RENAME, "backfilling", "fix it")], {}, (), "stopped", "stopped"),
        ([progress(RENAME)], {}, (lease(),), "contract-waiting", "lease"),
        ([progress(RENAME)], {}, (lease(expires=-5),), "contract-waiting", "grace"),
        ([progress(RENAME)], {}, (), "contract-ready", None),
        ([progress(RENAME)], {RENAME.id: record(RENAME, kept="kept")}, (), "retired-kept",
         "approval"),
        ([progress(RENAME)], {RENAME.id: record(RENAME, dropped=True)}, (), "contracted", None),
        ([progress(FILL)], {FILL.id: record(FILL)}, (), "contracted", None),
    ],
)  # fmt: skip
def test_each_migration_is_counted_in_one_phase_and_at_most_one_wait(
    items: list[Progress],
    records: dict[str, ContractRecord],
    leases: tuple[Lease, ...],
    phase: str,
    wait: str | None,
) -> None:
    found = census(items, records, replace(LIVE, leases=leases), lambda m: None)
    assert set(found.phases) == set(PHASES)  # every phase, zeros included
    assert {p: n for p, n in found.phases.items() if n} == {phase: 1}
    assert {w: n for w, n in found.waiting.items() if n} == ({wait: 1} if wait else {})


def test_live_leases_are_counted_by_service_and_shape() -> None:
    """Old: uses the old shape of a migration not yet contracted; ended or expired: not live."""
    leases = (
        lease(), replace(lease(), instance="i-2"), replace(lease(old=False), service="web"),
        replace(lease(), service="gone", ended_at=NOW), replace(lease(expires=-1), service="x"),
    )  # fmt: skip
    live = replace(LIVE, leases=leases)
    assert census([progress(RENAME)], {}, live, lambda m: None).leases == {
        ("app", "old"): 2, ("web", "current"): 1,
    }  # fmt: skip
    contracted = {RENAME.id: record(RENAME, dropped=True)}
    assert census([progress(RENAME)], contracted, live, lambda m: None).leases == {
        ("app", "current"): 2, ("web", "current"): 1,
    }  # fmt: skip
    assert lease(old=False).shape == NEW_SHAPE


def test_the_approval_is_asked_per_migration() -> None:
    asked: list[str] = []

    def approved(m: ColumnMigration) -> bool:
        asked.append(m.id)
        return True

    kept = {RENAME.id: record(RENAME, kept="kept")}
    found = census([progress(RENAME)], kept, LIVE, approved)
    assert (asked, found.phases["contract-ready"]) == ([RENAME.id], 1)
