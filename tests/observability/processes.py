"""The worker, clients and ``schemaheal`` commands as separate processes, each exporting its
own spans from ``OTEL_*`` the way a deployment configures them."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from worker.embedded.broker import LocalBroker
from worker.embedded.postgres import free_port

ROOT = Path(__file__).parents[2]
T = TypeVar("T")


def otel(endpoint: str, protocol: str, service: str | None = None) -> dict[str, str]:
    """``OTEL_*`` for an OTLP exporter; spans leave within 0.1 s (not the default 5 s)."""
    names = {"OTEL_SERVICE_NAME": service} if service else {}
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_BSP_SCHEDULE_DELAY": "100",
            **names}  # fmt: skip


def environment(**extra: str) -> dict[str, str]:
    """This environment without any OTEL_* / TRACEPARENT of the caller's, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("OTEL_", "TRACEPARENT", "TRACESTATE", "SCHEMAHEAL_"))}  # fmt: skip
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


async def run(*args: str, env: dict[str, str], timeout_s: float = 300) -> tuple[int, str, str]:
    """Run a Python module (``-m …``) to its end: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def worker_environment(kafka: KafkaServer, database: FreshDatabase, port: int) -> dict[str, str]:
    """``schemaheal worker``'s settings, as quick as the in-process tests' ones."""
    return {"SCHEMAHEAL_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "SCHEMAHEAL_DATABASES": f"nexus={database.dsn}",
            "SCHEMAHEAL_SESSION_TIMEOUT_MS": "6000", "SCHEMAHEAL_HEARTBEAT_INTERVAL_MS": "1000",
            "SCHEMAHEAL_FETCH_MAX_WAIT_MS": "50", "SCHEMAHEAL_TOPIC_PARTITIONS": "3",
            "SCHEMAHEAL_HEALTH_PORT": str(port),
            "SCHEMAHEAL_OFFSET_GUARD": str(isinstance(kafka, LocalBroker)).lower()}  # fmt: skip


@asynccontextmanager
async def worker_process(
    kafka: KafkaServer, database: FreshDatabase, **env: str
) -> AsyncIterator[int]:
    """``schemaheal worker`` in a process of its own; yields its health port once it serves."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "worker", cwd=ROOT, stdout=log, stderr=log,
            env=environment(**worker_environment(kafka, database, port), **env),
        )  # fmt: skip
        try:
            await eventually(lambda: _listening(port, process), timeout_s=60)
            yield port
        finally:
            if process.returncode is None:
                process.terminate()
                await asyncio.wait_for(process.wait(), 60)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-4000:])  # shown on failure


async def _listening(port: int, process: Any) -> None:
    assert process.returncode is None, f"the worker exited with status {process.returncode}"
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 30) -> T:
    """``check()``'s result once it stops failing (spans reach Jaeger a moment after they
    end); its last failure when the time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await check()
        except (AssertionError, OSError):
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.3)
