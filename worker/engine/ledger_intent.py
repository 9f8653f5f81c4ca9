"""A heal's intent in the ledger: written before it applies, settled after it stops.

Before the first statement runs, :func:`begin` commits a ``running`` heal row and one row per
planned statement (``planned``, with the catalog fact that shows it committed). Each statement's
row becomes ``applied`` as it commits (:func:`progress`): in the statement's own transaction
where it has one, right after it for ``CONCURRENTLY`` statements, which cannot run in one. The
outcome is written at the end (:func:`finish`). A worker killed mid-apply so leaves a
``running`` row listing every statement, and which committed; the next heal of an overlapping
schema, holding its advisory locks (which the dead heal held while alive), closes it as
``interrupted`` (:func:`close_interrupted`). Statements still ``planned`` then are settled from
the catalog (:func:`settle`): a ``CONCURRENTLY`` statement killed between its commit and its row
is ``confirmed``, one that did not commit is ``not-applied``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace

from contracts.identifiers import quote_ident
from worker.engine import ledger
from worker.engine.apply import AppliedStatement
from worker.engine.changes import describe
from worker.engine.connection import Connection
from worker.engine.intent import (
    RAN,
    CatalogCheck,
    CheckKind,
    Found,
    StatementState,
    catalog_check,
    verdict,
)
from worker.engine.statements import Statement

log = logging.getLogger("schemaheal.ledger")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """A statement found ``planned`` after its heal stopped, and what the catalog said."""

    ordinal: int
    sql: str
    state: StatementState


async def begin(
    conn: Connection,
    entry: ledger.HealRecord,
    planned: Sequence[Statement],
    schema: str = ledger.DEFAULT_SCHEMA,
) -> int:
    """Record the intent of a heal about to apply ``planned``: a ``running`` row and each
    statement ``planned``, committed together before the first statement runs. Return its id."""
    s = quote_ident(schema)
    async with conn.transaction():
        running = replace(entry, outcome=ledger.RUNNING)
        heal_id = await ledger.insert_heal(conn, running, s, len(planned))
        await conn.executemany(  # type: ignore[attr-defined]
            f"""INSERT INTO {s}.statements (heal_id, ordinal, change, sql, hazards, retries,
                    state, catalog_check)
                VALUES ($1, $2, $3, $4, $5, 0, '{StatementState.PLANNED}', $6::jsonb)""",
            [_planned_row(heal_id, i, st) for i, st in enumerate(planned, start=1)],
        )
    return heal_id


def _planned_row(heal_id: int, ordinal: int, statement: Statement) -> tuple[object, ...]:
    check = catalog_check(statement)
    return (heal_id, ordinal, describe(statement.change), statement.sql,
            [h.value for h in statement.hazards],
            None if check is None else json.dumps(check.to_json()))  # fmt: skip


def progress(
    conn: Connection, heal_id: int, schema: str = ledger.DEFAULT_SCHEMA
) -> Callable[[Sequence[AppliedStatement]], Awaitable[None]]:
    """Mark statements of the heal ``heal_id`` ``applied`` (one round trip), called in their own
    transaction (so they commit or roll back together). A retried group records its statements
    again: each row then says how many retries it took."""
    sql = ledger.insert_statement(quote_ident(schema)) + (
        " ON CONFLICT (heal_id, ordinal) DO UPDATE SET started_at = excluded.started_at,"
        " duration_ms = excluded.duration_ms, retries = excluded.retries,"
        f" state = '{StatementState.APPLIED}'"
    )

    async def write(applied: Sequence[AppliedStatement]) -> None:
        if applied:  # executemany pipelines its rows: one round trip for all of them
            await conn.executemany(  # type: ignore[attr-defined]
                sql, [ledger.statement_row(heal_id, a) for a in applied]
            )

    return write


async def finish(
    conn: Connection, heal_id: int, entry: ledger.HealRecord, schema: str = ledger.DEFAULT_SCHEMA
) -> int:
    """Close the ``running`` row ``heal_id`` with the heal's outcome; its statements that did
    not commit (it failed) are settled first. Return its id."""
    s = quote_ident(schema)
    await settle(conn, heal_id, s)
    await conn.execute(
        f"""UPDATE {s}.heals SET outcome = $2, error_code = $3, error_message = $4,
                lock_wait_ms = $5, duration_ms = $6, finished_at = now(), drift = $7,
                blocked = $8, migrations = $9
            WHERE id = $1""",
        heal_id,
        entry.outcome,
        entry.error_code,
        entry.error_message,
        None if entry.lock_wait_s is None else entry.lock_wait_s * 1000,
        entry.duration_s * 1000,
        json.dumps(list(entry.drift)),
        json.dumps(list(entry.blocked)),
        json.dumps(list(entry.migrations)),
    )
    return heal_id


async def close_interrupted(
    conn: Connection, schemas: Collection[str], schema: str = ledger.DEFAULT_SCHEMA
) -> list[int]:
    """Close as ``interrupted`` every ``running`` heal of any of ``schemas``, settling its
    statements still ``planned`` from the catalog; return their ids.

    Call it holding the advisory locks of ``schemas``: a live heal holds the locks of all its
    schemas from before its row is written until after it is finished, so a ``running`` row
    sharing a schema with ours belongs to a heal that died (worker killed, connection lost)."""
    s = quote_ident(schema)
    running = await conn.fetch(
        f"""SELECT id, planned FROM {s}.heals
            WHERE outcome = '{ledger.RUNNING}' AND schemas && $1::text[] ORDER BY id""",
        sorted(schemas),
    )
    closed = []
    for row in running:
        settled = await settle(conn, row["id"], s)
        ran = await conn.fetchval(
            f"SELECT count(*) FROM {s}.statements WHERE heal_id = $1 AND state = ANY($2::text[])",
            row["id"],
            sorted(RAN),
        )
        # still running: a heal records its outcome just after it releases the locks, so the
        # row read above may have been finished since; its own outcome then stands
        if await conn.fetchval(
            f"""UPDATE {s}.heals SET outcome = '{ledger.INTERRUPTED}',
                    error_code = '{ledger.INTERRUPTED}', finished_at = now(), error_message = $2
                WHERE id = $1 AND outcome = '{ledger.RUNNING}' RETURNING id""",
            row["id"],
            interrupted_message(ran, row["planned"], settled, schema),
        ):
            closed.append(row["id"])
    if closed:
        log.warning("closed interrupted heal(s) %s", closed, extra={"ledger_ids": closed})
    return closed


def interrupted_message(
    ran: int, planned: int | None, settled: Sequence[Settled], schema: str
) -> str:
    """What the closed row says: how many statements committed, which of them only the catalog
    showed, and which nobody can tell."""
    confirmed = [s.sql.splitlines()[0] for s in settled if s.state is StatementState.CONFIRMED]
    unknown = [s.sql.splitlines()[0] for s in settled if s.state is StatementState.UNCONFIRMED]
    text = (
        "the heal stopped before it finished (worker killed or its database connection lost): "
        f"{ran} of {'?' if planned is None else planned} planned statement(s) committed"
    )
    if confirmed:
        text += f" ({len(confirmed)} confirmed from the catalog after the interruption: "
        text += "; ".join(confirmed) + ")"
    if unknown:
        text += f"; {len(unknown)} the catalog cannot confirm, check by hand: " + "; ".join(unknown)
    return text + f", listed in {schema}.statements; the next heal finished the rest"


async def settle(conn: Connection, heal_id: int, s: str) -> list[Settled]:
    """Decide each statement of ``heal_id`` still ``planned`` from the catalog (``s``: the
    quoted ledger schema), and record it ``confirmed``, ``not-applied`` or ``unconfirmed``."""
    rows = await conn.fetch(
        f"""SELECT ordinal, sql, catalog_check FROM {s}.statements
            WHERE heal_id = $1 AND state = '{StatementState.PLANNED}' ORDER BY ordinal""",
        heal_id,
    )
    settled = []
    for row in rows:
        raw = row["catalog_check"]
        check = None if raw is None else CatalogCheck.from_json(json.loads(raw))
        found = None if check is None else await read_found(conn, check)
        settled.append(Settled(ordinal=row["ordinal"], sql=row["sql"],
                               state=verdict(check, found)))  # fmt: skip
    if settled:
        await conn.executemany(  # type: ignore[attr-defined]
            f"UPDATE {s}.statements SET state = $3 WHERE heal_id = $1 AND ordinal = $2",
            [(heal_id, st.ordinal, st.state.value) for st in settled],
        )
    return settled


async def read_found(conn: Connection, check: CatalogCheck) -> Found | None:
    """What the catalog holds now of ``check``'s object (None: nothing to look up)."""
    match check.kind:
        case CheckKind.INDEX_VALID | CheckKind.INDEX_ABSENT:
            valid = await conn.fetchrow(
                """SELECT i.indisvalid FROM pg_index i
                   WHERE i.indexrelid = to_regclass(format('%I.%I', $1::text, $2::text))""",
                check.schema,
                check.name,
            )
            if valid is None:
                return Found.MISSING
            return Found.PRESENT if valid["indisvalid"] else Found.INVALID
        case CheckKind.ENUM_LABEL:
            present = await conn.fetchval(
                """SELECT EXISTS (SELECT FROM pg_enum WHERE enumlabel = $3
                       AND enumtypid = to_regtype(format('%I.%I', $1::text, $2::text)))""",
                check.schema,
                check.name,
                check.label,
            )
            return Found.PRESENT if present else Found.MISSING
        case CheckKind.NONE:
            return None
