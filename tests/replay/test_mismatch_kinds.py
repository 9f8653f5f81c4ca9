"""Each kind of mismatch, one table each, against its own small function; then the two steps of
an audit: *everything read* (the accounting) and *everything matched* (reconstruct)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from contracts.events import SchemaHealed
from tests.replay.builders import (
    HOUR_MS,
    history,
    ledger_row,
    reply_headers,
    reply_value,
    request_headers,
    request_value,
    small_manifest,
)
from tests.replay.test_audit import DAY0, WINDOW, audit_of, boot_records, kinds
from worker.replay import mismatches
from worker.replay.accounting import Topics, account, classify
from worker.replay.events import (
    Boot,
    DdlEvent,
    Replan,
    ReplyEvent,
    RequestEvent,
    StatementRow,
    Unreadable,
)
from worker.replay.history import History
from worker.replay.reading import Gap

AT = DAY0 + HOUR_MS


def request(request_id: str = "r1", database: str = "nexus") -> RequestEvent:
    return RequestEvent(request_id=request_id, time_ms=AT, position="service.starting:0:1",
                        service="orchestrator", database=database)  # fmt: skip


def reply(
    outcome: str = "healed", ledger_id: int | None = 101, request_id: str = "r1"
) -> ReplyEvent:
    said = SchemaHealed(request_id=request_id, outcome=outcome, service="orchestrator",
                        instance="pod-a", database="nexus", manifest_hash="f" * 64,
                        ledger_id=ledger_id)  # fmt: skip
    return ReplyEvent(request_id=request_id, time_ms=AT + 1, position="schema.healed:0:1",
                      reply=said)  # fmt: skip


def boot(answer: ReplyEvent | None = None, row: Any = None, database: str = "nexus") -> Boot:
    return Boot(request=request(database=database), reply=answer, ledger=row)


ROW = ledger_row(101, "r1", AT)


@pytest.mark.parametrize(("value", "found"), [(boot(), 1), (boot(reply()), 0)])
def test_request_without_reply(value: Boot, found: int) -> None:
    assert len(mismatches.request_without_reply(value)) == found


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (boot(reply()), 1),
        (boot(reply(), ROW), 0),
        (boot(reply("rejected", None)), 0),  # a rejection writes no row
        (boot(reply(), database="billing"), 0),  # that ledger was not read
        (boot(), 0),  # no reply: another kind
    ],
)
def test_reply_without_ledger_row(value: Boot, found: int) -> None:
    assert len(mismatches.reply_without_ledger_row(value, {"nexus": []})) == found


@pytest.mark.parametrize(
    ("value", "found"),
    [(boot(reply(), ROW), 0), (boot(reply("failed"), ROW), 1), (boot(reply()), 0), (boot(), 0)],
)
def test_outcome_differs(value: Boot, found: int) -> None:
    assert len(mismatches.outcome_differs(value)) == found


@pytest.mark.parametrize(("ids", "found"), [({"r1"}, 0), (set(), 1), ({"r2"}, 1)])
def test_reply_without_request(ids: set[str], found: int) -> None:
    assert len(mismatches.reply_without_request(reply(), ids)) == found


@pytest.mark.parametrize(
    ("row", "ids", "found"),
    [(ROW, {"r1"}, 0), (ROW, set(), 1), (ledger_row(8, None, AT), {"r1"}, 1)],
)
def test_ledger_row_without_event(row: Any, ids: set[str], found: int) -> None:
    assert len(mismatches.ledger_row_without_event(row, ids)) == found


@pytest.mark.parametrize(("outcome", "found"), [("healed", 0), ("failed", 0), ("interrupted", 1),
                                               ("running", 1)])  # fmt: skip
def test_heal_interrupted(outcome: str, found: int) -> None:
    found_ = mismatches.heal_interrupted(ledger_row(8, "r1", AT, outcome=outcome))
    assert len(found_) == found
    assert all("after 1 committed statement(s)" in m.detail for m in found_)


def test_an_interrupted_heal_names_the_statements_only_the_catalog_showed_ran() -> None:
    """A CONCURRENTLY statement killed between its commit and its row, confirmed by the heal
    that closed it: named in full (not cut at 80 characters like the list of what ran)."""
    cic = (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON public.items USING btree (name)"
    )
    confirmed = StatementRow(ordinal=2, change="AddIndex public.items.items_name_idx", sql=cic,
                             hazards=("index-build",), duration_ms=None, retries=0,
                             state="confirmed")  # fmt: skip
    row = ledger_row(8, "r1", AT, outcome="interrupted")
    (found,) = mismatches.heal_interrupted(replace(row, statements=(*row.statements, confirmed)))
    assert "after 2 committed statement(s)" in found.detail
    assert f"1 confirmed from the catalog: {cic}" in found.detail
    (plain,) = mismatches.heal_interrupted(row)
    assert "confirmed" not in plain.detail


def test_an_interrupted_heal_is_reported_and_the_heal_that_finished_answers_the_boot() -> None:
    """A worker SIGKILLed mid-apply: its row (closed by the next worker) is a mismatch of its
    own; the boot's ledger row is the redelivered request's heal, whose outcome the reply has."""
    rows = [ledger_row(100, "r1", AT + 100, outcome="interrupted"), ledger_row(101, "r1", AT + 900)]
    audit = audit_of(boot_records(1), rows)
    assert kinds(audit) == ["heal-interrupted"]
    assert audit.mismatches[0].subject == "ledger #100"
    assert audit.boots[0].ledger is not None and audit.boots[0].ledger.id == 101


def _ddl(application: str, time_ms: int = AT) -> DdlEvent:
    return DdlEvent(database="nexus", time_ms=time_ms, user="alice", application=application,
                    command="ALTER TABLE", object="public.agents")  # fmt: skip


@pytest.mark.parametrize(
    ("event", "found"),
    [(_ddl("psql"), 1), (_ddl("schemaheal worker"), 0), (_ddl("psql", DAY0 - 1), 0)],
)
def test_ddl_outside_worker(event: DdlEvent, found: int) -> None:
    assert len(mismatches.ddl_outside_worker(event, WINDOW)) == found


def _replan(statements: tuple[str, ...], drift: tuple[str, ...] = ()) -> Replan:
    return Replan(database="nexus", service="orchestrator", request_id="r1",
                  manifest_hash="a" * 64, statements=statements, changes=statements,
                  blocking_drift=drift)  # fmt: skip


@pytest.mark.parametrize(
    ("replan", "found"), [(_replan(()), 0), (_replan(("ADD",)), 1), (_replan((), ("x",)), 1)]
)
def test_manifest_unsatisfied(replan: Replan, found: int) -> None:
    assert len(mismatches.manifest_unsatisfied(replan, WINDOW)) == found


@pytest.mark.parametrize(
    ("headers", "subject"),
    [([("ce_id", b"bad-1"), ("x-schemaheal-error-code", b"bad-json")], "bad-1"),
     ([], "service.starting.dlq:0:3")],
)  # fmt: skip
def test_dead_lettered(headers: list[tuple[str, bytes]], subject: str) -> None:
    [found] = mismatches.dead_lettered(history("service.starting.dlq", 3, AT, b"{", headers))
    assert found.subject == subject


def test_unreadable_record_names_its_position() -> None:
    [found] = mismatches.unreadable_record(Unreadable(position="t:0:4", time_ms=AT, reason="why"))
    assert (found.kind.value, found.subject, found.detail) == ("unreadable-record", "t:0:4", "why")


def test_request_without_id_names_its_position() -> None:
    [found] = mismatches.request_without_id(history("service.starting", 9, AT, b"{}", []))
    assert (found.kind.value, found.subject) == ("request-without-id", "service.starting:0:9")


def test_request_republished_names_both_positions() -> None:
    [found] = mismatches.request_republished(request(), request())
    assert found.kind.value == "request-republished" and found.detail.count(":0:1") == 2


# Step one: everything read. Every record lands in exactly one class.

DOC = small_manifest()
REQUEST = history(
    "service.starting", 1, AT, request_value(DOC), request_headers("r1", "orchestrator", 1)
)
NEARBY = history(
    "service.starting", 2, DAY0 - 1, request_value(DOC), request_headers("r0", "orchestrator", 0)
)
NO_ID = history("service.starting", 3, AT, request_value(DOC), [])
REPLY = history("schema.healed", 1, AT, reply_value("r1", "healed", DOC, 101), reply_headers("r1"))
BAD_REPLY = history("schema.healed", 2, AT, b"{not json", reply_headers("r1"))
NOT_A_REPLY = history("schema.healed", 3, AT, b"{}", [("ce_type", b"something.else")])
DEAD = history("service.starting.dlq", 1, AT, b"{", [])
ELSEWHERE = history("other.topic", 1, AT, b"", [])


@pytest.mark.parametrize(
    ("record", "kind"),
    [(REQUEST, "requests"), (NEARBY, "nearby"), (NO_ID, "without_id"), (REPLY, "replies"),
     (BAD_REPLY, "unreadable"), (NOT_A_REPLY, "unreadable"), (DEAD, "dead_letters"),
     (ELSEWHERE, "unreadable")],
)  # fmt: skip
def test_each_record_has_one_class(record: Any, kind: str) -> None:
    assert classify(record, Topics(), WINDOW)[0] == kind


def test_the_accounting_adds_up_and_counts_request_ids_only() -> None:
    records = (REQUEST, NEARBY, NO_ID, REPLY, BAD_REPLY, NOT_A_REPLY, DEAD, ELSEWHERE)
    gap = Gap(topic="schema.healed", partition=0, first=4, end=6)
    found = account(History(records=records, gaps=(gap,)), Topics(), WINDOW)
    assert found.read == found.classified == len(records)
    assert [len(found.requests), len(found.nearby), len(found.without_id), len(found.replies),
            len(found.dead_letters), len(found.unreadable)] == [1, 1, 1, 1, 1, 4]  # fmt: skip
    assert found.request_ids == {"r1", "r0"}
    assert "schema.healed:0:4-5" in [u.position for u in found.unreadable]


# Step two: everything matched. What used to vanish is now a mismatch.

LOST_REPLY = history(
    "schema.healed", 0, AT, reply_value("lost", "healed", DOC, 7), reply_headers("lost")
)


@pytest.mark.parametrize(
    ("records", "rows", "expected"),
    [
        pytest.param([LOST_REPLY], [ledger_row(7, "lost", AT)],
                     ["ledger-row-without-event", "reply-without-request"],
                     id="a lost request: its reply and ledger row do not stand in for it"),
        pytest.param([*boot_records(1)[:1], BAD_REPLY], [], ["request-without-reply", "unreadable-record"],
                     id="an unreadable reply"),
        pytest.param([NO_ID], [], ["request-without-id"], id="a request without ce_id"),
        pytest.param([NEARBY, history("schema.healed", 5, DAY0 + 1, reply_value("r0", "healed", DOC, 9),
                                      reply_headers("r0"))], [], [],
                     id="the reply of a request just before the window"),
    ],
)  # fmt: skip
def test_nothing_read_is_dropped_without_a_mismatch(
    records: list[Any], rows: list[Any], expected: list[str]
) -> None:
    assert sorted(kinds(audit_of(records, rows))) == expected
