"""An audit as a terminal table, JSON lines, or a self-contained HTML page with a timeline. Pure:
each renderer returns text (or a rich renderable) and writes nothing."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from worker.replay.audit import Audit, Boot, Mismatch, StatementRow
from worker.replay.migrations_report import (
    migration_json,
    migrations_html,
    migrations_table,
    started_text,
)

OUTCOME_COLOURS = {
    "healed": "#2e7d32",
    "unchanged": "#6d9f71",
    "blocked": "#ef6c00",
    "rejected": "#8e24aa",
    "failed": "#c62828",
    "no reply": "#616161",
}
_RICH = {"healed": "green", "unchanged": "dim green", "blocked": "yellow", "rejected": "magenta",
         "failed": "red", "no reply": "bright_black"}  # fmt: skip


def _took(statement: StatementRow) -> str:
    if statement.duration_ms is None:  # committed, then the heal stopped before timing it
        return "confirmed from the catalog after an interruption"
    return f"{statement.duration_ms:.1f} ms"


def iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def boot_json(boot: Boot) -> dict[str, Any]:
    """One boot as plain data (the JSON lines' ``boot`` record)."""
    event, reply = boot.request, boot.reply
    return {
        "type": "boot",
        "time": iso(event.time_ms),
        "request_id": event.request_id,
        "service": event.service,
        "instance": event.instance,
        "database": event.database,
        "source": event.source,
        "signed_with": event.key_id,
        "position": event.position,
        "manifest_hash": event.manifest_hash,
        "manifest_changes": list(boot.changes),
        "first_manifest_in_window": boot.first_of_service,
        "problem": event.problem,
        "outcome": boot.outcome,
        "replied_at": iso(reply.time_ms) if reply else None,
        "replies": boot.replies,
        "coalesced": reply.reply.coalesced if reply else None,
        "healed_by": reply.reply.healed_by if reply else None,
        "error": reply.reply.error.model_dump() if reply and reply.reply.error else None,
        "ledger_id": boot.ledger.id if boot.ledger else None,
        "duration_ms": boot.heal.duration_ms if boot.heal else None,
        "lock_wait_ms": boot.heal.lock_wait_ms if boot.heal else None,
        "statements": [
            {
                "ordinal": s.ordinal,
                "sql": s.sql,
                "hazards": list(s.hazards),
                "duration_ms": s.duration_ms,
                "retries": s.retries,
                "state": s.state,
            }
            for s in boot.statements
        ],
        "trace_id": event.trace_id,
        "migrations": [
            {"target": m.target, "state": m.state, "rows_done": m.rows_done}
            for m in (reply.reply.migrations if reply else ())
        ],
        # the migrations its heal started, from the ledger row (kind, table, columns, phase)
        "started_migrations": list(boot.heal.migrations) if boot.heal else [],
    }


def mismatch_json(mismatch: Mismatch) -> dict[str, Any]:
    return {
        "type": "mismatch",
        "kind": mismatch.kind.value,
        "time": iso(mismatch.time_ms),
        "database": mismatch.database,
        "service": mismatch.service,
        "subject": mismatch.subject,
        "detail": mismatch.detail,
    }


def summary_json(audit: Audit) -> dict[str, Any]:
    kinds: dict[str, int] = {}
    for m in audit.mismatches:
        kinds[m.kind.value] = kinds.get(m.kind.value, 0) + 1
    outcomes: dict[str, int] = {}
    for b in audit.boots:
        outcomes[b.outcome] = outcomes.get(b.outcome, 0) + 1
    return {
        "type": "summary",
        "since": iso(audit.window.since_ms),
        "until": iso(audit.window.until_ms),
        "boots": len(audit.boots),
        "outcomes": outcomes,
        "mismatches": kinds,
        "ledgers_read": list(audit.databases),
        "reapplied_by_replay": len(audit.reapplied),
        "read": dict(audit.read),
        "notes": list(audit.notes),
    }


def json_lines(audit: Audit) -> Iterator[str]:
    """One JSON object per line: every boot, every mismatch, then a summary."""
    for boot in audit.boots:
        yield json.dumps(boot_json(boot), sort_keys=True)
    for mismatch in audit.mismatches:
        yield json.dumps(mismatch_json(mismatch), sort_keys=True)
    for migration in audit.migrations:
        yield json.dumps(migration_json(migration, iso), sort_keys=True)
    yield json.dumps(summary_json(audit), sort_keys=True)


def terminal(audit: Audit) -> RenderableType:
    """Boots, mismatches and a summary for the terminal."""
    boots = Table(title=f"Boots {iso(audit.window.since_ms)} → {iso(audit.window.until_ms)}",
                  title_justify="left", expand=False)  # fmt: skip
    for column in ("time (UTC)", "service", "instance", "database", "outcome", "stmts",
                   "heal ms", "manifest", "changes since previous", "migrations started",
                   "trace"):  # fmt: skip
        boots.add_column(column, overflow="fold")
    for boot in audit.boots:
        event = boot.request
        changes = "first in window" if boot.first_of_service else ("; ".join(boot.changes) or "—")
        boots.add_row(
            iso(event.time_ms)[:23].replace("T", " "),
            event.service or "?",
            event.instance or "?",
            event.database or "?",
            Text(boot.outcome, style=_RICH.get(boot.outcome, "")),
            str(len(boot.statements)),
            f"{boot.heal.duration_ms:.0f}" if boot.heal else "",
            (event.manifest_hash or "")[:12],
            changes if event.problem is None else event.problem,
            started_text(boot.heal.migrations if boot.heal else ()),
            (event.trace_id or "")[:16],
        )
    parts: list[RenderableType] = [boots]
    if audit.mismatches:
        table = Table(title="Mismatches", title_justify="left", title_style="bold red")
        for column in ("time (UTC)", "kind", "database", "subject", "detail"):
            table.add_column(column, overflow="fold")
        for m in audit.mismatches:
            table.add_row(iso(m.time_ms)[:19].replace("T", " "), Text(m.kind.value, style="red"),
                          m.database or "", m.subject, m.detail)  # fmt: skip
        parts.append(table)
    if audit.migrations:
        parts.append(migrations_table(audit.migrations))
    summary = summary_json(audit)
    line = (
        f"{summary['boots']} boot(s); "
        + (", ".join(f"{v} {k}" for k, v in sorted(summary["outcomes"].items())) or "none")
        + f"; {len(audit.mismatches)} mismatch(es)"
        + (f"; {dict(audit.read)['records']} record(s) read, every one accounted for"
           if audit.read else "")
    )  # fmt: skip
    parts.append(Text(line, style="bold red" if audit.mismatches else "bold green"))
    parts += [Text(f"note: {note}", style="yellow") for note in audit.notes]
    return Group(*parts)


def html_report(audit: Audit, *, title: str = "schemaheal audit") -> str:
    """A self-contained page: a timeline (one lane per service, a dot per boot coloured by
    outcome, a red mark per mismatch), then the boots with their statements, then mismatches."""
    e = html.escape
    since, until = audit.window.since_ms, audit.window.until_ms
    span = max(until - since, 1)
    services = sorted({b.request.service or "?" for b in audit.boots}) or ["(no boots)"]
    lanes = {name: i for i, name in enumerate(services)}
    width, left, lane_h = 1000, 170, 34
    height = 40 + lane_h * (len(services) + 1)

    def x(ms: int) -> float:
        return left + (width - left - 20) * min(max(ms - since, 0), span) / span

    svg: list[str] = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="timeline of boots">'
    ]
    for i in range(6):  # time axis
        ms = since + span * i // 5
        svg.append(f'<line x1="{x(ms):.1f}" y1="20" x2="{x(ms):.1f}" y2="{height - 10}" '
                   'class="grid"/>')  # fmt: skip
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        label = e(iso(ms)[:16].replace("T", " "))
        svg.append(f'<text x="{x(ms):.1f}" y="14" class="tick" text-anchor="{anchor}">{label}'
                   "</text>")  # fmt: skip
    for name, i in lanes.items():
        y = 40 + lane_h * i
        svg.append(f'<text x="8" y="{y + 4}" class="lane">{e(name)}</text>')
        svg.append(f'<line x1="{left}" y1="{y}" x2="{width - 20}" y2="{y}" class="lane-line"/>')
    for n, boot in enumerate(audit.boots):
        event = boot.request
        y = 40 + lane_h * lanes.get(event.service or "?", 0)
        colour = OUTCOME_COLOURS.get(boot.outcome, "#616161")
        tip = (f"{iso(event.time_ms)} {event.service}/{event.instance} → {boot.outcome}, "
               f"{len(boot.statements)} statement(s)")  # fmt: skip
        svg.append(f'<a href="#boot-{n}"><circle cx="{x(event.time_ms):.1f}" cy="{y}" r="7" '
                   f'fill="{colour}"><title>{e(tip)}</title></circle></a>')  # fmt: skip
    y_mismatch = 40 + lane_h * len(services)
    svg.append(f'<text x="8" y="{y_mismatch + 4}" class="lane">mismatches</text>')
    for n, m in enumerate(audit.mismatches):
        cx = x(m.time_ms)
        points = f"M{cx - 7:.1f},{y_mismatch + 6} L{cx + 7:.1f},{y_mismatch + 6} "
        points += f"L{cx:.1f},{y_mismatch - 7} Z"
        tip = f"{m.kind.value}: {m.detail}"
        svg.append(f'<a href="#mismatch-{n}"><path d="{points}" class="mismatch">'
                   f"<title>{e(tip)}</title></path></a>")  # fmt: skip
    svg.append("</svg>")

    rows: list[str] = []
    for n, boot in enumerate(audit.boots):
        event = boot.request
        statements = "".join(
            f"<li><code>{e(s.sql)}</code> <span class=muted>{_took(s)}"
            f"{', hazards: ' + e(', '.join(s.hazards)) if s.hazards else ''}"
            f"{f', {s.retries} retries' if s.retries else ''}</span></li>"
            for s in boot.statements
        )
        changes = ("first manifest of this service in the window" if boot.first_of_service
                   else "; ".join(boot.changes) or "no change")  # fmt: skip
        details = (f"<details><summary>{len(boot.statements)} statement(s)</summary>"
                   f"<ol>{statements}</ol></details>" if boot.statements else "—")  # fmt: skip
        colour = OUTCOME_COLOURS.get(boot.outcome, "#616161")
        when = iso(event.time_ms)[:19].replace("T", " ")
        rows.append(
            f'<tr id="boot-{n}"><td class=when>{e(when)}</td><td>{e(event.service or "?")}'
            f"</td><td>{e(event.instance or '?')}</td><td>{e(event.database or '?')}</td>"
            f'<td><span class=pill style="background:{colour}">{e(boot.outcome)}</span></td>'
            f"<td>{details}</td><td><code>{e((event.manifest_hash or '')[:12])}</code><br>"
            f"<span class=muted>{e(event.problem or changes)}</span></td>"
            f"<td><code>{e(event.trace_id or '')}</code></td></tr>"
        )
    mismatch_rows = "".join(
        f'<tr id="mismatch-{n}"><td>{e(iso(m.time_ms)[:19])}</td>'
        f"<td><b>{e(m.kind.value)}</b></td><td>{e(m.database or '')}</td>"
        f"<td><code>{e(m.subject)}</code></td><td>{e(m.detail)}</td></tr>"
        for n, m in enumerate(audit.mismatches)
    )
    mismatch_table = (
        "<table><tr><th>time</th><th>kind</th><th>database</th><th>subject</th><th>detail</th>"
        f"</tr>{mismatch_rows}</table>"
        if mismatch_rows
        else "<p class=ok>None.</p>"
    )
    legend = (
        " ".join(
            f'<span class=pill style="background:{colour}">{e(name)}</span>'
            for name, colour in OUTCOME_COLOURS.items()
        )
        + " <span class=mark>▲</span> mismatch"
    )
    summary = summary_json(audit)
    outcome_text = ", ".join(f"{v} {k}" for k, v in sorted(summary["outcomes"].items())) or "none"
    notes = "".join(f"<p class=note>{e(note)}</p>" for note in audit.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222}}
