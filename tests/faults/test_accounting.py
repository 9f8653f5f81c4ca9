"""The fault suite's and ``bench.workers``' ledger accounting, on plain rows (pure)."""

from __future__ import annotations

from tests.faults.cluster import not_one_finished


def test_each_request_without_exactly_one_finished_row_is_named_with_its_rows() -> None:
    rows = [
        {"request_id": "once", "outcome": "healed"},
        {"request_id": "retried", "outcome": "interrupted"},  # a dead heal answers nobody
        {"request_id": "retried", "outcome": "unchanged"},
        {"request_id": "twice", "outcome": "healed"},
        {"request_id": "twice", "outcome": "unchanged"},
        {"request_id": "dead", "outcome": "running"},
        {"request_id": "other", "outcome": "healed"},  # not asked about
        {"request_id": "other", "outcome": "healed"},
    ]
    want = {"once", "retried", "twice", "dead", "lost"}
    assert not_one_finished(rows, want) == {
        "dead": ["running"], "lost": [], "twice": ["healed", "unchanged"]
    }  # fmt: skip
