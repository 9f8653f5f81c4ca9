"""No request is answered twice with different outcomes, nor recorded twice (issue 17, item 5).

After a rebalance a batch is redelivered to another worker, and batches differ between delivery
and redelivery: a request worker A served (as a leader or a follower) can reach worker B after
B's batch ledger lookup, as a follower of another leader or as a leader. B then answers it from
the ledger (A's outcome and statements, ``from_ledger``) and writes no second finished row.

The race is made deterministic by running A's gate inside B's, right after B's lookup (B's
``check_all`` wrapped): what a rebalance does with two worker processes, on real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from contracts.events import SchemaHealed
from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.service.records import Record, request_body, request_record
from worker.service import gate
from worker.service.boots import Checked
from worker.service.gate import Gate
from worker.settings import WorkerSettings

pytestmark = pytest.mark.postgres


def boot(request_id: str, instance: str) -> Record:
    """A replica's boot; all share one manifest (one coalesced group in one batch)."""
    return request_record(request_body(instance=instance), request_id=request_id)


def gate_of(database: FreshDatabase) -> tuple[Gate, RecordingSink]:
    sink = RecordingSink()
    return Gate(WorkerSettings(databases={"nexus": database.dsn}), sink), sink


def racing(gate: Gate, elsewhere: Callable[[], Awaitable[Any]], *, before_call: int = 0,
           after_call: int = 0) -> None:  # fmt: skip
    """Run ``elsewhere`` (another worker serving) before the ``before_call``-th boot check of
    ``gate`` (1-based), or after the ``after_call``-th, once."""
    real, calls = gate.boots.check_all, [0]

    async def check_all(*args: Any, **kwargs: Any) -> list[Checked]:
        calls[0] += 1
        if calls[0] == before_call:
            await elsewhere()
        checked = await real(*args, **kwargs)
        if calls[0] == after_call:
            await elsewhere()
        return checked

    gate.boots.check_all = check_all  # type: ignore[method-assign]


async def finished_rows(database: FreshDatabase) -> dict[str, int]:
    rows = await database.fetch(
        "SELECT request_id, count(*) AS n FROM schemaheal.heals"
        " WHERE outcome NOT IN ('running', 'interrupted') GROUP BY request_id"
    )
    return {r["request_id"]: r["n"] for r in rows}


def statements(reply: SchemaHealed) -> list[tuple[int, str]]:
    return [(s.ordinal, s.sql) for s in reply.statements]


def answers(request_id: str, *sinks: RecordingSink) -> list[SchemaHealed]:
    return [r for sink in sinks for r in sink.replies if r.request_id == request_id]


def x_healed_by_a_and_answered_so_by_b(sink_a: RecordingSink, sink_b: RecordingSink) -> None:
    """A healed x; B answered x from the ledger (A's outcome, row and statements), and its own
    leader ``lead`` with its own heal's ``unchanged``."""
    (by_a,) = answers("x", sink_a)
    assert by_a.outcome == "healed" and by_a.statements
    (by_b,) = answers("x", sink_b)
    assert (by_b.outcome, by_b.from_ledger, by_b.ledger_id) == ("healed", True, by_a.ledger_id)
    assert statements(by_b) == statements(by_a)
    (lead,) = answers("lead", sink_b)
    assert lead.outcome == "unchanged" and not lead.from_ledger


async def test_a_follower_served_elsewhere_after_the_lookup_is_answered_from_the_ledger(
    database: FreshDatabase,
) -> None:
    """B's group [lead, x] needs a heal; A heals x alone after B's lookup: B's heal of lead finds
    nothing left (``unchanged``), and x is answered with A's ``healed`` and its statements."""
    a, sink_a = gate_of(database)
    b, sink_b = gate_of(database)
    racing(b, lambda: a.handle([boot("x", "pod-x")]), after_call=1)
    try:
        assert await b.handle([boot("lead", "pod-lead"), boot("x", "pod-x")])
    finally:
        await a.close()
        await b.close()
    x_healed_by_a_and_answered_so_by_b(sink_a, sink_b)
    assert await finished_rows(database) == {"x": 1, "lead": 1}


