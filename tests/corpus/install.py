"""Builds the corpus venv: ``python -m tests.corpus.install`` prints its python's path.

A test-only venv, separate from ours because the applications' pins conflict with each other
and with ours (phoenix wants SQLAlchemy >= 2.1.1, langflow < 2.1: the corpus runs 2.1, which both
import). ``requirements.txt`` is the whole environment, installed with ``--no-deps``: the
applications, only the packages their model modules import, and schemaheal's own dependencies
(its code comes from the checkout through PYTHONPATH, so the cache never holds a stale copy).
Cached under ``~/.cache/schemaheal/corpus/<hash of the pins and the Python version>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.cachelock import build_once

REQUIREMENTS = Path(__file__).with_name("requirements.txt")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "schemaheal" / "corpus"


def venv_dir() -> Path:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.split()[0].encode())
    return CACHE / digest.hexdigest()[:16]


def python() -> Path:
    """The corpus venv's interpreter, building the venv first when it is not cached."""
    target = venv_dir()
    build_once(target, target / ".complete", lambda: _build(target))
    return target / "bin" / "python"


def _build(target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    print(f"building the corpus venv in {target} (once per pin set)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--no-deps", "-r", str(REQUIREMENTS)], check=True)
    took = time.monotonic() - started
    print(f"corpus venv built in {took:.0f} s", file=sys.stderr, flush=True)
    (target / ".complete").touch()


if __name__ == "__main__":
    print(python())
