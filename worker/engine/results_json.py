"""Plans and heal results as JSON-ready dicts. Pure.

One form for every reader: the command line prints it (``--format json``) and the service builds
its ``schema.healed`` replies from it, so both say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from worker.engine.changes import Drift, describe
from worker.engine.heal import HealResult
from worker.engine.statements import Plan

__all__ = ["drift_json", "plan_json", "result_json"]


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "statements": [
            {
                "ordinal": i + 1,
                "change": describe(s.change),
                "sql": s.sql,
                "hazards": [h.value for h in s.hazards],
                "transactional": s.transactional,
                "group": s.group,
                "lock_timeout_ms": s.lock_timeout_ms,
                "statement_timeout_ms": s.statement_timeout_ms,
            }
            for i, s in enumerate(plan.statements)
        ],
        "drift": [drift_json(d) for d in plan.drift],
    }


def drift_json(drift: Drift) -> dict[str, Any]:
    return {
        "kind": drift.kind.value,
        "target": drift.target,
        "detail": drift.detail,
        "blocking": drift.blocking,
    }


def result_json(result: HealResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "manifest_hash": result.manifest_hash,
        "satisfied": result.satisfied,
        "error": (
            {"code": result.error_code, "message": result.error_message}
            if result.error_code
            else None
        ),
        "applied": [
            {
                "ordinal": a.ordinal,
                "change": a.change,
                "sql": a.sql,
                "hazards": [h.value for h in a.hazards],
                "duration_ms": round(a.duration_s * 1000, 3),
                "retries": a.retries,
            }
            for a in result.applied
        ],
        "blocked": [
            {"sql": b.statement.sql, "hazard": b.hazard.value, "reason": b.reason}
            for b in result.blocked
        ],
        "drift": [drift_json(d) for d in result.drift],
        "lock_wait_ms": round(result.lock_wait_s * 1000, 3),
        "duration_ms": round(result.duration_s * 1000, 3),
        "ledger_id": result.ledger_id,
        "migrations": [
            {
                "id": s.id,
                "kind": s.kind.value,
                "target": s.target,
                "state": s.state,
                "running": s.running,
                "rows_done": s.rows_done,
                "relies_on": s.relies_on,
            }
            for s in result.migrations
        ],
    }
