"""The test side of the corpus: the driver processes (one per application, so each imports its
models once per session), fresh databases, and the heals under test."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg

import contracts
from tests.corpus import install
from tests.corpus.driver import MARK
from worker.embedded.postgres import LocalPostgres
from worker.engine.connection import connect
from worker.engine.heal import HealOptions, HealResult, heal

ROOT = Path(__file__).absolute().parents[2]


class Driver:
    """A ``driver serve APP`` process in the corpus venv."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.log = tempfile.NamedTemporaryFile(prefix=f"corpus-{app}-", suffix=".log")  # noqa: SIM115
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [str(install.python()), "-m", "tests.corpus.driver", "serve", app],
            cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
        )  # fmt: skip

    def call(self, command: str, *args: str) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps([command, *args]) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARK):
                result: dict[str, Any] = json.loads(line[len(MARK) :])
                return result
        raise AssertionError(f"the {self.app} driver died; its log:\n{self._tail()}")

    def _tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe:
                pipe.close()
        self.process.wait(timeout=30)
        self.log.close()


class Corpus:
    """The session's drivers and the manifests they produced (PostgreSQL does not change them)."""

    def __init__(self) -> None:
        self.drivers: dict[str, Driver] = {}
        self.manifests: dict[str, dict[str, Any]] = {}

    def driver(self, app: str) -> Driver:
        if app not in self.drivers:
            self.drivers[app] = Driver(app)
        return self.drivers[app]

    def manifest(self, app: str) -> contracts.Manifest:
        """The adapter's manifest of the application's models; the test fails on its error."""
        if app not in self.manifests:
            self.manifests[app] = self.driver(app).call("manifest")
        result = self.manifests[app]
        assert result["ok"], f"manifest of {app}: {result['error']}"
        return contracts.load_manifest(result["manifest"])

    def changed(self, app: str, changes: list[dict[str, Any]]) -> contracts.Manifest:
        """The manifest of the application's models changed for a new version
        (``driver.changed``)."""
        result = self.driver(app).call("changed", json.dumps(changes))
        assert result["ok"], f"changed manifest of {app}: {result['error']}"
        return contracts.load_manifest(result["manifest"])

    def create_all(self, app: str, dsn: str, changes: list[dict[str, Any]] | None = None) -> None:
        extra = (json.dumps(changes),) if changes else ()
        result = self.driver(app).call("create-all", dsn, *extra)
        assert result["ok"], f"create_all of {app}: {result['error']}"

    def migrate(self, app: str, dsn: str) -> dict[str, Any]:
        """The application's own migrations, in a process of their own: migration modules
        change the models' MetaData as they import (mlflow's add its CHECKs again)."""
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        command = [str(install.python()), "-m", "tests.corpus.driver", "migrate", app, dsn]
        out = subprocess.run(
            command, check=False, cwd=ROOT, env=env, capture_output=True, text=True
        )
        for line in reversed(out.stdout.splitlines()):
            if line.startswith(MARK):
                result: dict[str, Any] = json.loads(line[len(MARK) :])
                return result
        raise AssertionError(f"the {app} migrations died:\n{out.stderr[-4000:]}")

    def alembic(self, app: str, *dsns: str) -> list[list[str]]:
        result = self.driver(app).call("compare", *dsns)
        assert result["ok"], f"compare_metadata of {app}: {result['error']}"
        return list(result["diffs"])

    def close(self) -> None:
        for driver in self.drivers.values():
            driver.close()


async def new_database(server: LocalPostgres, template: str | None = None) -> str:
    name = f"c_{uuid.uuid4().hex[:12]}"
    clause = f" TEMPLATE {template}" if template else ""
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f"CREATE DATABASE {name}{clause}")
    finally:
        await admin.close()
    return name


async def drop_database(server: LocalPostgres, name: str) -> None:
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def heal_once(dsn: str, manifest: contracts.Manifest) -> HealResult:
    conn = await connect(dsn)
    try:
        return await heal(conn, manifest, options=HealOptions(record=False))
    finally:
        await conn.close()
