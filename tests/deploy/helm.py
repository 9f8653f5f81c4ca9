"""Helm for the chart's tests: built once from the Go module proxy (helm is a Go module), pinned,
and cached under ~/.cache/schemaheal/go so that CI builds it only on a cold cache.

    python -m tests.deploy.helm     # build it now (CI does, before the tests), print the path
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.cachelock import build_once

HELM_VERSION = "v3.21.4"
CACHE = Path.home() / ".cache" / "schemaheal" / "go"
GO = "/usr/local/go/bin/go"


def _go() -> str:
    go = shutil.which("go") or (GO if Path(GO).exists() else None)
    assert go, "Go is needed to build helm (these machines have it in /usr/local/go)"
    return go


def helm() -> Path:
    """The pinned helm binary, built on first use."""
    binary = CACHE / HELM_VERSION / "bin" / "helm"
    build_once(binary, binary, lambda: _build(binary))
    return binary


def _build(binary: Path) -> None:
    env = {
        **os.environ,
        "GOPATH": str(CACHE),
        "GOMODCACHE": str(CACHE / "mod"),
        "GOCACHE": str(CACHE / "build"),
        "GOBIN": str(binary.parent),
        "GOFLAGS": "-modcacherw",  # a cache that `rm -rf` can clean
    }
    subprocess.run(
        [_go(), "install", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"], env=env, check=True
    )


if __name__ == "__main__":
    start = time.monotonic()
    path = helm()
    print(f"helm {HELM_VERSION}: {path} ({time.monotonic() - start:.0f} s)")
