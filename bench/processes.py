"""What the benchmarks read of their processes from /proc: CPU seconds and peak memory."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_seconds(pid: int) -> float:
    """CPU time of one process so far, to the nanosecond: the scheduler's run time of each of
    its threads (``/proc/PID/task/*/schedstat``). ``cpu_seconds`` counts clock ticks (10 ms),
    too coarse for a few milliseconds, and blind to work that ends between two ticks."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError):
            continue  # the thread ended meanwhile
    return total / 1e9


def descendants_cpu_s(root: int) -> dict[str, float]:
    """CPU seconds of the live descendants of ``root`` (and itself), by command name."""
    parent, stats = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, rest = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            fields = rest.split()
            parent[int(entry.name)] = int(fields[1])
            stats[int(entry.name)] = (name.split("(", 1)[1], int(fields[11]) + int(fields[12]))
    totals: dict[str, float] = {}
    for pid, (name, ticks) in stats.items():
        ancestor = pid
        while ancestor not in (root, 0, 1) and ancestor in parent:
            ancestor = parent[ancestor]
        if ancestor == root:
            totals[name] = totals.get(name, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
    return totals


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CpuLimit:
    """A CPU limit of ``cores`` for processes, as a Kubernetes ``limits.cpu`` sets it: a CFS
    quota per 100 ms period in a cgroup of their own (cgroup v1 ``cpu`` or v2 ``cpu.max``).
    Needs write access to the cgroup tree (root here); :meth:`available` says whether it has it."""

    PERIOD_US = 100_000
    V1, V2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")

    def __init__(self, name: str, cores: float) -> None:
        if not self.available():
            raise RuntimeError("no writable cgroup cpu controller here: run without --worker-cpu")
        quota = max(1000, round(cores * self.PERIOD_US))
        if (self.V1 / "cpu.cfs_quota_us").exists():
            self.path = self.V1 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            self.path = self.V2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")

    @classmethod
    def available(cls) -> bool:
        v1 = cls.V1 / "cpu.cfs_quota_us"
        v2 = cls.V2 / "cgroup.subtree_control"
        if v1.exists():
            return os.access(cls.V1, os.W_OK)
        return v2.exists() and "cpu" in v2.read_text().split() and os.access(cls.V2, os.W_OK)

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))  # every thread of the process

    def throttled_s(self) -> float:
        """Time the processes were held back by the quota so far."""
        for line in (self.path / "cpu.stat").read_text().splitlines():
            name, value = line.split()
            if name == "throttled_time":  # v1, nanoseconds
                return int(value) / 1e9
            if name == "throttled_usec":  # v2
                return int(value) / 1e6
        return 0.0

    def remove(self) -> None:
        """Delete the cgroup (its processes must have exited)."""
        try:
            self.path.rmdir()
        except OSError as exc:  # a process still in it
            print(f"  (cgroup {self.path} left behind: {exc}; rmdir it once its processes exit)")
