"""Run a module under cProfile on the CPU clock (``time.process_time``), so that time spent
waiting (for the broker, the database, a busy machine's other processes) does not count:
``python -m bench.profiled PATH -m worker.cli worker ...`` writes the profile to PATH when the
worker stops. The bench's ``SCHEMAHEAL_BENCH_PROFILE_CLOCK=cpu`` starts the worker this way.
cProfile sees the main thread only (the worker's event loop: all of a boot's work)."""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    path, flag, module, *args = sys.argv[1:]
    if flag != "-m":
        raise SystemExit("usage: python -m bench.profiled PATH -m MODULE [ARGS...]")
    sys.argv = [module, *args]
    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profiler.dump_stats(path)


if __name__ == "__main__":
    main()
