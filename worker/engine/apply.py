"""Apply: run a plan's statements, each under its own timeouts, retrying lock timeouts.

A statement that cannot get its table lock within ``lock_timeout`` (SQLSTATE 55P03) or is chosen
as a deadlock victim (40P01) is retried — its whole transaction — after a jittered, growing wait,
while the retry budget lasts. So other sessions are never blocked behind us for longer than
``lock_timeout``, and a heal still gets through once a long transaction ends. Retrying is decided
on the exception *type* (asyncpg maps SQLSTATEs to classes), never on message text. Any other
database error stops the heal with :class:`StatementFailed`; what ran before it stays (every
statement is additive and idempotent, and the next heal starts from the catalog as it is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from opentelemetry.trace import SpanKind

from worker.engine import guard
from worker.engine.changes import AddTable, describe
from worker.engine.connection import DATABASE_ERRORS, Connection, connection_lost
from worker.engine.hazards import Hazard
from worker.engine.plan_partitioned import failure_advice
from worker.engine.render import group_commands
from worker.engine.statements import Plan, Statement
from worker.errors import DatabaseUnavailable, LockBudgetExhausted, StatementFailed
from worker.observability.tracing import tracer

_RETRYABLE = (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.DeadlockDetectedError)
log = logging.getLogger("schemaheal.apply")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How long to keep retrying lock timeouts, in seconds, for one heal."""

    budget_s: float = 60.0
    first_wait_s: float = 0.1
    max_wait_s: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedStatement:
    """What ran: for the ledger, the logs, the reply and the trace."""

    ordinal: int
    sql: str
    change: str
    hazards: tuple[Hazard, ...]
    started_at: float  # time.time()
    duration_s: float
    retries: int


Observer = Callable[[AppliedStatement], None]
#: Awaited with a transaction's statements before it commits (in one round trip, so recording
#: them costs one per transaction, not one per statement); with a statement that cannot run in
#: one (``CONCURRENTLY``), right after it.
Progress = Callable[[Sequence[AppliedStatement]], Awaitable[None]]


