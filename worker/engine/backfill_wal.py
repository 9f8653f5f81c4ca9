"""How the backfill's batches write their WAL: the runner's session settings while its batches
run (:mod:`worker.engine.backfill`), put back before the final check and the enforce steps.

- ``wal_compression``: every row a batch touches writes a new row version; the first change of
  each page after a checkpoint writes the whole page to the WAL (about a fifth of the WAL of
  ``bench.backfill``'s migration). Compressed, those page images take less than half the bytes:
  less WAL for the writers' commits to flush with theirs, for replicas to replay and for the
  archive to keep. Set only when the server does not compress already (it may use a better
  method than ``on``), and only where the runner may (a superuser, or ``GRANT SET ON PARAMETER
  wal_compression``): without it the backfill runs as before, and says so once in the log.
- ``synchronous_commit`` off (when asked): a batch's commit does not wait for its WAL to reach
  the disk. A crash may then lose the last batches, but each batch and its progress record are
  one statement, lost together, and the WAL keeps commits in order: the record is never ahead of
  the rows, and the next runner touches the lost batches' rows again
  (``tests/engine/test_backfill_crash.py``). The final check and the enforce steps commit as
  the session did before.

:func:`changes` is pure; :func:`batch_session` applies it around the batches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from worker.engine.connection import Connection

__all__ = ["NAMES", "batch_session", "changes"]

log = logging.getLogger("schemaheal.backfill")

#: the session settings the batches may change
NAMES = ("synchronous_commit", "wal_compression")

_warned: set[str] = set()  # a missing privilege is logged once per process and setting


def changes(
    current: Mapping[str, str], *, synchronous_commit: bool, wal_compression: bool
) -> dict[str, str]:
    """The settings to change for the batches, given the session's ``current`` values."""
    wanted = {}
    if not synchronous_commit and current["synchronous_commit"] != "off":
        wanted["synchronous_commit"] = "off"
    if wal_compression and current["wal_compression"] == "off":
        wanted["wal_compression"] = "on"
    return wanted


@asynccontextmanager
async def batch_session(
    conn: Connection, *, synchronous_commit: bool, wal_compression: bool
) -> AsyncIterator[dict[str, str]]:
    """The batches' settings on ``conn`` while the block runs, the session's own after it;
    yields what was changed."""
    current = dict(
        await conn.fetchrow(
            "SELECT " + ", ".join(f"current_setting('{name}') AS {name}" for name in NAMES)
        )
    )
    wanted = changes(
        current, synchronous_commit=synchronous_commit, wal_compression=wal_compression
    )
    done = {name: value for name, value in wanted.items() if await _set(conn, name, value)}
    try:
        yield done
    finally:
        if done and not getattr(conn, "is_closed", lambda: False)():
            for name in done:
                await conn.fetchval("SELECT set_config($1, $2, false)", name, current[name])


async def _set(conn: Connection, name: str, value: str) -> bool:
    try:
        await conn.fetchval("SELECT set_config($1, $2, false)", name, value)
    except asyncpg.exceptions.InsufficientPrivilegeError as exc:
        if name not in _warned:
            _warned.add(name)
            log.info(
                "backfill batches run with the server's %s (%s); to let them compress their "
                "WAL, GRANT SET ON PARAMETER %s TO the worker's role (PostgreSQL 15 and later)",
                name, exc, name,
            )  # fmt: skip
        return False
    return True
