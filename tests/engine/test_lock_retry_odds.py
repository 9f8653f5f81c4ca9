"""The retry schedule of lock timeouts against a table that another session keeps busy with
back-to-back long transactions (the fault suite's scenario, issue 14): each attempt waits at most
``lock_timeout`` in the lock queue, so it gets the lock only when a blocking transaction happens
to end inside that window — a chance of ``lock_timeout / transaction length`` per attempt,
whatever the pause before it. What decides whether a heal gets through is how many attempts fit
in the retry budget.

Simulated on a fake clock (no sleeping), with seeded jitter: ``retrying_lock_waits`` itself runs,
only time and the lock are pretend. On the old schedule (pauses growing to 5 s) the default 60 s
budget missed in about one heal in seven; a third parallel CI process made the fault suite's
2-million-row heal miss its foreign key after 33 attempts."""

from __future__ import annotations

import asyncio
import random
import types

import asyncpg
import pytest

from worker.engine import apply
from worker.engine.apply import RetryPolicy, retrying_lock_waits
from worker.errors import LockBudgetExhausted

LOCK_TIMEOUT_S = 0.3
HOLD_S = 3.0  # the other session's transactions, one right after another


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def gets_the_lock(
    policy: RetryPolicy, seed: int, monkeypatch: pytest.MonkeyPatch, hold_s: float = HOLD_S
) -> bool:
    clock = Clock()
    monkeypatch.setattr(apply, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(apply, "asyncio", types.SimpleNamespace(sleep=clock.sleep))
    rng = random.Random(seed)
    monkeypatch.setattr(apply, "random", rng)
    phase = rng.uniform(0, hold_s)  # when the first blocking transaction ends

    async def attempt() -> None:
        until_end = (phase - clock.now) % hold_s
        if until_end <= LOCK_TIMEOUT_S:
            clock.now += until_end
            return
        clock.now += LOCK_TIMEOUT_S
        raise asyncpg.exceptions.LockNotAvailableError("canceling statement due to lock timeout")

    async def run() -> bool:
        try:
            await retrying_lock_waits(attempt, doing="simulated", deadline=policy.budget_s,
                                      retry=policy)  # fmt: skip
        except LockBudgetExhausted:
            return False
        return True

    return asyncio.run(run())


def miss_rate(policy: RetryPolicy, monkeypatch: pytest.MonkeyPatch, runs: int = 2000) -> float:
    misses = 0
    for seed in range(runs):
        with monkeypatch.context() as patch:
            misses += not gets_the_lock(policy, seed, patch)
    return misses / runs


def test_the_default_schedule_gets_a_lock_between_back_to_back_transactions_within_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With p = 0.1 a try, 60 s must hold enough tries that fewer than 1 heal in 100 misses."""
    assert miss_rate(RetryPolicy(), monkeypatch) < 0.01


def test_the_fault_suites_budget_leaves_practically_no_chance_to_miss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert miss_rate(RetryPolicy(budget_s=120.0), monkeypatch) < 0.001


def test_a_blocker_longer_than_the_budget_exhausts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulation can fail: a 1,000 s transaction is outwaited only when it happens to end
    within the budget's first minute (about 6 in 100)."""
    misses = 0
    for seed in range(100):
        with monkeypatch.context() as patch:
            misses += not gets_the_lock(RetryPolicy(), seed, patch, hold_s=1_000.0)
    assert misses >= 85
