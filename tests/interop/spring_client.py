"""The Spring Kafka client of tests/interop/java: built once with Maven, cached by its sources.

``mvn -q -B package`` runs in a scratch copy of the project, with the local repository under
``~/.cache/schemaheal/m2``; the jar and its runtime classpath are kept in
``~/.cache/schemaheal/interop-java-<hash of the sources>``, so a changed source builds anew.
Measured on a shared 2-core machine: a cold build (empty local repository, 61 MB from Maven
Central) 19-29 s; with the repository cached, 18 s (Maven and javac themselves); with the jar
cached, nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.cachelock import build_once

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
    build_once(built, built / ".complete", lambda: _build(built))
    return f"{built / 'interop.jar'}:{built / 'lib'}/*"


def _build(target: Path) -> None:
    """Build in a scratch copy; move the result into place in one rename (a concurrent
    build of the same sources keeps its own, equal result)."""
    with tempfile.TemporaryDirectory(prefix="schemaheal-java-") as scratch:
        project = Path(scratch) / "java"
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target"))
        done = subprocess.run(
            ["mvn", "-q", "-B", "package", f"-Dmaven.repo.local={MAVEN_REPOSITORY}"],
            cwd=project, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"building {PROJECT} failed:\n{done.stdout[-3000:]}{done.stderr}")
        built = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=CACHE))
        shutil.copy2(project / "target" / "interop.jar", built / "interop.jar")
        shutil.copytree(project / "target" / "lib", built / "lib")
        (built / ".complete").touch()
    if not (target / ".complete").exists():  # an unfinished one, from an interrupted run
        shutil.rmtree(target, ignore_errors=True)
    try:
        built.rename(target)
    except OSError:  # another build got there first
        shutil.rmtree(built, ignore_errors=True)
