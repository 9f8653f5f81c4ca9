"""Connections the engine uses: direct, pinned ``search_path``, never idle in a transaction.

``Connection`` is the small seam of asyncpg the engine needs; tests and the worker pass real
asyncpg connections. Every connection is opened with ``search_path = pg_catalog`` (so nothing a
user created can shadow a function or operator we call, and ``format_type`` qualifies user
types), ``standard_conforming_strings = on`` (so the literals we render mean what they say) and
an ``idle_in_transaction_session_timeout`` so a stuck worker can never hold locks forever.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from worker.errors import (
    DatabaseUnavailable,
    PermanentError,
    SchemahealError,
    UnsafeConnectionError,
)

#: What a database call can raise that is not ours: translated at the engine's boundary.
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

SESSION_SETTINGS = {
    "search_path": "pg_catalog",
    "standard_conforming_strings": "on",
    "idle_in_transaction_session_timeout": "60000",
    "application_name": "schemaheal",
}


class Connection(Protocol):
    """The part of ``asyncpg.Connection`` the engine uses."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...
    def transaction(self) -> Any: ...


async def connect(
    dsn: str, *, application_name: str = "schemaheal", read_only: bool = False
) -> asyncpg.Connection:
    """A direct connection with the engine's session settings; ``read_only``: PostgreSQL itself
    refuses any write on it (``default_transaction_read_only``)."""
    settings = {**SESSION_SETTINGS, "application_name": application_name}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    # The statement cache stays on: the catalog queries are the same every time, and a cached
    # statement saves a round trip each. asyncpg re-prepares on its own if DDL invalidates one.
    return await asyncpg.connect(dsn, server_settings=settings)


#: Errors that mean the connection is gone, as opposed to a mistake in what we sent.
CONNECTION_LOST = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
)


def translate(exc: BaseException, doing: str) -> SchemahealError:
    """A database exception as one of ours, with what we were doing (a gerund phrase)."""
    # a lost connection, one that never opened, or one already closed ("connection is closed")
    unreachable = (
        *CONNECTION_LOST,
        asyncpg.InterfaceError,
        asyncpg.exceptions.CannotConnectNowError,
    )
    if isinstance(exc, unreachable):
        return DatabaseUnavailable(
            f"{doing}: the database is unreachable ({exc}); check the DSN and that it is up"
        )
    if "unsupported startup parameter" in str(exc):
        return UnsafeConnectionError(
            f"{doing}: a connection pooler refused the session settings ({exc}); point the DSN "
            "at PostgreSQL itself: session advisory locks need a direct connection"
        )
    if isinstance(exc, asyncpg.exceptions.InsufficientPrivilegeError):
        return PermanentError(
            f"{doing}: permission denied ({exc}); grant the worker's role what the README's "
            "least-privilege section lists"
        )
    return PermanentError(f"{doing}: {type(exc).__name__}: {exc}")
