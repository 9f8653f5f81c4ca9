"""One writer at a time for the caches the tests build on first use (the corpus venv, helm,
Jaeger, Kafka's jars, the Spring client): pytest-xdist runs several test processes, and two of
them may ask for the same missing cache at once. The second waits, then finds it built."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path


def build_once(target: Path, done: Path, build: Callable[[], object]) -> None:
    """Run ``build`` unless ``done`` exists (the last thing ``build`` writes): of several
    processes asking at once, one builds and the others wait for it, then find ``done``.

    The lock is ``<target>.lock`` beside ``target``, outside what ``build`` may remove, and
    ``flock`` lets it go when its holder ends, even by SIGKILL."""
    if done.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(f"{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():  # another process may have built it while this one waited
            build()
