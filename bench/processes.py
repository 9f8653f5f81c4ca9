"""What the benchmarks read of their processes from /proc: CPU seconds and peak memory."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
