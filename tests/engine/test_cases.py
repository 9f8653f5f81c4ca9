"""Acceptance cases as data, on every PostgreSQL version: ``tests/cases/<name>/``.

Each case has ``before.sql`` (the database as found), ``manifest.json`` (what the service wants)
and ``expected.sql`` (the exact plan, with the drift it leaves as ``-- drift`` comments). The test
plans and compares, heals, checks the heal's outcome, and re-plans: nothing may remain but the
same drift. Regenerate the goldens with ``pytest tests/engine/test_cases.py --update-golden``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.engine.golden import golden_text
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import HealOptions, Outcome, current_plan, heal
from worker.engine.plan import PlanSettings

CASES = Path(__file__).parent.parent / "cases"
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "manifest.json").exists())


@pytest.mark.parametrize("name", NAMES)
async def test_case(name: str, database: FreshDatabase, update_golden: bool) -> None:
    case = CASES / name
    before = case / "before.sql"
    if before.exists():
        await database.execute(before.read_text())
    manifest = load_manifest((case / "manifest.json").read_bytes())
    desired = desired_state(manifest)
    conn = await connect(database.dsn)
    try:
        plan = await current_plan(conn, desired, PlanSettings())
        text = golden_text(plan)
        expected = case / "expected.sql"
        if update_golden:
            expected.write_text(text)
        assert text == expected.read_text(), f"plan of case {name} changed"

        settings = (
            json.loads((case / "expect.json").read_text())
            if (case / "expect.json").exists()
            else {}
        )
        result = await heal(conn, manifest, options=HealOptions())
        assert result.outcome == Outcome(
            settings.get("outcome", "healed" if plan.statements else "unchanged")
        ), result.error_message
        again = await current_plan(conn, desired, PlanSettings())
        assert again.statements == (), golden_text(again)
        assert [d.kind for d in again.drift] == [d.kind for d in plan.drift]
    finally:
        await conn.close()
