"""Child processes of the local servers: wait until one listens, stop one for sure."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable


def wait_listening(
    process: subprocess.Popen[bytes], port: int, timeout_s: float, describe: Callable[[], str]
) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise (with ``describe()``, e.g. the
    server's log) when the process exits first or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}: {describe()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"did not listen on port {port} within {timeout_s} s: {describe()}")


def stop_process(process: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``grace_s``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
