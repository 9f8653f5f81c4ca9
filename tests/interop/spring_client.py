"""The Spring Kafka client of tests/interop/java: built once with Maven, cached by its sources.

``mvn -q -B package`` runs in a scratch copy of the project, with the local repository under
``~/.cache/schemaheal/m2``; the jar and its runtime classpath are kept in
``~/.cache/schemaheal/interop-java-<hash of the sources>``, so a changed source builds anew.
A cold build (empty local repository) takes about 20 s on our machines, most of it downloads.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

PROJECT = Path(__file__).parent / "java"
CACHE = Path.home() / ".cache" / "schemaheal"
MAVEN_REPOSITORY = CACHE / "m2"


def sources_hash() -> str:
    """A hash over the project's files (paths and contents), build output excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PROJECT.rglob("*") if p.is_file() and "target" not in p.parts):
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def classpath() -> str:
    """The client's classpath (its jar and its dependencies), built on first use."""
    built = CACHE / f"interop-java-{sources_hash()}"
    if not (built / ".complete").exists():
        _build(built)
    return f"{built / 'interop.jar'}:{built / 'lib'}/*"


def _build(target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="schemaheal-java-") as scratch:
        project = Path(scratch) / "java"
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target"))
        done = subprocess.run(
            ["mvn", "-q", "-B", "package", f"-Dmaven.repo.local={MAVEN_REPOSITORY}"],
            cwd=project, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"building {PROJECT} failed:\n{done.stdout[-3000:]}{done.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(project / "target" / "interop.jar", target / "interop.jar")
        shutil.copytree(project / "target" / "lib", target / "lib")
    (target / ".complete").touch()
