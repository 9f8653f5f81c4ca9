"""How many rows the backfill's next batch takes (:mod:`worker.engine.backfill_pace`). Pure."""

from __future__ import annotations

import pytest

from worker.engine.backfill_pace import Pace, next_rows, rest_s
from worker.engine.backfill_steps import BackfillSettings

PACE = Pace(target_s=0.1, min_rows=100, max_rows=20_000)


@pytest.mark.parametrize(
    ("pace", "rows", "found", "took_s", "expected"),
    [
        (PACE, 1000, 1000, 0.1, 1000),  # on target: kept
        (PACE, 1000, 1000, 0.08, 1250),  # a little fast: a little larger
        (PACE, 1000, 1000, 0.001, 2000),  # far too fast: at most doubled
        (PACE, 1000, 1000, 0.0, 2000),  # no time measured: doubled
        (PACE, 1000, 1000, 0.125, 800),  # a little slow: a little smaller
        (PACE, 1000, 1000, 5.0, 500),  # far too slow (or retried): at most halved
        (PACE, 15_000, 15_000, 0.01, 20_000),  # never above the bound
        (PACE, 150, 150, 1.0, 100),  # never below it
        (PACE, 1000, 400, 0.001, 1000),  # the end of the table: says nothing, kept
        (Pace(target_s=0, min_rows=1, max_rows=10), 1000, 1000, 0.001, 1000),  # fixed size
    ],
)
def test_the_next_batch_is_sized_toward_the_target_duration(
    pace: Pace, rows: int, found: int, took_s: float, expected: int
) -> None:
    assert next_rows(pace, rows, found, took_s) == expected


def test_the_settings_give_the_pace_and_refuse_bounds_out_of_order() -> None:
    settings = BackfillSettings(batch_target_ms=250, min_batch_rows=10, max_batch_rows=500)
    assert settings.pace == Pace(target_s=0.25, min_rows=10, max_rows=500)
    for wrong in ({"min_batch_rows": 0}, {"min_batch_rows": 600}, {"batch_target_ms": -1}):
        with pytest.raises(ValueError, match="bounds"):
            BackfillSettings(max_batch_rows=500, **wrong)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("duty", "took_s", "expected"),
    [
        (1.0, 0.05, 0.0),  # no rest
        (0.5, 0.05, 0.05),  # half the time: as long as the batch
        (0.8, 0.04, 0.01),  # four parts work, one part rest
        (0.25, 0.02, 0.06),
        (0.5, 0.0, 0.0),  # no time measured: no rest
        (0.5, 2.0, 2.0),  # a slow batch (a busy machine, retries) rests as long
    ],
)
def test_a_batch_is_followed_by_a_rest_in_proportion_to_its_duration(
    duty: float, took_s: float, expected: float
) -> None:
    pace = Pace(target_s=0.05, min_rows=100, max_rows=20_000, duty=duty)
    assert rest_s(pace, took_s) == pytest.approx(expected)


def test_the_settings_give_the_duty_and_refuse_one_out_of_range() -> None:
    assert BackfillSettings(duty=0.6).pace.duty == 0.6
    for wrong in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="duty"):
            BackfillSettings(duty=wrong)
