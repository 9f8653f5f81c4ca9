"""Go programs the tests and benchmarks run (Jaeger, pgroll), built once from the Go module proxy
and cached under ``~/.cache/schemaheal/go/<name>`` (its own GOPATH, module cache and build cache,
which CI keeps).

The pinned module is downloaded by its exact version (``go mod download``) and the program is
built inside it: ``go install module/cmd@version`` refuses a module whose go.mod has a
``replace`` directive (Jaeger), and reads the proxy's version list for deprecations, which the
proxy here refuses for some modules (pgroll).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.cachelock import build_once

GO = Path(os.environ.get("SCHEMAHEAL_GO", "/usr/local/go/bin/go"))
ROOT = Path.home() / ".cache" / "schemaheal" / "go"


def go_environment(cache: Path) -> dict[str, str]:
    """Go's caches under ``cache``, the local toolchain only (no toolchain downloads)."""
    return {
        **os.environ,
        "GOPATH": str(cache),
        "GOMODCACHE": str(cache / "pkg" / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-modcacherw",  # the cache can be deleted without chmod
    }


def built(name: str, module: str, version: str, package: str = ".") -> Path:
    """``ROOT/name/version/name``: ``package`` of ``module@version``, built on first use."""
    cache = ROOT / name
    binary = cache / version / name
    build_once(binary, binary, lambda: _build(name, module, version, package))
    return binary


def _build(name: str, module: str, version: str, package: str) -> None:
    cache = ROOT / name
    binary = cache / version / name
    if not GO.exists():
        raise RuntimeError(
            f"no Go at {GO} to build {name} {version}: install Go 1.24 or later there, or set "
            "SCHEMAHEAL_GO to its go binary (.ci/run does it)"
        )
    env = go_environment(cache)
    cache.mkdir(parents=True, exist_ok=True)
    downloaded = subprocess.run(
        [str(GO), "mod", "download", "-json", f"{module}@{version}"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    source = json.loads(downloaded.stdout)["Dir"]
    staging = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=cache))
    try:
        subprocess.run(
            [str(GO), "build", "-o", str(staging / name), package],
            cwd=source, env=env, check=True, capture_output=True,
        )  # fmt: skip
        binary.parent.mkdir(parents=True, exist_ok=True)
        (staging / name).rename(binary)  # one rename: a half-built binary is never used
    finally:
        shutil.rmtree(staging, ignore_errors=True)
