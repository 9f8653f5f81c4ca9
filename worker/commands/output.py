"""How plans and heal results look: rich tables for people (stderr), JSON for machines (stdout).

``--format sql`` prints only SQL on stdout, through the one renderer apply uses.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.engine.changes import Drift, describe
from worker.engine.expand_changed import Refusal
from worker.engine.heal import HealResult
from worker.engine.heal_migrations import MigrationStatus
from worker.engine.plan import Plan
from worker.engine.render import script
from worker.engine.results_json import background, drift_json, plan_json, result_json
from worker.engine.statements import Statement

__all__ = [
    "commented",
    "drift_json",
    "plan_json",
    "print_json",
    "print_plan",
    "print_result",
    "print_sql",
    "result_json",
    "stderr",
]

stderr = Console(stderr=True, highlight=False)


def print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def print_sql(plan: Plan) -> None:
    for command in script(plan):
        sys.stdout.write(command + ";\n")
    for statement in plan.contract:  # shown, not run: comments, so the output still runs as is
        sys.stdout.write(commented(f"contract (not run by heal): {statement.sql};") + "\n")


def plan_table(
    statements: tuple[Statement, ...], title: str = "Planned changes (expand: run by heal)"
) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("change", style="cyan")
    table.add_column("hazards", style="yellow")
    table.add_column("statement")
    for i, s in enumerate(statements):
        hazards = ", ".join(h.value for h in s.hazards) or "-"
        table.add_row(str(i + 1), describe(s.change), hazards, _first_line(s.sql))
    return table


def migrations_table(plan: Plan, states: tuple[MigrationStatus, ...]) -> Table:
    table = Table(title="Online migrations (after expand, in the background)", title_justify="left")
    table.add_column("kind", style="cyan")
    table.add_column("column")
    table.add_column("from")
    table.add_column("then")
    table.add_column("now")
    table.add_column("contract", overflow="fold")
    by_id = {s.id: s for s in states}
    for m in plan.migrations:
        target = f"{m.schema}.{m.table}.{m.new_column} {m.new_type}"
        found = by_id.get(m.id)
        now = "-" if found is None else f"{found.state}, {found.rows_done} row(s)"
        contract = "-" if found is None else found.contract
        table.add_row(m.kind.value, target, m.old_column or "-", background(m), now, contract)
    return table


def drift_table(drift: tuple[Drift, ...]) -> Table:
    table = Table(title="Drift left alone", title_justify="left")
    table.add_column("kind", style="magenta")
    table.add_column("target")
    table.add_column("detail")
    table.add_column("blocks?", justify="center")
    for d in drift:
        table.add_row(d.kind.value, d.target, d.detail, "[red]yes[/]" if d.blocking else "no")
    return table


def print_plan(
    plan: Plan, states: tuple[MigrationStatus, ...] = (), refused: tuple[Refusal, ...] = ()
) -> None:
    for r in refused:
        stderr.print(f"[red]Refused ({r.code}):[/] {r.message}", markup=True, highlight=False)
    if plan.statements:
        stderr.print(plan_table(plan.statements))
    else:
        stderr.print("[green]Nothing to do:[/] the database satisfies the manifest.")
    if plan.migrations:
        stderr.print(migrations_table(plan, states))
    if plan.contract:
        title = "Contract (not run by heal: once no live instance uses the old shape)"
        stderr.print(plan_table(plan.contract, title))
    if plan.drift:
        stderr.print(drift_table(plan.drift))


def refusal_json(r: Refusal) -> dict[str, Any]:
    return {"code": r.code, "migration": r.migration, "message": r.message}


def print_result(result: HealResult) -> None:
    colour = {"healed": "green", "unchanged": "green", "blocked": "yellow"}.get(
        result.outcome.value, "red"
    )
    if result.applied:
        table = Table(title="Applied", title_justify="left")
        table.add_column("#", justify="right", style="dim")
        table.add_column("change", style="cyan")
        table.add_column("ms", justify="right")
        table.add_column("retries", justify="right")
        table.add_column("statement")
        for a in result.applied:
            ms = f"{a.duration_s * 1000:.1f}"
            table.add_row(str(a.ordinal), a.change, ms, str(a.retries), _first_line(a.sql))
        stderr.print(table)
    for b in result.blocked:
        stderr.print(
            f"[yellow]needs approval[/] ({b.hazard.value}): {b.reason}\n  {b.statement.sql}"
        )
    if result.drift:
        stderr.print(drift_table(result.drift))
    message = f" — {result.error_message}" if result.error_message else ""
    stderr.print(
        f"[bold {colour}]{result.outcome.value}[/] in {result.duration_s * 1000:.0f} ms "
        f"(lock wait {result.lock_wait_s * 1000:.0f} ms, manifest {result.manifest_hash[:12]})"
        f"{message}"
    )


def commented(text: str) -> str:
    """``text`` as SQL comments, every line of it (a DO block's body spans lines)."""
    return "\n".join(f"-- {line}" for line in text.splitlines())


def _first_line(sql: str) -> str:
    lines = sql.splitlines()
    line = lines[0]
    if line.startswith("DO ") and len(lines) > 1 and lines[1].startswith("-- "):
        line = f"{line} {lines[1]}"  # a DO block says what it does on its first line
    return line if len(line) <= 110 else line[:107] + "..."
