"""A coalesced group's heal, retried in-process while its error is retryable, and its metrics.

The heal records the group's followers too, under the schemas' locks (see
:func:`worker.engine.heal_record.written`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from worker.engine import ledger
from worker.engine.heal import HealOptions, HealResult, heal
from worker.errors import RETRYABLE_CODES, RetryableError
from worker.observability.metrics import Instruments
from worker.service.boots import coalesced, request_info
from worker.service.requests import Request

__all__ = ["heal_with_retries", "record_metrics", "served_first"]

log = logging.getLogger("schemaheal.gate")


async def heal_with_retries(
    conn: Any, group: list[Request], options: HealOptions, *, attempts: int,
    reconnect: Callable[[], Awaitable[Any]],
) -> tuple[Any, HealResult]:  # fmt: skip
    """Heal ``group``'s manifest for its leader (its followers recorded with it), up to
    ``attempts`` times while the error is retryable, pausing 1, 2, 4… s (at most 10) between;
    ``reconnect`` gives a new connection when the last one closed. The connection last used,
    and the last result."""
    leader, followers = group[0], coalesced(group[1:])
    if leader.hazards:  # approved for this service on this database by the policy
        allowed = options.policy.allow | leader.hazards
        options = replace(options, policy=replace(options.policy, allow=allowed))
    result: HealResult | None = None
    for attempt in range(attempts):
        result = await heal(conn, leader.desired, options=options, request=request_info(leader),
                            followers=followers)  # fmt: skip
        if result.error_code not in RETRYABLE_CODES:
            break
        log.warning("retrying heal", extra={"database": leader.alias, "attempt": attempt + 1,
                                            "error": result.error_message})  # fmt: skip
        await asyncio.sleep(min(2**attempt, 10))
        if conn.is_closed():
            try:
                conn = await reconnect()
            except RetryableError:
                continue
    assert result is not None
    return conn, result


async def served_first(
    conn: Any, group: list[Request], result: HealResult, ledger_schema: str
) -> dict[str, dict[str, Any]]:
    """The first finished rows of ``group``'s requests that another worker served first (a
    rebalance handed their record over): the whole group when it served the leader, else the
    followers it served. They are answered from these rows, as any redelivery would be. Raises
    the database's errors."""
    first = group if result.served_before else [
        r for r in group[1:] if r.request_id in result.served_elsewhere
    ]  # fmt: skip
    if not first:
        return {}
    return await ledger.find_many(conn, [r.request_id for r in first], ledger_schema)


def record_metrics(metrics: Instruments, alias: str, result: HealResult) -> None:
    """A heal's duration, lock wait, statements (by hazard) and blocking drift (by kind)."""
    labels = {"database": alias, "outcome": result.outcome.value}
    metrics.heal_duration.record(result.duration_s, labels)
    metrics.lock_wait.record(result.lock_wait_s, {"database": alias})
    for statement in result.applied:
        for hazard in statement.hazards or ("none",):
            metrics.statements.add(1, {"database": alias, "hazard": str(hazard)})
    for drift in result.drift:
        if drift.blocking:
            metrics.drift.add(1, {"database": alias, "kind": drift.kind.value})
