"""Benchmark: the boot check's time in the database, per call and per statement (issue 17).

A no-drift boot through the gate is one call of the boot check function
(:mod:`worker.engine.boot_check`). This measures that call where it runs, in the server, so
that neither the broker nor the client's noise hides it: on embedded PostgreSQL 18 (or
``--pg 15``), for each code tree given (``--tree label=path``, this one by default), a fresh
database gets the gate bench's manifest (``bench.boot_gate.service_manifest(0)``) healed and
verified, then ``--calls`` boots are checked as the gate checks them (one boot a batch, its
request id as the batch's lookup, a new request id and ledger row each time, after
``--warmup`` not counted). Each call's time is its function's ``total_time`` in
``pg_stat_user_functions`` (flushed after each call): printed as the median and mean per call.

Then as many calls without those reads: the server process's CPU time per call (its
``/proc/<pid>/schedstat``: the whole statement, and less sensitive to the machine's load than the
clock), and the function's mean. Then as many again with ``pg_stat_statements`` counting every
statement the function runs, its planning included: the mean per statement, which says where the
time goes (the rest is the executor's start-up and shut-down, which it does not time, and
PL/pgSQL; this pass runs slower for the counting). The trees alternate within
each of ``--runs`` rounds; a tree is run by this file in a child process whose ``PYTHONPATH``
is that tree, so older code (e.g. ``git worktree add ../old 880df57``) is measured in the same
minutes on the same server. Keep the machine quiet: the load average is printed.

    python -m bench.boot_check_db --tree old=../old --tree main=. --runs 3 --calls 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
#: the function's time counted; its statements only in their own pass (``track`` set there)
SERVER_OPTIONS = (
    "-c track_functions=pl -c shared_preload_libraries=pg_stat_statements "
    "-c pg_stat_statements.track=none -c pg_stat_statements.track_planning=off"
)


async def _boot_once(conn: Any, boot_check: Any, boot: Any, options: Any) -> Any:
    """One boot checked as the gate checks it, whichever API the tree has."""
    lookup = (boot.request.request_id,)
    if hasattr(boot_check, "check_many"):
        results = await boot_check.check_many(conn, [boot], options, lookup=lookup)
        return results if isinstance(results, boot_check.Seen) else results[0]
    return await boot_check.check(conn, replace(boot, lookup=lookup), options)  # 880df57


def _cpu_ns(pid: int) -> int:
    """The CPU time a server process has used (ns; the server runs on this machine)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


async def _function_total_ms(conn: Any) -> float:
    await conn.execute("SELECT pg_stat_force_next_flush()")
    value = await conn.fetchval(
        "SELECT coalesce(sum(total_time), 0) FROM pg_stat_user_functions "
        "WHERE funcname LIKE 'boot_check%'"
    )
    return float(value)


async def drive(dsn: str, calls: int, warmup: int) -> dict[str, Any]:
    """In the child process (the tree's code on ``PYTHONPATH``): heal, verify, check."""
    from bench.boot_gate import service_manifest
    from contracts import load_manifest
    from worker.engine import boot_check
    from worker.engine.connection import connect
    from worker.engine.desired import prepare
    from worker.engine.heal import HealOptions, Outcome, RequestInfo, heal
    from worker.engine.liveness import shape_of

    manifest = load_manifest(service_manifest(0))
    conn = await connect(dsn)
    for _ in range(2):  # healed, then verified
        healed = await heal(conn, manifest)
        assert healed.satisfied, healed.error_message
    desired = prepare(manifest)
    options = HealOptions()

    async def one(i: int) -> None:
        request = RequestInfo(request_id=str(uuid.uuid4()), service=manifest.service,
                              instance=f"pod-{i}", database_alias="bench")  # fmt: skip
        pods = ((manifest.service, f"pod-{i}"),)
        booting = boot_check.Boot(desired=desired, request=request, instances=pods,
                                  shape=shape_of(desired.realm), ttl_s=60.0)  # fmt: skip
        result = await _boot_once(conn, boot_check, booting, options)
        assert result is not None, "the boot check stepped aside: no verified manifest?"
        assert result.outcome is Outcome.UNCHANGED, result

    for i in range(warmup):
        await one(i)
    per_call, before = [], await _function_total_ms(conn)
    for i in range(calls):
        await one(warmup + i)
        after = await _function_total_ms(conn)
        per_call.append(after - before)
        before = after
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpu_before, before = _cpu_ns(pid), await _function_total_ms(conn)
    for i in range(calls):
        await one(warmup + calls + i)
    cpu_ms = (_cpu_ns(pid) - cpu_before) / 1e6 / calls
    quiet_ms = (await _function_total_ms(conn) - before) / calls
    await conn.execute("SET pg_stat_statements.track = 'all';"
                       "SET pg_stat_statements.track_planning = on")  # fmt: skip
    for i in range(calls):
        await one(warmup + 2 * calls + i)
    await conn.execute("SET pg_stat_statements.track = 'none'")
    counted = (await _function_total_ms(conn) - before) / calls
    await conn.close()
    return {"per_call_ms": per_call, "counted_ms": counted, "cpu_ms": cpu_ms, "quiet_ms": quiet_ms}


