"""Every label value the gate's counters take, from the engine's closed sets."""

from __future__ import annotations

from worker.engine.changes import DriftKind
from worker.engine.hazards import Hazard
from worker.engine.heal import Outcome
from worker.observability.metrics import Series
from worker.service.requests import DEAD_LETTER_CODES
from worker.settings import WorkerSettings


def counter_series(settings: WorkerSettings) -> Series:
    """Every label value the gate's counters take, so /metrics shows each at 0 from the start."""
    return Series(
        databases=tuple(settings.databases),
        outcomes=tuple(o.value for o in Outcome),
        hazards=(*(h.value for h in Hazard), "none"),
        drift_kinds=tuple(k.value for k in DriftKind),
        dead_letter_codes=DEAD_LETTER_CODES,
        rejected=Outcome.REJECTED.value,
    )