async def apply(
    conn: Connection,
    plan: Plan,
    *,
    retry: RetryPolicy | None = None,
    observe: Observer | None = None,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> list[AppliedStatement]:
    """Run every statement of ``plan`` in order; return what ran. Lock timeouts are retried
    until ``deadline`` (``time.monotonic()``; default: the retry budget from now).
    ``progress`` records each statement as it commits (the ledger)."""
    retry = retry or RetryPolicy()
    deadline = deadline or time.monotonic() + retry.budget_s
    applied: list[AppliedStatement] = []
    total = len(plan.statements)
    if not plan.statements:
        return applied
    # the session's own timeouts (those of catalog and ledger queries), put back afterwards
    session = await conn.fetchrow(_SESSION_TIMEOUTS)
    try:
        for group in plan.groups():
            ran = await _run_group(conn, group, len(applied), total, deadline, retry, progress)
            for done in ran:
                applied.append(done)
                _log_applied(done, total)
                if observe is not None:
                    observe(done)
    finally:
        if not getattr(conn, "is_closed", lambda: False)():
            with contextlib.suppress(*DATABASE_ERRORS):  # a broken connection is dropped anyway
                await conn.fetchrow(_RESTORE_TIMEOUTS, session["lock"], session["statement"])
    return applied


_SESSION_TIMEOUTS = (
    "SELECT current_setting('lock_timeout') AS lock, "
    "current_setting('statement_timeout') AS statement"
)
_RESTORE_TIMEOUTS = (
    "SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)"
)


async def retrying_lock_waits(
    work: Callable[[], Awaitable[T]],
    *,
    doing: str,
    deadline: float,
    retry: RetryPolicy,
    extra: Mapping[str, object] | None = None,
) -> T:
    """``work()`` (reads outside a transaction, such as the catalog inspection), retried after
    a jittered, growing wait when a lock is not granted within ``lock_timeout``, until
    ``deadline``; then LockBudgetExhausted says what was waiting."""
    wait, attempts = retry.first_wait_s, 0
    while True:
        try:
            return await work()
        except _RETRYABLE as exc:
            attempts += 1
            if time.monotonic() + wait > deadline:
                raise LockBudgetExhausted(
                    f"{doing}: still waiting for a table lock after {attempts} attempts "
                    f"({type(exc).__name__}); find the long transaction holding it "
                    "(pg_stat_activity) or raise the retry budget"
                ) from exc
            pause = random.uniform(wait / 2, wait)
            log.warning("%s: %s; retrying in %.2f s", doing, type(exc).__name__, pause,
                        extra={**(extra or {}), "error": type(exc).__name__,
                               "retry_in_s": round(pause, 3)})  # fmt: skip
            await asyncio.sleep(pause)
            wait = min(wait * 2, retry.max_wait_s)


async def _run_group(
    conn: Connection,
    group: list[Statement],
    offset: int,
    total: int,
    deadline: float,
    retry: RetryPolicy,
    progress: Progress | None = None,
) -> list[AppliedStatement]:
    where = _where(group[0], offset, total)
    attempts = 0

    async def attempt() -> list[AppliedStatement]:
        nonlocal attempts
        attempts += 1
        try:
            return await _attempt(conn, group, offset, attempts - 1, progress)
        except _RETRYABLE:
            await _cleanup(conn, group)
            raise
        except DATABASE_ERRORS as exc:
            if connection_lost(exc):  # checked first: AdminShutdownError is a PostgresError too
                raise DatabaseUnavailable(
                    f"{where}: the connection was lost ({type(exc).__name__}: {exc}); "
                    "the request is retried"
                ) from exc
            if not isinstance(exc, asyncpg.PostgresError):
                raise
            await _cleanup(conn, group)
            advice = _advice(group[0], exc)
            raise StatementFailed(f"{where}: {exc.__class__.__name__}: {exc}{advice}") from exc

    extra = {"statement_ordinal": offset + 1, "statement_total": total}
    return await retrying_lock_waits(attempt, doing=where, deadline=deadline, retry=retry,
                                     extra=extra)  # fmt: skip


async def _attempt(
    conn: Connection, group: list[Statement], offset: int, retries: int, progress: Progress | None
) -> list[AppliedStatement]:
    done = []
    commands = group_commands(group)
    if group[0].transactional:
        async with conn.transaction():
            if one_round_trip(group):
                done = await _execute_batch(conn, commands, offset, retries)
            else:
                for i, (statement, settings) in enumerate(commands):
                    # inside a transaction, SET LOCAL and the statement go in one round trip
                    sql = "; ".join([*settings, statement.sql])
                    done.append(await _execute(conn, statement, sql, offset + i, retries))
            if progress is not None:  # committed with the statements, or rolled back with them
                await progress(done)
    else:
        for i, (statement, settings) in enumerate(commands):
            # CREATE INDEX CONCURRENTLY must be alone: a multi-command string is one transaction
            await conn.execute("; ".join(settings))
            if retries and statement.cleanup_sql is not None:
                # what the failed attempt left (an INVALID index) goes first, or IF NOT EXISTS
                # would skip the rebuild; waiting behind a reader here is retried like the build
                guard.check(statement.cleanup_sql)
                await conn.execute(statement.cleanup_sql)
            done.append(await _execute(conn, statement, statement.sql, offset + i, retries))
            if progress is not None:  # cannot share its transaction: recorded right after
                await progress(done[-1:])
    return done


async def _execute(
    conn: Connection, statement: Statement, sql: str, ordinal: int, retries: int
) -> AppliedStatement:
    guard.check(statement.sql)
    operation, change = command_of(statement.sql), describe(statement.change)
    target = getattr(getattr(statement.change, "table", None), "qualified", None)
    with tracer().start_as_current_span(
        f"{operation} {target}" if target else operation,
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": "postgresql", "db.operation.name": operation,
            "db.collection.name": target or "", "db.query.text": statement.sql,
            "schemaheal.change": change,
            "schemaheal.hazards": [h.value for h in statement.hazards],
            "schemaheal.retries": retries,
        },
    ):  # fmt: skip
        started_at, started = time.time(), time.perf_counter()
        await conn.execute(sql)
    return AppliedStatement(
        ordinal=ordinal + 1,
        sql=statement.sql,
        change=change,
        hazards=statement.hazards,
        started_at=started_at,
        duration_s=time.perf_counter() - started,
        retries=retries,
    )


