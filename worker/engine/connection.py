"""Connections the engine uses: direct, pinned ``search_path``, never idle in a transaction.

``Connection`` is the small seam of asyncpg the engine needs; tests and the worker pass real
asyncpg connections. Every connection is opened with ``search_path = pg_catalog`` (so nothing a
user created can shadow a function or operator we call, and ``format_type`` qualifies user
types), ``standard_conforming_strings = on`` (so the literals we render mean what they say) and
an ``idle_in_transaction_session_timeout`` so a stuck worker can never hold locks forever.
Every query outside a planned statement (catalog reads, ledger reads and writes) runs under the
session's ``lock_timeout`` and ``statement_timeout``, set once at connect; a planned statement
sets its own and :func:`~worker.engine.apply.apply` restores these after it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Protocol

import asyncpg

from worker.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    LockBudgetExhausted,
    PermanentError,
    SchemahealError,
    UnsafeConnectionError,
)
from worker.secrets import DSN_FORM, remember

#: What a database call can raise that is not ours: translated at the engine's boundary.
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # e.g. ProtocolError on a stream cut mid-message
    OSError,  # ConnectionResetError, ConnectionRefusedError, TimeoutError, …
)

log = logging.getLogger("schemaheal.postgres")

SESSION_SETTINGS = {
    "search_path": "pg_catalog",
    "standard_conforming_strings": "on",
    "idle_in_transaction_session_timeout": "60000",
    "application_name": "schemaheal",
}


class Timeouts(Protocol):
    """Where the session's timeouts come from: ``PlanSettings`` or the worker's settings."""

    @property
    def lock_timeout_ms(self) -> int: ...
    @property
    def statement_timeout_ms(self) -> int: ...


class Connection(Protocol):
    """The part of ``asyncpg.Connection`` the engine uses."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...
    def transaction(self) -> Any: ...


async def connect(
    dsn: str,
    *,
    application_name: str = "schemaheal",
    read_only: bool = False,
    timeouts: Timeouts | None = None,
) -> asyncpg.Connection:
    """A direct connection with the engine's session settings; ``read_only``: PostgreSQL itself
    refuses any write on it (``default_transaction_read_only``). Its queries wait at most
    ``timeouts.lock_timeout_ms`` for a lock and run at most ``timeouts.statement_timeout_ms``
    (the statements' settings; 2 s and 60 s by default)."""
    settings = {**SESSION_SETTINGS, "application_name": application_name}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    # The statement cache stays on: the catalog queries are the same every time, and a cached
    # statement saves a round trip each. asyncpg re-prepares on its own if DDL invalidates one.
    remember(dsn)
    try:
        conn = await asyncpg.connect(dsn, server_settings=settings)
    except (ValueError, TypeError) as exc:  # asyncpg could not parse it, and its words quote it
        raise ConfigurationError(
            f"the DSN cannot be parsed ({type(exc).__name__}; the DSN and the parser's message "
            f"are not shown: they may hold a password): {DSN_FORM}"
        ) from None
    # SET, not startup parameters: PgBouncer in session mode refuses startup parameters it
    # does not know unless its operators list them.
    try:
        lock_ms, statement_ms = (
            (timeouts.lock_timeout_ms, timeouts.statement_timeout_ms) if timeouts else (2000, 60000)
        )
        await conn.execute(
            f"SET lock_timeout = {int(lock_ms)}; SET statement_timeout = {int(statement_ms)}"
        )
    except BaseException:
        conn.terminate()
        raise
    conn.add_log_listener(_log_warning)
    return conn


def _log_warning(conn: Any, message: Any) -> None:
    """A server WARNING goes to the log — the engine's own ``RAISE WARNING``s say what a step
    left as it was (a column property a migration could not carry, a constraint left NOT
    VALID); asyncpg drops them otherwise. NOTICEs (``IF EXISTS`` found nothing) do not."""
    if getattr(message, "severity_en", None) == "WARNING":
        log.warning("PostgreSQL: %s", getattr(message, "message", message))


_DATABASE_NAMES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


async def database_name(conn: Connection) -> str:
    """The database ``conn`` is connected to: asked once per connection (it never changes)."""
    name = _DATABASE_NAMES.get(conn)
    if name is None:
        name = _DATABASE_NAMES[conn] = await conn.fetchval("SELECT current_database()")
    return name


#: Errors that mean the connection is gone, never opened, or is already closed ("connection is
#: closed"), or the server cannot take it now — as opposed to a mistake in what we sent.
CONNECTION_LOST = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.exceptions.OperatorInterventionError,  # 57P01-57P05: shutdown, crash, starting up
    asyncpg.exceptions.TooManyConnectionsError,
)
#: InterfaceErrors about what we sent, not about the connection.
_CLIENT_MISTAKES = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)


def connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` says the connection is unusable, so a later attempt may succeed."""
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):  # 57014 is a statement_timeout
        return False
    return isinstance(exc, CONNECTION_LOST) and not isinstance(exc, _CLIENT_MISTAKES)


def translate(exc: BaseException, doing: str) -> SchemahealError:
    """A database exception as one of ours, with what we were doing (a gerund phrase)."""
    if "unsupported startup parameter" in str(exc):
        return UnsafeConnectionError(
            f"{doing}: a connection pooler refused the session settings ({exc}); point the DSN "
            "at PostgreSQL itself: session advisory locks need a direct connection"
        )
    if connection_lost(exc):
        return DatabaseUnavailable(
            f"{doing}: the database is unreachable ({type(exc).__name__}: {exc}); "
            "check the DSN and that it is up"
        )
    if isinstance(exc, asyncpg.exceptions.LockNotAvailableError):
        return LockBudgetExhausted(
            f"{doing}: a table lock was not granted within lock_timeout ({exc}); find the long "
            "transaction holding it (pg_stat_activity)"
        )
    if isinstance(exc, asyncpg.exceptions.InsufficientPrivilegeError):
        return PermanentError(
            f"{doing}: permission denied ({exc}); grant the worker's role what the README's "
            "least-privilege section lists"
        )
    return PermanentError(f"{doing}: {type(exc).__name__}: {exc}")


async def relation_exists(conn: Connection, relation: str) -> bool:
    """True when ``relation`` (schema.table) exists: reads never create the tables they read."""
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", relation))


async def fetch_if_exists(conn: Connection, relation: str, query: str) -> list[Any]:
    """``query``'s rows, or none when ``relation`` (schema.table) does not exist yet: a read
    never creates the tables it reads."""
    if not await relation_exists(conn, relation):
        return []
    return list(await conn.fetch(query))