async def _create(dsn: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    await conn.execute(f"CREATE DATABASE {database}")
    await conn.close()


async def _statements(dsn: str, database: str) -> list[dict[str, Any]]:
    """What pg_stat_statements counted of the statements the function ran in ``database``
    (planning included), by their text's start (whitespace collapsed)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch(
        """SELECT query, calls, plans, total_plan_time, total_exec_time FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND toplevel = false""",
        database,
    )
    await conn.close()
    return [{**dict(r), "query": " ".join(r["query"].split())[:70]} for r in rows]


def _run_tree(pg: Any, label: str, tree: Path, run: int, calls: int, warmup: int) -> dict[str, Any]:
    database = f"bc_{label}_{run}"
    asyncio.run(_create(pg.dsn, database))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    child = subprocess.run(
        [sys.executable, __file__, "--drive", pg.dsn_for(database), "--calls", str(calls),
         "--warmup", str(warmup)],
        env=env, check=True, capture_output=True, text=True, cwd=tree,
    )  # fmt: skip
    measured: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    measured["statements"] = asyncio.run(_statements(pg.dsn, database))
    return measured


def _show(label: str, runs: list[dict[str, Any]], calls: int) -> None:
    medians = [statistics.median(r["per_call_ms"]) for r in runs]
    means = [statistics.fmean(r["per_call_ms"]) for r in runs]
    print(f"{label}: per call, median {statistics.median(medians):.3f} ms "
          f"(runs: {_listed(medians)}); mean "
          f"{statistics.median(means):.3f} ms (runs: {_listed(means)})")  # fmt: skip
    cpu = [r["cpu_ms"] for r in runs]
    quiet = [r["quiet_ms"] for r in runs]
    print(f"    server CPU per call (the whole statement, not the wall clock): median "
          f"{statistics.median(cpu):.3f} ms (runs: {_listed(cpu)}); the function's mean "
          f"without per-call reads {statistics.median(quiet):.3f} ms")  # fmt: skip
    last = runs[-1]["statements"]
    for r in sorted(last, key=lambda r: -(r["total_plan_time"] + r["total_exec_time"])):
        plan, run = r["total_plan_time"] / calls, r["total_exec_time"] / calls
        print(f"    {plan + run:6.3f} ms a call (planning {plan:.3f}, {r['plans'] / calls:.1f} "
              f"plans, x{r['calls'] / calls:.1f})  {r['query']}")  # fmt: skip
    inside = sum(r["total_plan_time"] + r["total_exec_time"] for r in last) / calls
    print(
        f"    {inside:6.3f} ms a call in these statements, of the function's "
        f"{runs[-1]['counted_ms']:.3f} in their pass (pg_stat_statements on)"
    )


def main(args: argparse.Namespace) -> None:
    from worker.embedded.postgres import LocalPostgres, debian_binaries, embedded_binaries

    binaries = embedded_binaries() if args.pg == "18" else debian_binaries(args.pg)
    assert binaries is not None, f"no PostgreSQL {args.pg} here"
    trees = [(label, Path(path).resolve()) for label, path in
             (t.split("=", 1) for t in args.tree or [f"this={ROOT}"])]  # fmt: skip
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
    with LocalPostgres(binaries, options=SERVER_OPTIONS) as pg:
        for run in range(args.runs):
            for label, tree in trees:
                results[label].append(_run_tree(pg, label, tree, run, args.calls, args.warmup))
                print(f"run {run + 1} {label}: load average {os.getloadavg()[0]:.2f}", flush=True)
    print(f"\nboot check, time in the database (PostgreSQL {binaries.version}, {args.calls} "
          f"calls after {args.warmup}, {args.runs} runs; statements: the last run's)")  # fmt: skip
    for label, _ in trees:
        _show(label, results[label], args.calls)
    for key, name in (("per_call_ms", "median per call"), ("cpu_ms", "server CPU")):
        first = _median(results[trees[0][0]], key)
        for label, _ in trees[1:]:
            print(f"{label} / {trees[0][0]}, {name}: {_median(results[label], key) / first:.2f}x")


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    """The median over runs of each run's median (a list) or value."""
    values = [statistics.median(r[key]) if isinstance(r[key], list) else r[key] for r in runs]
    return statistics.median(values)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="label=path of a code tree (repeat)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--pg", default="18", help="18 (embedded) or 15 (Debian's)")
    parser.add_argument("--drive", help=argparse.SUPPRESS)  # the child: a database's DSN
    arguments = parser.parse_args()
    if arguments.drive:
        sys.path.insert(0, os.environ["PYTHONPATH"])
        measured = asyncio.run(drive(arguments.drive, arguments.calls, arguments.warmup))
        print(json.dumps(measured))
    else:
        main(arguments)