h1{{font-size:1.4rem}} h2{{font-size:1.1rem;margin-top:2rem}}
svg{{width:100%;max-width:1000px;background:#fafafa;border:1px solid #ddd;border-radius:6px}}
.grid{{stroke:#e3e3e3}} .lane-line{{stroke:#cfcfcf;stroke-dasharray:3 3}}
.tick{{font-size:10px;fill:#777}} .when{{white-space:nowrap}}
.legend{{font-size:12px}} .mark{{color:#d32f2f}} .lane{{font-size:12px;fill:#333}}
.mismatch{{fill:#d32f2f}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}}
.pill{{color:#fff;border-radius:9px;padding:1px 8px;font-size:12px}} .muted{{color:#777}}
.note{{background:#fff8e1;padding:6px 10px;border-left:3px solid #ffb300}}
code{{font-size:12px}} .ok{{color:#2e7d32}} .bad{{color:#c62828}}
</style></head><body>
<h1>{e(title)}</h1>
<p>{e(iso(since))} → {e(iso(until))} · {len(audit.boots)} boot(s): {e(outcome_text)} ·
<span class="{"bad" if audit.mismatches else "ok"}">{len(audit.mismatches)} mismatch(es)</span>
· ledgers read: {e(", ".join(audit.databases) or "none")}</p>
{notes}
{"".join(svg)}
<p class=legend>{legend}</p>
<h2>Boots</h2>
<table><tr><th>time (UTC)</th><th>service</th><th>instance</th><th>database</th><th>outcome</th>
<th>statements</th><th>manifest</th><th>trace id</th></tr>
{"".join(rows)}</table>
<h2>Mismatches</h2>
{mismatch_table}
{migrations_html(audit.migrations, e)}</body></html>
"""
