"""pgroll, the peer of ``bench.backfill``: built once from the Go module proxy (pgroll is a Go
module), pinned, and cached under ``~/.cache/schemaheal/go/pgroll`` like helm and Jaeger.

The proxy lists no version of ``github.com/xataio/pgroll`` (its ``@v/list`` is refused, so
``go install …@latest`` fails, and so does ``go install …@VERSION``, which reads the list for
deprecations), but it serves the pinned version itself, which :mod:`tests.gobuild` downloads and
builds (cgo: its SQL parser is libpg_query, compiled by the system's C compiler; a few minutes
cold). v0.14.0 (July 2025) is the newest version tried: a newer one may be served too.

The migration is the one pgroll's own benchmark runs (``internal/benchmarks``:
``02_alter_column``), started, then completed, each timed from outside the process (its benchmark
times ``Start`` + ``Complete``). pgroll's clients use a version schema (their search_path): the
old version's writers write through its view, and ``complete`` drops that schema, so they stop
before it.

    python -m bench.pgroll     # build it now, print the path
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from tests import gobuild

VERSION = "v0.14.0"
MODULE = "github.com/xataio/pgroll"
#: pgroll's benchmark migrations, verbatim (internal/benchmarks/benchmarks_test.go): the table,
#: made by pgroll (it refuses a schema with tables but no history of its own), then the change
CREATE_TABLE = {
    "operations": [
        {
            "create_table": {
                "name": "users",
                "columns": [
                    {"name": "id", "type": "serial", "pk": True},
                    {"name": "name", "type": "varchar(255)", "nullable": True, "unique": False},
                ],
            }
        }
    ],
}
ALTER_COLUMN = {
    "operations": [
        {
            "alter_column": {
                "table": "users",
                "column": "name",
                "up": "SELECT CASE WHEN name IS NULL THEN 'placeholder' ELSE name END",
                "down": "user_name",
                "comment": "the name of the user",
                "nullable": False,
            }
        }
    ],
}


def binary() -> Path:
    """The pgroll binary, built on first use (:mod:`tests.gobuild`)."""
    return gobuild.built("pgroll", MODULE, VERSION)


def _run(dsn: str, schema: str, *args: str) -> None:
    url = f"{dsn}{'&' if '?' in dsn else '?'}sslmode=disable"
    command = [str(binary()), *args, "--postgres-url", url, "--schema", schema]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0 or done.stdout.strip():  # some refusals exit 0, said on stdout
        raise RuntimeError(f"pgroll {args[0]} failed: {done.stderr.strip()} {done.stdout}")


def _start(dsn: str, schema: str, name: str, migration: dict[str, object], *flags: str) -> float:
    """``pgroll start`` of ``name.json``: seconds, from outside the process."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"{name}.json"  # pgroll names a migration after its file
        file.write_text(json.dumps(migration))
        started = time.perf_counter()
        _run(dsn, schema, "start", str(file), *flags)
        return time.perf_counter() - started


def create(dsn: str, schema: str) -> str:
    """pgroll's state and its benchmark's table, ``schema.users`` (the caller fills it); the
    version schema the old version's clients use (its search_path: a view of the table)."""
    _run(dsn, schema, "init")
    _start(dsn, schema, "01_create_table", CREATE_TABLE, "--complete")
    return f"{schema}_01_create_table"


def start(dsn: str, schema: str, batch_rows: int) -> float:
    """Its benchmark migration on ``schema.users`` started (the backfill runs in it): seconds."""
    flags = ("--backfill-batch-size", str(batch_rows))
    return _start(dsn, schema, "02_alter_column", ALTER_COLUMN, *flags)


def complete(dsn: str, schema: str) -> float:
    """The migration completed (NOT NULL validated and set, the old column and the old version's
    schema dropped): seconds."""
    started = time.perf_counter()
    _run(dsn, schema, "complete")
    return time.perf_counter() - started


if __name__ == "__main__":
    start = time.monotonic()
    path = binary()
    print(f"pgroll {VERSION}: {path} ({time.monotonic() - start:.0f} s)")
