"""Issue 12, item 4: databases that the applications' own Alembic migrations built.

Each database is built by ``alembic upgrade head`` from the installed package's migration
directory, then planned and healed against the manifest of the same package's models. What the
migrations differ by is drift with a precise description; the heal adds only what is safe and
missing (or is blocked, saying why); nothing fails with an internal error. What each application
differs by is recorded in MIGRATIONS.md beside this file, which this test checks (and rewrites
with ``--update-golden``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.corpus.apps import APPS
from tests.corpus.harness import Corpus, drop_database, heal_once, new_database
from worker.embedded.postgres import LocalPostgres
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import Outcome, current_plan
from worker.engine.plan import Plan, PlanSettings

pytestmark = pytest.mark.slow
RECORD = Path(__file__).with_name("MIGRATIONS.md")
MIGRATING = tuple(app.name for app in APPS if app.migrations)


def describe(plan: Plan, outcome: Outcome) -> str:
    """What the migrated database differs by, sorted, one line each."""
    lines = [f"- heal: {outcome.value}"]
    lines += sorted(f"- adds: `{' '.join(s.sql.split())[:160]}`" for s in plan.statements)
    lines += sorted(f"- drift {d.kind.value} `{d.target}`: {d.detail}" for d in plan.drift)
    return "\n".join(lines)


def _block(app: str, version: int) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {app} pg{version} -->\n)(.*?)(\n<!-- end -->)", re.DOTALL)


def check_record(app: str, version: int, text: str, update: bool) -> None:
    record = RECORD.read_text()
    block = _block(app, version)
    if update:
        if not block.search(record):
            record += f"\n### {app}, PostgreSQL {version}\n\n<!-- {app} pg{version} -->\n"
            record += "\n<!-- end -->\n"
        record = block.sub(lambda m: m[1] + text + m[3], record)
        RECORD.write_text(record)
    found = block.search(RECORD.read_text())
    assert found, f"MIGRATIONS.md has no record for {app} on pg{version}: run --update-golden"
    assert found[2] == text, "MIGRATIONS.md is out of date: run with --update-golden"


@pytest.mark.parametrize("app", MIGRATING)
async def test_migrated_database_is_planned_and_healed_safely(
    app: str, corpus: Corpus, pg_server: LocalPostgres, update_golden: bool
) -> None:
    name = await new_database(pg_server)
    dsn = pg_server.dsn_for(name)
    try:
        migrated = corpus.migrate(app, dsn)
        assert migrated["ok"], f"{app}'s migrations: {migrated['error']}"
        manifest = corpus.manifest(app)
        conn = await connect(dsn)
        try:
            plan = await current_plan(conn, desired_state(manifest), PlanSettings())
        finally:
            await conn.close()
        assert all(d.detail and d.target for d in plan.drift)

        result = await heal_once(dsn, manifest)
        assert result.outcome in (Outcome.HEALED, Outcome.UNCHANGED, Outcome.BLOCKED), (
            result.error_message
        )
        if result.outcome is Outcome.BLOCKED:
            assert result.blocked or plan.blocking_drift  # it says why
        else:
            assert result.remaining is None or result.remaining.empty
        check_record(app, int(pg_server.binaries.version), describe(plan, result.outcome),
                     update_golden)  # fmt: skip
    finally:
        await drop_database(pg_server, name)
