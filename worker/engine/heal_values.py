"""What a heal is asked with and what it answers: its options, the request it serves, its
outcome and result. Values only; :mod:`worker.engine.heal` makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from opentelemetry import trace

from worker.engine import ledger
from worker.engine.apply import AppliedStatement, RetryPolicy
from worker.engine.changes import Drift
from worker.engine.contract import ContractSettings
from worker.engine.heal_migrations import MigrationStatus
from worker.engine.plan import Plan, PlanSettings
from worker.engine.policy import Blocked, Policy


class Outcome(StrEnum):
    """How a heal ended. Stable strings: they go on the wire in ``schema.healed``."""

    HEALED = "healed"  # changes were applied and the database satisfies the manifest
    UNCHANGED = "unchanged"  # nothing needed doing
    BLOCKED = "blocked"  # needs a person: hazards to approve, or drift to resolve by hand
    REJECTED = "rejected"  # the request itself is invalid (bad manifest, not allowed, …)
    FAILED = "failed"  # an error stopped the heal


@dataclass(frozen=True, slots=True, kw_only=True)
class HealOptions:
    policy: Policy = Policy()
    plan: PlanSettings = PlanSettings()
    retry: RetryPolicy = RetryPolicy()
    lock_wait_s: float = 60.0
    ledger_schema: str = ledger.DEFAULT_SCHEMA
    record: bool = True
    #: the worker's contract grace and lease TTL: the reply says why a contract waits with them
    contract: ContractSettings = ContractSettings()


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestInfo:
    """Who asked, for the ledger and the reply."""

    request_id: str | None = None
    service: str | None = None
    instance: str | None = None
    database_alias: str | None = None
    trace_id: str | None = None
    record_position: str | None = None  # topic:partition:offset of the request record


@dataclass(frozen=True, slots=True, kw_only=True)
class HealResult:
    outcome: Outcome
    manifest_hash: str
    plan: Plan
    applied: tuple[AppliedStatement, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    remaining: Plan | None = None  # after verify, what is still planned (should be empty)
    error_code: str | None = None
    error_message: str | None = None
    lock_wait_s: float = 0.0
    duration_s: float = 0.0
    ledger_id: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    span: trace.SpanContext | None = None  # the heal's span, for links from requests it served
    #: True when another worker finished a heal of this very request while this one waited for
    #: the locks (a rebalance handed its record over mid-heal): the result is that heal's row
    served_before: bool = False
    #: the requests coalesced with this one that another worker had served already: they got
    #: no ledger row here, and are answered from their first finished row
    served_elsewhere: tuple[str, ...] = ()
    #: the manifest's online column migrations not yet contracted, and where each stands: the
    #: heal answers once their expand committed; their backfill and enforce run on
    migrations: tuple[MigrationStatus, ...] = ()

    @property
    def drift(self) -> tuple[Drift, ...]:
        return (self.remaining or self.plan).drift

    @property
    def satisfied(self) -> bool:
        """True when the database satisfies the manifest after this heal."""
        return self.outcome in (Outcome.HEALED, Outcome.UNCHANGED)
