"""Why a contract waits (:mod:`worker.engine.contract_reason`). Pure, table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from tests.engine.test_liveness import FILL, LONG_AGO, NOW, RENAME, lease
from worker.engine.contract_reason import (
    ContractState,
    Expand,
    Liveness,
    contract_reason,
)
from worker.engine.expand import ColumnMigration
from worker.engine.lease_store import ContractRecord
from worker.engine.liveness import Lease, Wait

EXPANDED = Expand(state="expanded", rows_done=10)
NOT_YET = None
LIVE = Liveness(leases=(), now=NOW, tracked_since=LONG_AGO, grace_s=60, lease_ttl_s=3600)
TRIGGER_GONE = ContractRecord(migration_id="m", sync_dropped_at=NOW, column_dropped_at=None,
                              column_kept=None)  # fmt: skip
KEPT = replace(TRIGGER_GONE, column_kept="public.users.name: retired, unused, kept")


def leased(*leases: Lease) -> Liveness:
    return replace(LIVE, leases=leases)


@pytest.mark.parametrize(
    ("migration", "expand", "contracted", "liveness", "approved", "state", "wait", "says"),
    [
        (RENAME, Expand(state="unregistered"), NOT_YET, LIVE, None,
         ContractState.WAITING, Wait.BACKFILL, "waiting: expand not applied yet"),
        (RENAME, Expand(state="backfilling", rows_done=250, rows_estimate=1000), NOT_YET, LIVE,
         None, ContractState.WAITING, Wait.BACKFILL,
         "waiting: backfill running 25% (250 of about 1000 row(s))"),
        (RENAME, Expand(state="backfilling", rows_done=5000, rows_estimate=1000), NOT_YET, LIVE,
         None, ContractState.WAITING, Wait.BACKFILL, "backfill running 99%"),  # a stale estimate
        (RENAME, Expand(state="backfilling", rows_done=7), NOT_YET, LIVE, None,
         ContractState.WAITING, Wait.BACKFILL, "backfill running (7 row(s) so far)"),
        (RENAME, Expand(state="enforcing", rows_done=7), NOT_YET, LIVE, None,
         ContractState.WAITING, Wait.BACKFILL, "backfill done (7 row(s)); enforcing NOT NULL"),
        (RENAME, Expand(state="backfilling", error="rows 3 are NULL: fix them"), NOT_YET, LIVE,
         None, ContractState.WAITING, Wait.STOPPED, "waiting: backfill stopped: rows 3 are NULL"),
        (RENAME, EXPANDED, NOT_YET, replace(LIVE, tracked_since=None), None,
         ContractState.WAITING, Wait.TRACKING, "no lease recorded yet"),
        (RENAME, EXPANDED, NOT_YET, replace(LIVE, tracked_since=NOW - timedelta(seconds=60)),
         None, ContractState.WAITING, Wait.TRACKING,
         "booted before leases were recorded may run until 2026-12-02T09:59:00+00:00"),
        (RENAME, EXPANDED, NOT_YET, leased(lease(expires=120)), None,
         ContractState.WAITING, Wait.LEASE,
         "waiting: service app instance i-1 with the old shape holds a lease until "
         "2026-12-02T09:02:00+00:00; then a grace period of 60 s"),
        (RENAME, EXPANDED, NOT_YET, leased(lease(expires=120), replace(lease(expires=30),
         instance="i-2")), None, ContractState.WAITING, Wait.LEASE,
         "instance i-1 with the old shape holds a lease until 2026-12-02T09:02:00+00:00 "
         "(and 1 more instance(s))"),
        (RENAME, EXPANDED, NOT_YET, leased(lease(expires=-10)), None,
         ContractState.WAITING, Wait.GRACE, "waiting: grace period until 2026-12-02T09:00:50"),
        (RENAME, EXPANDED, NOT_YET, leased(lease(old=False)), None, ContractState.READY, None,
         "drops the trigger and the old column if column-drop is approved"),
        (RENAME, EXPANDED, NOT_YET, leased(lease(expires=-100)), False, ContractState.READY,
         None, "keeps the old column until column-drop is approved"),
        (FILL, EXPANDED, NOT_YET, LIVE, None, ContractState.READY, None,
         "ready: no live instance uses the old shape; the next round drops the trigger"),
        (RENAME, EXPANDED, KEPT, LIVE, None, ContractState.RETIRED_KEPT, Wait.APPROVAL,
         "waiting: approval for column-drop needed (access policy: grant the hazard column-drop "
         "on this database to the service that owns public.users); the trigger is dropped and "
         "name is kept, unused"),
        (RENAME, EXPANDED, KEPT, LIVE, True, ContractState.READY, None,
         "the next contract round drops the old column"),
        (RENAME, EXPANDED, TRIGGER_GONE, LIVE, None, ContractState.READY, None,
         "the next contract round drops the old column"),
        (RENAME, EXPANDED, replace(KEPT, column_dropped_at=NOW), LIVE, None,
         ContractState.DONE, None, "done: the trigger and the old column are dropped"),
        (FILL, EXPANDED, TRIGGER_GONE, LIVE, None, ContractState.DONE, None,
         "done: the trigger is dropped"),
    ],
)  # fmt: skip
def test_contract_reason(
    migration: ColumnMigration,
    expand: Expand,
    contracted: ContractRecord | None,
    liveness: Liveness,
    approved: bool | None,
    state: ContractState,
    wait: Wait | None,
    says: str,
) -> None:
    found = contract_reason(migration, expand, contracted, liveness, drop_approved=approved)
    assert (found.state, found.wait) == (state, wait)
    assert says in found.reason


def test_a_live_lease_holds_contract_even_after_the_grace_of_an_ended_one() -> None:
    ended = replace(lease(expires=3600, ended=-1000), instance="i-0")
    found = contract_reason(RENAME, EXPANDED, NOT_YET, leased(ended, lease(expires=5)))
    assert (found.wait, "instance i-1" in found.reason) == (Wait.LEASE, True)