async def test_a_follower_served_elsewhere_before_the_boot_check_is_answered_from_the_ledger(
    database: FreshDatabase,
) -> None:
    """B's batch [done (served before), lead, x]: its first check sees ``done`` and steps aside,
    B answers ``done`` from the ledger, then A heals x, then B's second check answers lead
    ``unchanged`` in its one statement (A's heal verified the schema) and skips x's row: x is
    answered with A's ``healed``."""
    first, _ = gate_of(database)
    try:  # a request served before (a heal), then drift behind the worker's back
        assert await first.handle([boot("done", "pod-done")])
    finally:
        await first.close()
    await database.execute("ALTER TABLE tenants DROP COLUMN openai_api_key")
    a, sink_a = gate_of(database)
    b, sink_b = gate_of(database)
    racing(b, lambda: a.handle([boot("x", "pod-x")]), before_call=2)
    try:
        batch = [boot("done", "pod-done"), boot("lead", "pod-lead"), boot("x", "pod-x")]
        assert await b.handle(batch)
    finally:
        await a.close()
        await b.close()
    x_healed_by_a_and_answered_so_by_b(sink_a, sink_b)
    assert await finished_rows(database) == {"done": 1, "x": 1, "lead": 1}


async def test_a_leader_served_elsewhere_after_the_lookup_is_answered_from_the_ledger(
    database: FreshDatabase,
) -> None:
    """A serves [la, x] (x coalesced into la's heal) after B's lookup of [x, y]: B's heal of x
    finds it served; x and its follower y are answered with A's heal, its statements too, and
    y's ledger row points at the heal that ran (a redelivery of y gets the same)."""
    a, sink_a = gate_of(database)
    b, sink_b = gate_of(database)
    racing(b, lambda: a.handle([boot("la", "pod-la"), boot("x", "pod-x")]), after_call=1)
    try:
        assert await b.handle([boot("x", "pod-x"), boot("y", "pod-y")])
        (heal,) = answers("la", sink_a)
        assert heal.outcome == "healed" and heal.statements
        for request_id in ("x", "y"):
            for reply in answers(request_id, sink_a, sink_b):
                assert (reply.outcome, statements(reply)) == ("healed", statements(heal))
        by_b = {r.request_id: r for r in sink_b.replies}
        assert by_b["x"].from_ledger
        assert await finished_rows(database) == {"la": 1, "x": 1, "y": 1}
        assert await b.handle([boot("y", "pod-y")])  # redelivered
        again = sink_b.replies[-1]
        assert (again.outcome, again.from_ledger, statements(again)) == (
            "healed", True, statements(heal)
        )  # fmt: skip
    finally:
        await a.close()
        await b.close()


async def test_a_follower_is_recorded_before_the_heal_s_locks_are_released(
    database: FreshDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heals [lead, x]; B gets x as soon as A's heal has released the schemas' locks. x's row
    was written under them, so B answers x from the ledger with A's ``healed``: written after
    the locks, B healed x again (``unchanged``) and A's row for x was the one skipped."""
    a, sink_a = gate_of(database)
    b, sink_b = gate_of(database)
    real, calls = gate.heal_with_retries, [0]

    async def then_elsewhere(*args: Any, **kwargs: Any) -> Any:
        healed = await real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == 1:
            await b.handle([boot("x", "pod-x")])
        return healed

    monkeypatch.setattr(gate, "heal_with_retries", then_elsewhere)
    try:
        assert await a.handle([boot("lead", "pod-lead"), boot("x", "pod-x")])
    finally:
        await a.close()
        await b.close()
    outcomes = [r.outcome for r in answers("x", sink_a, sink_b)]
    assert outcomes == ["healed", "healed"]
    assert answers("x", sink_b)[0].from_ledger
    assert await finished_rows(database) == {"x": 1, "lead": 1}
