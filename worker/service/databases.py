"""The worker's connections to its databases: opened only where session advisory locks hold."""

from __future__ import annotations

import logging
from typing import Any

from worker.engine.connection import DATABASE_ERRORS, connect, translate
from worker.engine.pooler import require_direct
from worker.errors import RetryableError, SchemahealError
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.gate")


async def open_checked(settings: WorkerSettings, alias: str) -> Any:
    """A worker connection to ``alias`` that can hold session advisory locks (no
    transaction-pooling proxy in between: UnsafeConnectionError says why otherwise)."""
    try:
        conn = await connect(settings.dsn(alias), application_name="schemaheal worker",
                             timeouts=settings)  # fmt: skip
    except DATABASE_ERRORS as exc:
        raise translate(exc, f"connecting to database {alias}") from exc
    try:
        await require_direct(conn, alias, settings.database_proxy)
    except SchemahealError:
        await conn.close()
        raise
    except DATABASE_ERRORS as exc:
        await conn.close()
        raise translate(exc, f"checking the connection to database {alias}") from exc
    return conn


async def check_databases(settings: WorkerSettings) -> None:
    """At start-up: refuse (raise) when a database sits behind a proxy that would break the
    advisory locks. A database that cannot be reached yet is checked on first use instead."""
    for alias in sorted(settings.databases):
        try:
            conn = await open_checked(settings, alias)
        except RetryableError as exc:
            extra = {"database": alias, "error": str(exc)}
            log.warning("database not reachable at start-up", extra=extra)
            continue
        await conn.close()
