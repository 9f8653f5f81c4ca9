"""Compose's database, initialised the way the postgres image does it, without a Docker engine:
on a fresh cluster, every script mounted in /docker-entrypoint-initdb.d runs in name order
through psql with ON_ERROR_STOP, as ``POSTGRES_USER`` in ``POSTGRES_DB``. Then the worker's
Compose DSN must heal the seed's database as the least-privilege role those scripts made."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from contracts import load_manifest
from tests.deploy.test_packaging import compose
from worker.embedded.postgres import LocalPostgres
from worker.engine.connection import connect
from worker.engine.heal import Outcome, heal
from worker.settings import parse_databases

ROOT = Path(__file__).parents[2]
INITDB = "/docker-entrypoint-initdb.d/"


def _mounts(volumes: list[str]) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts."""
    out: dict[str, Path] = {}
    for volume in volumes:
        host, container, *_ = volume.split(":")
        out[container] = (ROOT / host).resolve()
    return out


def _init_scripts(mounts: dict[str, Path], into: Path) -> list[Path]:
    """The init scripts in the order the image runs them, with container paths that they
    reference (``\\i /deploy/…``) rewritten to the host's files."""
    scripts = []
    for container in sorted(c for c in mounts if c.startswith(INITDB)):
        text = mounts[container].read_text()
        for other, host in mounts.items():
            text = text.replace(other, str(host))
        script = into / Path(container).name
        script.write_text(text)
        scripts.append(script)
    return scripts


def _psql(
    server: LocalPostgres, env: dict[str, str], script: Path
) -> subprocess.CompletedProcess[str]:
    """What the image's entrypoint runs for one ``*.sql`` init script."""
    return subprocess.run(
        [str(server.binaries.bindir / "psql"), "-v", "ON_ERROR_STOP=1", "--no-password",
         "-h", "127.0.0.1", "-p", str(server.port), "-U", env["POSTGRES_USER"],
         "-d", env["POSTGRES_DB"], "-f", str(script)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip


async def test_compose_database_initialises_and_the_worker_dsn_heals_it(
    pg_server: LocalPostgres, tmp_path: Path
) -> None:
    services = compose()["services"]
    env = services["postgres"]["environment"]
    scripts = _init_scripts(_mounts(services["postgres"]["volumes"]), tmp_path)
    assert [s.name for s in scripts] == ["10-old-shape.sql", "20-roles.sql"]
    with LocalPostgres(pg_server.binaries) as fresh:  # a first boot: no roles exist yet
        admin = await asyncpg.connect(fresh.dsn)
        await admin.execute(f"CREATE DATABASE {env['POSTGRES_DB']}")
        await admin.close()
        for script in scripts:
            done = _psql(fresh, env, script)
            assert done.returncode == 0, f"{script.name}: {done.stderr}"
        worker_env = services["worker-1"]["environment"]
        dsn = parse_databases(worker_env["SCHEMAHEAL_DATABASES"])["nexus"].get_secret_value()
        parts = urlsplit(dsn)
        assert parts.hostname == "postgres" and parts.username == "schemaheal"
        local = dsn.replace(f"@{parts.hostname}:{parts.port}", f"@127.0.0.1:{fresh.port}")
        conn = await connect(local)
        try:
            assert (
                await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                is False
            )
            result = await heal(
                conn, load_manifest((ROOT / "examples/nexus/manifest.json").read_bytes())
            )
        finally:
            await conn.close()  # fmt: skip
    assert result.outcome is Outcome.HEALED, result.error_message
    assert len(result.applied) == 10
