"""``schemaheal plan`` and ``schemaheal heal``: the engine from the command line."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import contracts
from worker.commands import output
from worker.engine import backfill_store
from worker.engine.backfill_store import ABANDONED
from worker.engine.connection import DATABASE_ERRORS, Connection, connect, translate
from worker.engine.desired import desired_state
from worker.engine.expand_changed import Refusal, refusals_ahead, unswapped
from worker.engine.function_mentions import function_warnings
from worker.engine.hazards import Hazard
from worker.engine.heal import HealOptions, current_plan, heal
from worker.engine.heal_migrations import statuses
from worker.engine.pooler import ProxyMode, require_direct
from worker.engine.statements import Plan

EXIT_OK, EXIT_ERROR, EXIT_PENDING, EXIT_BLOCKED = 0, 1, 2, 3


def read_manifest(path: str) -> contracts.Manifest:
    """Load a manifest from a file, or from stdin for ``-``."""
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return contracts.load_manifest(data)


async def plan_command(dsn: str, manifest_path: str, fmt: str, options: HealOptions) -> int:
    """Print what a heal would do; change nothing. Exit 0 nothing to do, 2 pending, 1 error.
    Where a migration's contract stands is judged with ``options.contract`` (grace, lease TTL)."""
    manifest = read_manifest(manifest_path)
    settings = options.plan
    try:
        conn = await connect(dsn, application_name="schemaheal plan", timeouts=settings)
    except DATABASE_ERRORS as exc:
        raise translate(exc, "connecting to the database") from exc
    try:
        plan = await current_plan(conn, desired_state(manifest), settings)
        refused = await _refusals(conn, plan, options.ledger_schema)
        warnings = [text for _, text in await function_warnings(conn, plan.migrations)]
        found = await statuses(conn, plan.migrations, options.ledger_schema, options.contract)
        # an expand planned again is shown only when it was abandoned (otherwise: unregistered)
        expanding = {m.id for m in plan.expanding}
        states = tuple(s for s in found if s.id not in expanding or s.state == ABANDONED)
    except DATABASE_ERRORS as exc:
        raise translate(exc, "inspecting the catalog") from exc
    finally:
        await conn.close()
    if fmt == "sql":
        output.print_sql(plan)
        output.print_plan(plan, states, refused) if sys.stderr.isatty() else None
    elif fmt == "json":
        output.print_json(
            {"manifest_hash": contracts.manifest_hash(manifest), **output.plan_json(plan, states),
             "refused": [output.refusal_json(r) for r in refused], "warnings": warnings}
        )  # fmt: skip
    else:
        output.print_plan(plan, states, refused)
    for text in warnings if fmt != "json" else ():
        print(f"warning: {text}", file=sys.stderr)
    if refused:
        return EXIT_ERROR  # the heal would refuse, or a running migration's swap would stop
    return EXIT_PENDING if plan.statements else EXIT_OK


async def _refusals(conn: Connection, plan: Plan, schema: str) -> tuple[Refusal, ...]:
    """What a heal of ``plan`` would refuse, and the swaps of its running migrations that would
    stop, said before anything runs."""
    ids = {m.id for m in plan.migrations}
    running = [p for p in await backfill_store.registered(conn, schema) if p.migration.id in ids]
    return await refusals_ahead(conn, plan, unswapped(running), schema)


async def heal_command(
    dsn: str,
    manifest_path: str,
    fmt: str,
    allow: list[str],
    options: HealOptions,
    proxy: ProxyMode = "refuse",
) -> int:
    """Heal; exit 0 when the database satisfies the manifest afterwards, 3 blocked, 1 failed."""
    manifest = read_manifest(manifest_path)
    allowed = frozenset(Hazard(name) for name in allow)
    policy = replace(options.policy, allow=allowed | options.policy.allow)
    try:
        conn = await connect(dsn, application_name="schemaheal heal", timeouts=options.plan)
    except DATABASE_ERRORS as exc:
        raise translate(exc, "connecting to the database") from exc
    try:
        await require_direct(conn, "(--dsn)", proxy)
        result = await heal(conn, manifest, options=replace(options, policy=policy))
    finally:
        await conn.close()
    if fmt == "json":
        output.print_json(output.result_json(result))
    else:
        output.print_result(result)
    if result.satisfied:
        return EXIT_OK
    return EXIT_BLOCKED if result.outcome.value == "blocked" else EXIT_ERROR
