"""Online column migrations in an audit: each one's phases and how far each got. Pure.

Part of :mod:`worker.replay.report`. The progress record (``<ledger schema>.migrations``) is
written by the heal (registered in the expand's transaction) and by the backfill runner (each
batch and enforce step in its own transaction), and contract's steps by the contract runner
(``<ledger schema>.contracts``), so what it says committed did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from worker.replay.events import MigrationRow

__all__ = [
    "contract_progress",
    "migration_json",
    "migrations_html",
    "migrations_table",
    "phases",
    "started_text",
]

_CONTRACT = "not run: waits until no live instance uses the old shape"


def contract_progress(
    sync_dropped: datetime | None, column_dropped: datetime | None, kept: str | None
) -> str | None:
    """The contracts record's steps as text; None when contract has not begun."""
    if sync_dropped is None:
        return None
    trigger = f"trigger dropped {sync_dropped.isoformat(timespec='seconds')}"
    if column_dropped is not None:
        return f"done: {trigger}; old column dropped {column_dropped.isoformat(timespec='seconds')}"
    if kept is not None:
        return f"{trigger}; {kept}"
    return f"done: {trigger}"


def phases(row: MigrationRow) -> dict[str, str]:
    """Phase → its progress, in the order they run."""
    backfill = f"{row.rows_touched} row(s) in {row.batches} batch(es)"
    enforce = f"{row.enforce_steps} step(s) committed"
    if row.state == "backfilling":
        backfill, enforce = f"running: {backfill}", "pending"
    elif row.state == "enforcing":
        backfill, enforce = f"done: {backfill}", f"running: {enforce}"
    elif row.state == "abandoned":
        return {"expand": "done", "backfill": f"abandoned: {backfill}",
                "enforce": f"abandoned: {enforce}",
                "contract": "none: abandoned (its trigger and new column are dropped)"}  # fmt: skip
    else:
        backfill, enforce = f"done: {backfill}", f"done: {enforce}"
    if row.error is not None:
        stopped = "backfill" if row.state == "backfilling" else "enforce"
        backfill, enforce = (
            (f"stopped: {row.error}", enforce) if stopped == "backfill"
            else (backfill, f"stopped: {row.error}")
        )  # fmt: skip
    contract = row.contract or _CONTRACT
    return {"expand": "done", "backfill": backfill, "enforce": enforce, "contract": contract}


def migration_json(row: MigrationRow, iso: Any) -> dict[str, Any]:
    """One migration (the JSON lines' ``migration`` record); ``iso`` formats epoch ms."""
    return {
        "type": "migration",
        "database": row.database,
        "id": row.id,
        "kind": row.kind,
        "target": row.target,
        "state": row.state,
        "phases": phases(row),
        "registered_at": iso(row.registered_ms),
        "updated_at": iso(row.updated_ms),
        "finished_at": iso(row.finished_ms) if row.finished_ms is not None else None,
    }


def migrations_table(rows: tuple[MigrationRow, ...]) -> Table:
    table = Table(title="Online migrations", title_justify="left")
    for column in ("database", "kind", "column", "expand", "backfill", "enforce", "contract"):
        table.add_column(column, overflow="fold")
    for row in rows:
        p = phases(row)
        table.add_row(row.database, row.kind, row.target, p["expand"], p["backfill"],
                      p["enforce"], p["contract"])  # fmt: skip
    return table


def migrations_html(rows: tuple[MigrationRow, ...], escape: Any) -> str:
    if not rows:
        return ""
    cells = "".join(
        f"<tr><td>{escape(r.database)}</td><td>{escape(r.kind)}</td>"
        f"<td><code>{escape(r.target)}</code></td>"
        + "".join(f"<td>{escape(v)}</td>" for v in phases(r).values())
        + "</tr>"
        for r in rows
    )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("database", "kind", "column", "expand", "backfill", "enforce", "contract")
    )
    return f"<h2>Online migrations</h2>\n<table><tr>{head}</tr>{cells}</table>\n"


def started_text(migrations: Sequence[Mapping[str, Any]]) -> str:
    """``rename public.users.full_name (from name): backfilling`` per migration a heal started."""
    return (
        "; ".join(
            f"{m.get('kind')} {m.get('table')}.{m.get('column')}"
            + (f" (from {m['from']})" if m.get("from") else "")
            + f": {m.get('phase')}"
            for m in migrations
        )
        or "—"
    )
