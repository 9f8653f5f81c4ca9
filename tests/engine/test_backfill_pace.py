"""How many rows the backfill's next batch takes (:mod:`worker.engine.backfill_pace`). Pure."""

from __future__ import annotations

import pytest

from worker.engine.backfill_pace import Pace, next_rows
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