def one_round_trip(group: list[Statement]) -> bool:
    """Whether a transaction's statements go to the server as one multi-statement string: those
    of new tables (``CREATE TABLE``, its indexes and comments). They touch nothing another
    session can see -- a foreign key only to a table created earlier in the same transaction
    (see :func:`~worker.engine.plan._batches_with`) or, alone in its transaction, to an existing
    one -- so nothing is gained by timing them one by one, and a heal of 1000 new tables saves
    ~2000 round trips. Each statement still runs under its own ``SET LOCAL`` timeouts
    (PostgreSQL applies ``statement_timeout`` to each statement of such a string)."""
    return len(group) > 1 and all(isinstance(s.change, AddTable) for s in group)


async def _execute_batch(
    conn: Connection,
    commands: list[tuple[Statement, list[str]]],
    offset: int,
    retries: int,
) -> list[AppliedStatement]:
    """Run ``commands`` (see :func:`one_round_trip`) as one string, parsed again as a whole: it
    must be exactly the statements and settings it was made of. The round trip's time is shared
    evenly by its statements: that is what the ledger and the logs show for each."""
    parts = [sql for statement, settings in commands for sql in (*settings, statement.sql)]
    sql = ";\n".join(parts)
    guard.check_batch(sql, len(parts))
    first = commands[0][0]
    operation = command_of(first.sql)
    target = getattr(getattr(first.change, "table", None), "qualified", None)
    with tracer().start_as_current_span(
        f"BATCH {operation}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": "postgresql", "db.operation.name": f"BATCH {operation}",
            "db.operation.batch.size": len(commands), "db.collection.name": target or "",
            "db.query.text": sql, "schemaheal.retries": retries,
        },
    ):  # fmt: skip
        started_at, started = time.time(), time.perf_counter()
        await conn.execute(sql)
    share = (time.perf_counter() - started) / len(commands)
    return [
        AppliedStatement(
            ordinal=offset + i + 1,
            sql=statement.sql,
            change=describe(statement.change),
            hazards=statement.hazards,
            started_at=started_at + i * share,
            duration_s=share,
            retries=retries,
        )
        for i, (statement, _) in enumerate(commands)
    ]


async def _cleanup(conn: Connection, group: list[Statement]) -> None:
    """Remove what a failed non-transactional statement left behind (an INVALID index)."""
    for statement in group:
        if statement.cleanup_sql is not None:
            # if this fails too, the next heal sees the INVALID index and rebuilds it
            guard.check(statement.cleanup_sql)
            with contextlib.suppress(asyncpg.PostgresError):
                await conn.execute(statement.cleanup_sql)


def _log_applied(done: AppliedStatement, total: int) -> None:
    """The seed's ``[MIGRATION] Applying step...``, as one structured event per statement
    (logged once its transaction committed: a rolled-back attempt was not applied)."""
    log.info(
        "applied statement %d of %d: %s — %s (%.1f ms)", done.ordinal, total, done.change,
        command_of(done.sql), done.duration_s * 1000,
        extra={"statement_ordinal": done.ordinal, "statement_total": total, "sql": done.sql,
               "change": done.change, "hazards": [h.value for h in done.hazards],
               "duration_ms": round(done.duration_s * 1000, 3), "retries": done.retries},
    )  # fmt: skip


def command_of(sql: str) -> str:
    """``ALTER TABLE``, ``CREATE UNIQUE INDEX CONCURRENTLY``: the keywords before the first name
    (the span's ``db.operation.name``, and the log's)."""
    words = []
    for word in sql.split():
        if not word.isupper() or word in ("IF", "NOT", "EXISTS"):
            break
        words.append(word)
    return " ".join(words)


def _advice(statement: Statement, exc: asyncpg.PostgresError) -> str:
    """What to do after ``statement`` failed on the data (a duplicate, a row without a match,
    a row a check refuses): '' for any other error, whose message is the server's alone."""
    if not isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return ""
    where = failure_advice(statement.change, statement.sql)
    return f"; {where or 'fix the rows the error names (or change the manifest), then boot again'}"


def _where(statement: Statement, offset: int, total: int) -> str:
    first_line = statement.sql.splitlines()[0]
    return f"applying statement {offset + 1} of {total} ({first_line[:80]})"
