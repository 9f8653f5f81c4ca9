"""Plans and heal results as JSON-ready dicts. Pure.

One form for every reader: the command line prints it (``--format json``) and the service builds
its ``schema.healed`` replies from it, so both say the same thing in the same words.
"""

from __future__ import annotations

from typing import Any

from worker.engine.changes import Drift, describe
from worker.engine.expand import ColumnMigration
from worker.engine.heal import HealResult
from worker.engine.heal_migrations import MigrationStatus
from worker.engine.statements import Plan, Statement

__all__ = ["background", "drift_json", "migration_json", "plan_json", "result_json"]


def plan_json(plan: Plan, states: tuple[MigrationStatus, ...] = ()) -> dict[str, Any]:
    """``states``: where each migration stands, when read (``plan`` reads them)."""
    by_id = {s.id: s for s in states}
    return {
        "statements": [statement_json(i, s) for i, s in enumerate(plan.statements)],
        "drift": [drift_json(d) for d in plan.drift],
        "migrations": [migration_json(m, by_id.get(m.id)) for m in plan.migrations],
        "contract": [statement_json(i, s) for i, s in enumerate(plan.contract)],
    }


def statement_json(i: int, s: Statement) -> dict[str, Any]:
    return {
        "ordinal": i + 1,
        "phase": s.phase.value,
        "change": describe(s.change),
        "sql": s.sql,
        "hazards": [h.value for h in s.hazards],
        "transactional": s.transactional,
        "group": s.group,
        "lock_timeout_ms": s.lock_timeout_ms,
        "statement_timeout_ms": s.statement_timeout_ms,
    }


def migration_json(m: ColumnMigration, status: MigrationStatus | None = None) -> dict[str, Any]:
    """A planned migration: what it changes, what runs after the heal (in the background), and
    where it stands (None: not read)."""
    return {
        "state": status.state if status is not None else None,
        "rows_done": status.rows_done if status is not None else None,
        "contract": status.contract if status is not None else None,
        "waiting": status.waiting if status is not None else None,
        "id": m.id,
        "kind": m.kind.value,
        "target": f"{m.schema}.{m.table}.{m.new_column}",
        "from": m.old_column,
        "type": m.new_type,
        "forward": m.forward,
        "reverse": m.reverse,
        "in_place": m.in_place,
        "background": background(m),
    }


def background(m: ColumnMigration) -> str:
    """What the backfill runner does after the heal's expand, in words."""
    steps = [f"backfill existing rows in batches by ({', '.join(m.key)})"]
    if m.not_null or (m.in_place and m.old_column in m.key):
        steps.append("set NOT NULL (CHECK NOT VALID, VALIDATE, SET NOT NULL)")
    if m.in_place:
        steps.append(
            f"swap the new column in for {m.old_column}, with the indexes, constraints, views, "
            "triggers and policies that use it and the column's own privileges, statistics "
            "target, options, storage, compression, comment and security labels"
        )
    return "; then ".join(steps)


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
                "contract": s.contract,
                "waiting": s.waiting,
            }
            for s in result.migrations
        ],
    }
