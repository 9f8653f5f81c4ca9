"""``schemaheal dev``: the README's main command, run as a person would."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


async def test_the_demo_heals_the_seed_once_for_three_replicas() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "dev", "--demo", "--exit-after-demo",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 180)
    text = out.decode()
    assert process.returncode == 0, text[-3000:]
    assert "3/3 replicas got their reply; the DDL ran once" in text
    assert re.search(r"ledger rows: .*healed x \d", text)  # 3 coalesced, or 1 + unchanged
    # the example service's lifespan keeps its lease alive and ends it (contracts.keep_alive)
    assert "leases (schemaheal.leases): 3 of 3 ended by the replicas' service.stopped" in text
    assert "temporary data removed" in text


async def test_sigterm_stops_everything_and_leaves_nothing_running() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "dev",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},  # so rich never wraps an address
    )  # fmt: skip
    assert process.stdout is not None
    seen = b""
    while b"Ctrl-C to stop" not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), 120)
        assert line, seen.decode()[-2000:]
        seen += line
    ports = sorted({int(p) for p in re.findall(rb"127\.0\.0\.1:(\d+)", seen)})
    assert len(ports) == 2, seen.decode()  # the broker's and PostgreSQL's
    assert all(_listening(port) for port in ports)
    process.send_signal(signal.SIGTERM)
    rest, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (seen + rest).decode()[-2000:]
    assert b"temporary data removed" in rest
    assert not any(_listening(port) for port in ports), "a server outlived schemaheal dev"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
