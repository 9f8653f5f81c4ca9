"""Every counter series the worker can ever add to is on ``/metrics`` at 0 from the start, so a
dashboard or an alert tells "zero" from "no data"."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FreshDatabase
from tests.deploy.scrape import scrape
from tests.kafka import KafkaServer
from tests.observability.processes import worker_process
from worker.engine.changes import DriftKind
from worker.engine.hazards import Hazard
from worker.engine.heal import Outcome
from worker.service.requests import DEAD_LETTER_CODES

SERVICE = Path(__file__).parents[2] / "worker" / "service"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text → (sample name, its labels without OpenTelemetry's scope labels) → value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if not k.startswith("otel_")}
            found[(sample.name, frozenset(labels.items()))] = sample.value
    return found


def series(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


async def test_every_counter_starts_at_zero_before_any_request(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    async with worker_process(kafka, database) as port:
        text = await scrape(port)  # before any request
    found = samples(text)
    expected = [series("schemaheal_requests_coalesced_total", database="nexus"),
                series("schemaheal_requests_total", outcome="rejected", database="")]  # fmt: skip
    expected += [series("schemaheal_requests_total", outcome=o.value, database="nexus")
                 for o in Outcome]  # fmt: skip
    expected += [series("schemaheal_statements_applied_total", database="nexus", hazard=h)
                 for h in (*(h.value for h in Hazard), "none")]  # fmt: skip
    expected += [series("schemaheal_drift_unresolved_total", database="nexus", kind=k.value)
                 for k in DriftKind]  # fmt: skip
    expected += [series("schemaheal_dead_letters_total", code=c) for c in DEAD_LETTER_CODES]
    missing = [s for s in expected if s not in found]
    assert not missing, f"absent before any request: {missing[:5]}"
    assert {found[s] for s in expected} == {0.0}


def test_the_dead_letter_codes_name_every_code_the_gate_uses() -> None:
    """DEAD_LETTER_CODES is written by hand: every code a rejection is made with is in it."""
    used: set[str] = set()
    for path in SERVICE.glob("*.py"):
        source = path.read_text()
        used |= set(re.findall(r'\breject\(\s*"([a-z-]+)"', source))
        used |= set(re.findall(r'_refusal\(\s*\w+,\s*"([a-z-]+)"', source))
        used |= set(re.findall(r'Rejection\(\s*code="([a-z-]+)"', source))
    assert len(used) >= 10, "the scan no longer finds the codes: update this test"
    assert used <= set(DEAD_LETTER_CODES), sorted(used - set(DEAD_LETTER_CODES))
