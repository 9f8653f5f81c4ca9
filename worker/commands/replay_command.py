"""``schemaheal replay``: rebuild every boot of a time window from Kafka and the ledgers, report
what disagrees, and — only with ``--reapply`` — heal what no longer satisfies its manifest."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from worker.commands import output
from worker.engine.connection import DATABASE_ERRORS, connect, translate
from worker.engine.pooler import require_direct
from worker.observability.tracing import configure_tracing, tracer
from worker.replay import audit as audit_mod
from worker.replay.database import read_ddl_log, read_ledger, read_migrations, reapply, replan
from worker.replay.events import MigrationRow
from worker.replay.history import History, Window, parse_time, read_history
from worker.replay.report import html_report, json_lines, terminal
from worker.settings import ReplaySettings

EXIT_CLEAN, EXIT_ERROR, EXIT_MISMATCHES = 0, 1, 2


async def replay_command(
    settings: ReplaySettings,
    *,
    since: str,
    until: str = "now",
    service: str | None = None,
    fmt: str = "table",
    output_path: str | None = None,
    reapply_unsatisfied: bool = False,
    show_progress: bool = True,
) -> int:
    """Exit 0 when nothing disagrees, 2 when there are mismatches (after ``--reapply``: when
    something is still unsatisfied), 1 on errors."""
    configure_tracing("schemaheal-replay")
    now_ms = int(time.time() * 1000) + 1  # `until` is exclusive: now includes this very ms
    window = Window(parse_time(since, now_ms), parse_time(until, now_ms))
    if window.until_ms <= window.since_ms:
        output.stderr.print(f"[red]--until {until!r} is not after --since {since!r}[/]")
        return EXIT_ERROR
    with tracer().start_as_current_span("schemaheal replay") as span:
        span.set_attributes({"schemaheal.replay.since": window.since_ms,
                             "schemaheal.replay.until": window.until_ms})  # fmt: skip
        history = await _read(settings, window, show_progress)
        found = await _audit(settings, window, history, service)
        if reapply_unsatisfied:
            found = await _reapply(settings, window, history, service, found)
        span.set_attribute("schemaheal.replay.boots", len(found.boots))
        span.set_attribute("schemaheal.replay.mismatches", len(found.mismatches))
    _write(found, fmt, output_path)
    if reapply_unsatisfied:
        return (
            EXIT_MISMATCHES
            if any(m.kind is audit_mod.MismatchKind.MANIFEST_UNSATISFIED for m in found.mismatches)
            else EXIT_CLEAN
        )
    return EXIT_MISMATCHES if found.mismatches else EXIT_CLEAN


async def audit_window(settings: ReplaySettings, window: Window) -> audit_mod.Audit:
    """The audit of ``window``, read-only (for callers other than the command line)."""
    history = await _read(settings, window, show_progress=False)
    return await _audit(settings, window, history, None)


def topics(settings: ReplaySettings) -> audit_mod.Topics:
    return audit_mod.Topics(request=settings.request_topic, reply=settings.reply_topic,
                            dead_letter=settings.dead_letter_topic)  # fmt: skip


def _windows(settings: ReplaySettings, window: Window) -> dict[str, Window]:
    """Replies to requests near the end of the window may come a little after it; requests are
    read a grace around the window too, so that a reply or a ledger row of a request just
    outside it is not taken for one without a request (those requests are no boots)."""
    grace = int(settings.replay_reply_grace_s * 1000)
    return {
        settings.request_topic: Window(window.since_ms - grace, window.until_ms + grace),
        settings.reply_topic: Window(window.since_ms, window.until_ms + grace),
        settings.dead_letter_topic: window,
    }


async def _read(settings: ReplaySettings, window: Window, show_progress: bool) -> History:
    windows = _windows(settings, window)
    bar = Progress(
        TextColumn("reading history"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
        disable=not (show_progress and sys.stderr.isatty()),
    )  # fmt: skip
    with bar:
        task = bar.add_task("read", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return await read_history(settings, windows, progress)


async def _audit(
    settings: ReplaySettings, window: Window, history: History, service: str | None
) -> audit_mod.Audit:
    accounting = audit_mod.account(history, topics(settings), window)  # everything read
    requests = [*accounting.requests, *accounting.nearby]
    ledger: dict[str, list[audit_mod.LedgerRow]] = {}
    ddl: list[audit_mod.DdlEvent] = []
    notes: list[str] = []
    replans: list[audit_mod.Replan] = []
    migrations: list[MigrationRow] = []
    draft = audit_mod.reconstruct(window=window, accounting=accounting, ledger={},
                                  service=service)  # fmt: skip
    plan_settings = settings.plan_settings()
    for alias in sorted(settings.databases):
        ids = [e.request_id for e in requests if e.database == alias]
        async with _reading(settings, alias) as conn:
            try:
                ledger[alias] = await read_ledger(conn, settings.ledger_schema, alias, window, ids)
                log = await read_ddl_log(conn, alias, window)
                migrations += await read_migrations(
                    conn, settings.ledger_schema, alias, settings.heal_options().contract
                )
                for boot in audit_mod.latest_accepted(draft.boots):
                    if boot.request.database == alias:
                        replans.append(await replan(conn, boot, plan_settings))
            except DATABASE_ERRORS as exc:
                raise translate(exc, f"reading database {alias}") from exc
        if log is None:
            notes.append(f"{alias}: no DDL log, so DDL outside the worker shows only as drift "
                         "(install deploy/ddl-audit.sql to record every change)")  # fmt: skip
        else:
            ddl += log
    unread = sorted({e.database for e in accounting.requests if e.database}
                    - set(settings.databases))  # fmt: skip
    if unread:
        notes.append("ledgers not read (give --database ALIAS=DSN): " + ", ".join(unread))
    found = audit_mod.reconstruct(
        window=window,
        accounting=accounting,
        ledger=ledger,
        ddl=ddl,
        replans=replans,
        service=service,
    )  # everything matched
    return replace(found, notes=tuple(notes), migrations=tuple(migrations))


async def _reapply(
    settings: ReplaySettings,
    window: Window,
    history: History,
    service: str | None,
    found: audit_mod.Audit,
) -> audit_mod.Audit:
    """Heal every unsatisfied manifest through the normal path, then audit again."""
    unsatisfied = {
        m.subject for m in found.mismatches if m.kind is audit_mod.MismatchKind.MANIFEST_UNSATISFIED
    }
    notes = list(found.notes)
    for boot in found.boots:
        alias = boot.request.database
        if boot.request.request_id not in unsatisfied or alias is None:
            continue
        try:
            conn = await connect(settings.dsn(alias), application_name="schemaheal replay")
        except DATABASE_ERRORS as exc:
            raise translate(exc, f"connecting to database {alias}") from exc
        try:
            await require_direct(conn, alias, settings.database_proxy)  # the heal takes locks
            result = await reapply(conn, boot, settings.heal_options())
        finally:
            await conn.close()
        notes.append(
            f"reapplied {boot.request.service}@{alias} (manifest "
            f"{(boot.request.manifest_hash or '')[:12]}): {result.outcome.value}, "
            f"{len(result.applied)} statement(s), ledger #{result.ledger_id}"
            + (f" — {result.error_message}" if result.error_message else "")
        )
    after = await _audit(settings, window, history, service)
    return replace(after, notes=(*notes, *after.notes[len(found.notes) :]))


@asynccontextmanager
async def _reading(settings: ReplaySettings, alias: str) -> AsyncIterator[Any]:
    """A read-only connection to one alias (PostgreSQL refuses writes on it)."""
    try:
        conn = await connect(
            settings.dsn(alias), application_name="schemaheal replay", read_only=True
        )
    except DATABASE_ERRORS as exc:
        raise translate(exc, f"connecting to database {alias}") from exc
    try:
        yield conn
    finally:
        await conn.close()


def _write(found: audit_mod.Audit, fmt: str, output_path: str | None) -> None:
    if fmt == "html":
        page = html_report(found)
        if output_path:
            Path(output_path).write_text(page, encoding="utf-8")
            output.stderr.print(f"wrote {output_path}")
        else:
            sys.stdout.write(page)
        return
    if fmt == "json":
        text = "\n".join(json_lines(found)) + "\n"
        if output_path:
            Path(output_path).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return
    console = Console(file=open(output_path, "w", encoding="utf-8") if output_path else None,  # noqa: SIM115
                      width=200 if output_path else None)  # fmt: skip
    console.print(terminal(found))
