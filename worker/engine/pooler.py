"""Refusing connection poolers that would break session advisory locks.

A heal holds *session* advisory locks across several transactions. Behind a transaction-pooling
proxy (PgBouncer ``pool_mode=transaction``, and the like) each transaction may run on another
server session: the lock is taken on one and the DDL runs on another, so two heals could run at
once. Poolers answer the login with their own BackendKeyData (the cancel key a client keeps),
so the process id the client was told differs from ``pg_backend_pid()``: that is how a proxy is
seen. Whether it pools by session or by transaction cannot be asked, so a proxy is refused unless
the operator says it pools by session (``database_proxy = session``); even then, two transactions
served by different backends prove transaction pooling, and that is always refused.
"""

from __future__ import annotations

from typing import Any, Literal

from asyncpg.exceptions import DuplicatePreparedStatementError, InvalidSQLStatementNameError

from worker.errors import UnsafeConnectionError

ProxyMode = Literal["refuse", "session"]
_PROBES = 3


async def require_direct(conn: Any, alias: str, proxy: ProxyMode = "refuse") -> None:
    """Raise UnsafeConnectionError, saying why and what to do, when ``conn`` cannot hold
    session advisory locks."""
    announced = conn.get_server_pid()
    try:
        backends = [await conn.fetchval("SELECT pg_backend_pid()") for _ in range(_PROBES)]
    except (InvalidSQLStatementNameError, DuplicatePreparedStatementError) as exc:
        raise UnsafeConnectionError(
            _moved(alias, f"a statement prepared in one was gone in the next: {exc.sqlstate}")
        ) from None
    if len(set(backends)) > 1:
        raise UnsafeConnectionError(_moved(alias, f"backend pids {', '.join(map(str, backends))}"))
    if announced != backends[0] and proxy != "session":
        raise UnsafeConnectionError(
            f"database {alias}: the connection goes through a proxy (the server announced "
            f"process {announced}, the session runs in backend {backends[0]}), such as "
            "PgBouncer. Session advisory locks do not survive transaction pooling, so "
            "concurrent heals could race. Point the DSN at PostgreSQL itself; if the proxy "
            "pools by session (pool_mode=session), set SCHEMAHEAL_DATABASE_PROXY=session."
        )


def _moved(alias: str, evidence: str) -> str:
    return (
        f"database {alias}: consecutive transactions ran on different server sessions "
        f"({evidence}): a transaction-pooling proxy (PgBouncer pool_mode=transaction or "
        "similar) sits in front of PostgreSQL. Session advisory locks do not survive it, so "
        "concurrent heals could race. Point the DSN at PostgreSQL itself (or at a "
        "session-pooling proxy)."
    )
