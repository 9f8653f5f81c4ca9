"""PgBouncer (Debian's package) in front of a test server, in transaction or session pooling.

Installed by ``.ci/run``; the tests that need it are skipped where it is missing. PgBouncer
refuses to run as root, so as root it runs as the servers' unprivileged user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from worker.embedded.postgres import LocalPostgres, _unprivileged_user, free_port
from worker.embedded.processes import stop_process, wait_listening


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer",) if Path(p).exists()), None
    )


class PgBouncer:
    """One PgBouncer with trust authentication for ``postgres`` on a free 127.0.0.1 port."""

    def __init__(self, server: LocalPostgres, pool_mode: str) -> None:
        self.server = server
        self.pool_mode = pool_mode
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="schemaheal-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgBouncer:
        program = binary()
        assert program is not None, "pgbouncer is not installed"
        (self.root / "users.txt").write_text('"postgres" ""\n')
        config = self.root / "pgbouncer.ini"
        config.write_text(
            "\n".join([
                "[databases]",
                f"* = host=127.0.0.1 port={self.server.port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {self.root / 'users.txt'}",
                f"pool_mode = {self.pool_mode}",
                "default_pool_size = 4",
                f"logfile = {self.root / 'pgbouncer.log'}",
                # what the worker sets at login and PgBouncer does not track itself
                "ignore_startup_parameters = extra_float_digits, search_path, "
                "idle_in_transaction_session_timeout, default_transaction_read_only",
            ])
            + "\n"
        )  # fmt: skip
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            uid, gid = _unprivileged_user()
            os.chown(self.root, uid, gid)
            for entry in self.root.iterdir():
                os.chown(entry, uid, gid)
            kwargs = {"user": uid, "group": gid}
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            [program, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
        )
        log = self.root / "pgbouncer.log"
        wait_listening(self.process, self.port, 20,
                       lambda: log.read_text() if log.exists() else "")  # fmt: skip
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
