"""``make test``'s pytest arguments: how many test processes, from SCHEMAHEAL_TEST_WORKERS."""

from __future__ import annotations

import pytest

from tests.run import WORKERS, pytest_arguments

PARALLEL = ["-n", "3", "--dist", "worksteal"]
DEFAULT = ["-n", str(WORKERS), "--dist", "worksteal"] if WORKERS > 1 else []


@pytest.mark.parametrize(
    ("given", "workers", "expected"),
    [
        ([], None, DEFAULT),
        (["--durations=40"], "3", [*PARALLEL, "--durations=40"]),
        (["tests/engine"], "2", ["-n", "2", "--dist", "worksteal", "tests/engine"]),
        (["tests/engine"], "1", ["tests/engine"]),  # serial, in one process, as before
        (["-n", "4"], None, ["-n", "4"]),  # the command line wins
        (["-n0", "-x"], "3", ["-n0", "-x"]),
        (["--numprocesses=2"], "1", ["--numprocesses=2"]),
    ],
)
def test_the_workers_are_taken_from_the_environment_unless_given(
    given: list[str], workers: str | None, expected: list[str]
) -> None:
    assert pytest_arguments(given, workers) == expected


@pytest.mark.parametrize("workers", ["0", "two", "-1", ""])
def test_a_count_that_is_not_a_positive_number_says_what_to_give(workers: str) -> None:
    with pytest.raises(SystemExit, match="give a number of test processes, 1 or more"):
        pytest_arguments([], workers)
