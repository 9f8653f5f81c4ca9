"""Every statement the planner generates for the golden cases passes squawk, or
``worker.engine.squawk_exceptions`` says why that rule does not apply to that kind of change."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import current_plan
from worker.engine.plan import PlanSettings, Statement
from worker.engine.render import settings_sql
from worker.engine.squawk_exceptions import exception_for

CASES = Path(__file__).parent.parent / "cases"
SQUAWK = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")


async def planned_statements(db: FreshDatabase) -> list[Statement]:
    statements = []
    for case in sorted(p for p in CASES.iterdir() if (p / "manifest.json").exists()):
        schema_db = f"{db.name}_{case.name[:20]}"
        await FreshDatabase(db.server, "postgres").execute(f"CREATE DATABASE {schema_db}")
        target = FreshDatabase(db.server, schema_db)
        try:
            if (case / "before.sql").exists():
                await target.execute((case / "before.sql").read_text())
            conn = await connect(target.dsn)
            desired = desired_state(load_manifest((case / "manifest.json").read_bytes()))
            statements += (await current_plan(conn, desired, PlanSettings())).statements
            await conn.close()
        finally:
            await FreshDatabase(db.server, "postgres").execute(
                f"DROP DATABASE {schema_db} WITH (FORCE)"
            )
    return statements


def change_files(
    statements: list[Statement], folder: Path
) -> dict[Path, list[tuple[int, Statement]]]:
    """One SQL file per change (so squawk sees e.g. CREATE TABLE before its indexes), each
    statement's first line recorded, to map squawk's warnings back to statements."""
    files: dict[Path, list[tuple[int, Statement]]] = {}
    by_change: dict[int, list[Statement]] = {}
    for statement in statements:
        by_change.setdefault(id(statement.change), []).append(statement)
    for i, group in enumerate(by_change.values()):
        lines: list[str] = []
        starts = []
        open_tx = None
        for statement in group:
            if open_tx is not None and open_tx != statement.group:
                lines.append("COMMIT;")
                open_tx = None
            if statement.transactional and open_tx is None:
                lines.append("BEGIN;")
                open_tx = statement.group
            lines += [s + ";" for s in settings_sql(statement, local=statement.transactional)]
            starts.append((len(lines) + 1, statement))
            lines += (statement.sql + ";").splitlines()
        if open_tx is not None:
            lines.append("COMMIT;")
        path = folder / f"{i:04d}.sql"
        path.write_text("\n".join(lines) + "\n")
        files[path] = starts
    return files


def statement_at(starts: list[tuple[int, Statement]], line: int) -> Statement:
    """squawk places a statement right after the previous ';', at the end of the line before."""
    return [s for first, s in starts if first <= line + 1][-1]


@pytest.mark.skipif(not Path(SQUAWK).exists(), reason="squawk-cli is not installed")
async def test_generated_statements_pass_squawk(database: FreshDatabase, tmp_path: Path) -> None:
    statements = await planned_statements(database)
    assert len(statements) > 50
    files = change_files(statements, tmp_path)
    squawk = await asyncio.create_subprocess_exec(
        SQUAWK, "--reporter", "json", *map(str, files), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await squawk.communicate()  # exit status 1 just means "found warnings"
    warnings = json.loads(stdout)
    assert warnings, "squawk said nothing at all: is it really running?"
    unexplained = []
    for warning in warnings:
        statement = statement_at(files[Path(warning["file"])], warning["line"])
        if exception_for(warning["rule_name"], statement) is None:
            unexplained.append(f"{warning['rule_name']}: {statement.sql}")
    assert unexplained == [], "\n".join(unexplained)
