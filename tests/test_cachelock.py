"""Caches built on first use, asked for by several test processes at once (pytest-xdist)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from tests.cachelock import build_once


def _ask(target: Path, started: Path, go: multiprocessing.synchronize.Event) -> None:
    def build() -> None:
        with started.open("a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # the build takes a while: the others ask meanwhile
        target.mkdir()
        (target / ".complete").touch()

    go.wait()
    build_once(target, target / ".complete", build)
    assert (target / ".complete").exists()


def test_of_four_processes_asking_at_once_one_builds_and_all_find_it_built(
    tmp_path: Path,
) -> None:
    target, started = tmp_path / "cache" / "venv", tmp_path / "started"
    context = multiprocessing.get_context("fork")
    go = context.Event()
    askers = [context.Process(target=_ask, args=(target, started, go)) for _ in range(4)]
    for process in askers:
        process.start()
    go.set()
    for process in askers:
        process.join(30)
    assert [p.exitcode for p in askers] == [0, 0, 0, 0]
    assert len(started.read_text().split()) == 1


def test_a_failed_build_leaves_it_to_the_next_asker(tmp_path: Path) -> None:
    target = tmp_path / "binary"

    def fail() -> None:
        raise RuntimeError("no Go")

    with pytest.raises(RuntimeError, match="no Go"):
        build_once(target, target, fail)
    build_once(target, target, target.touch)
    assert target.exists()
    build_once(target, target, fail)  # built: not asked again
