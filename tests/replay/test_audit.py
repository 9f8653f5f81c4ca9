"""The pure middle of replay: boots rebuilt from history and ledger rows, every kind of mismatch,
manifest changes, time parsing and the three report formats."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pytest

from contracts.validation import load_manifest
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
from worker.errors import ConfigurationError
from worker.replay.audit import (
    REAPPLY_PREFIX,
    Audit,
    DdlEvent,
    LedgerRow,
    MismatchKind,
    Replan,
    Topics,
    account,
    latest_accepted,
    parse_request,
    reconstruct,
)
from worker.replay.history import History, HistoryRecord, Window, parse_time
from worker.replay.manifest_changes import manifest_changes
from worker.replay.report import html_report, json_lines, terminal

DAY0 = 1_764_000_000_000 - 1_764_000_000_000 % 86_400_000  # a midnight, UTC
WINDOW = Window(DAY0, DAY0 + 24 * HOUR_MS)


def boot_records(n: int, outcome: str = "healed", document: dict[str, Any] | None = None,
                 reply: bool = True) -> list[HistoryRecord]:  # fmt: skip
    document = document or small_manifest()
    at = DAY0 + n * HOUR_MS
    out = [history("service.starting", n, at, request_value(document),
                   request_headers(f"r{n}", document["service"], n))]  # fmt: skip
    if reply:
        out.append(history("schema.healed", n, at + 2000,
                           reply_value(f"r{n}", outcome, document, 100 + n), reply_headers(f"r{n}")))  # fmt: skip
    return out


def audit_of(
    records: Sequence[HistoryRecord], rows: Sequence[LedgerRow] = (), **extra: Any
) -> Audit:
    accounting = account(History(records=tuple(records)), Topics(), WINDOW)
    return reconstruct(window=WINDOW, accounting=accounting, ledger={"nexus": list(rows)},
                       **extra)  # fmt: skip


def kinds(audit: Audit) -> list[str]:
    return [m.kind.value for m in audit.mismatches]


def test_a_clean_history_has_boots_in_time_order_and_no_mismatches() -> None:
    records = [*boot_records(3), *boot_records(1), *boot_records(2)]
    rows = [ledger_row(100 + n, f"r{n}", DAY0 + n * HOUR_MS + 1000) for n in (1, 2, 3)]
    audit = audit_of(records, rows)
    assert [b.request.request_id for b in audit.boots] == ["r1", "r2", "r3"]
    assert audit.mismatches == ()
    first = audit.boots[0]
    assert first.outcome == "healed" and first.ledger is not None and first.ledger.id == 101
    assert first.request.trace_id == f"{2:032x}"
    assert [s.sql for s in first.statements] == ["ALTER TABLE …"]  # from the ledger row


@pytest.mark.parametrize(
    ("records", "rows", "expected"),
    [
        pytest.param(boot_records(1, reply=False), [], ["request-without-reply"], id="no reply"),
        pytest.param(boot_records(1), [], ["reply-without-ledger-row"], id="no ledger row"),
        pytest.param(boot_records(1, outcome="rejected"), [], [], id="rejected needs no row"),
        pytest.param(boot_records(1), [ledger_row(101, "r1", DAY0 + HOUR_MS, outcome="failed")],
                     ["outcome-differs"], id="outcome differs"),
        pytest.param([], [ledger_row(7, "ghost", DAY0 + HOUR_MS)], ["ledger-row-without-event"],
                     id="ledger row without event"),
        pytest.param([], [ledger_row(8, None, DAY0 + HOUR_MS)], ["ledger-row-without-event"],
                     id="a heal from the command line"),
        pytest.param([], [ledger_row(9, "ghost", DAY0 - HOUR_MS)], [], id="row outside window"),
        pytest.param([], [ledger_row(9, REAPPLY_PREFIX + "r1:x", DAY0 + HOUR_MS)], [],
                     id="a replay's own reapply"),
        pytest.param([*boot_records(1),
                      history("service.starting", 99, DAY0 + 3 * HOUR_MS, request_value(small_manifest()),
                              request_headers("r1", "orchestrator", 1))],
                     [ledger_row(101, "r1", DAY0 + HOUR_MS)], ["request-republished"],
                     id="same ce_id published twice"),
    ],
)  # fmt: skip
def test_each_kind_of_mismatch(records: list[HistoryRecord], rows: list[LedgerRow],
                               expected: list[str]) -> None:  # fmt: skip
    assert kinds(audit_of(records, rows)) == expected


def test_a_coalesced_boot_shows_the_statements_of_the_heal_that_served_it() -> None:
    rows = [ledger_row(101, "r1", DAY0 + HOUR_MS),
            ledger_row(102, "r2", DAY0 + 2 * HOUR_MS, served_by=101)]  # fmt: skip
    audit = audit_of([*boot_records(1), *boot_records(2)], rows)
    coalesced = audit.boots[1]
    assert coalesced.ledger is not None and coalesced.ledger.id == 102
    assert coalesced.heal is not None and coalesced.heal.id == 101
    assert coalesced.statements == rows[0].statements


def test_ddl_outside_the_worker_and_unsatisfied_manifests_are_mismatches() -> None:
    ddl = [
        DdlEvent(database="nexus", time_ms=DAY0 + HOUR_MS, user="alice", application="psql",
                 command="ALTER TABLE", object="public.agents"),
        DdlEvent(database="nexus", time_ms=DAY0 + HOUR_MS, user="schemaheal",
                 application="schemaheal worker", command="ALTER TABLE", object="public.agents"),
        DdlEvent(database="nexus", time_ms=DAY0 - HOUR_MS, user="bob", application="psql",
                 command="CREATE TABLE", object="public.old"),
    ]  # fmt: skip
    replans = [
        Replan(database="nexus", service="orchestrator", request_id="r1", manifest_hash="a" * 64,
               statements=("ALTER TABLE public.agents ADD COLUMN name text",), blocking_drift=(),
               changes=("AddColumn public.agents.name",)),
        Replan(database="nexus", service="billing", request_id="r2", manifest_hash="b" * 64,
               statements=(), changes=(), blocking_drift=()),
    ]  # fmt: skip
    audit = audit_of([], [], ddl=ddl, replans=replans)
    assert kinds(audit) == ["ddl-outside-worker", "manifest-unsatisfied"]
    assert "alice" in audit.mismatches[0].detail and "psql" in audit.mismatches[0].detail
    assert "AddColumn public.agents.name" in audit.mismatches[1].detail  # by name, not SQL
    assert "ALTER TABLE" not in audit.mismatches[1].detail


def test_dead_letters_are_reported_with_their_reason() -> None:
    dead = history("service.starting.dlq", 0, DAY0 + HOUR_MS, b"{not json",
                   [("ce_id", b"bad-1"), ("x-schemaheal-error-code", b"bad-json"),
                    ("x-schemaheal-error-message", b"the body is not JSON")])  # fmt: skip
    audit = audit_of([dead], [])
    [mismatch] = audit.mismatches
    assert mismatch.kind is MismatchKind.DEAD_LETTERED
    assert mismatch.subject == "bad-1" and "bad-json" in mismatch.detail


def test_manifest_changes_since_the_service_s_previous_boot() -> None:
    old = small_manifest()
    new = small_manifest("scope", "tenant_id")
    records = [*boot_records(1, document=old), *boot_records(2, document=new),
               *boot_records(3, document=new)]  # fmt: skip
    audit = audit_of(records, [ledger_row(100 + n, f"r{n}", DAY0 + n * HOUR_MS) for n in (1, 2, 3)])
    first, changed, same = audit.boots
    assert first.first_of_service and first.changes == ()
    assert changed.changes == ("+ column public.agents.scope text",
                               "+ column public.agents.tenant_id text")  # fmt: skip
    assert same.changes == () and not same.first_of_service


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (small_manifest(), small_manifest("scope"), ["+ column public.agents.scope text"]),
        (small_manifest("scope"), small_manifest(), ["- column public.agents.scope"]),
        ({**small_manifest(), "tables": [{**small_manifest()["tables"][0],
          "columns": [{"name": "id", "type": "bigint", "nullable": False},
                      {"name": "name", "type": "text"}]}]},
         small_manifest(), ["~ column public.agents.id: type 'bigint' → 'integer'"]),
        (small_manifest(), {**small_manifest(), "tables": [*small_manifest()["tables"],
          {"name": "runs", "columns": [{"name": "id", "type": "uuid"}]}]}, ["+ table public.runs"]),
        (small_manifest(), {**small_manifest(), "extensions": [{"name": "pgcrypto"}]},
         ["+ extension public.pgcrypto"]),
        (small_manifest(), {**small_manifest(), "tables": [{**small_manifest()["tables"][0],
          "indexes": [{"elements": [{"column": "name"}]}]}]}, ["+ index public.agents agents_name_idx"]),
    ],
)  # fmt: skip
def test_manifest_changes(
    before: dict[str, Any], after: dict[str, Any], expected: list[str]
) -> None:
    old = load_manifest(json.dumps(before))
    new = load_manifest(json.dumps(after))
    assert list(manifest_changes(old, new)) == expected
    assert manifest_changes(new, new) == ()


def test_unreadable_requests_are_boots_that_say_why() -> None:
    record = history("service.starting", 0, DAY0 + HOUR_MS, b'{"service": 1}',
                     request_headers("bad", "orchestrator", 0))  # fmt: skip
    event = parse_request(record)
    assert event.problem is not None
    assert event.problem.startswith("unreadable body")


def test_the_re_plan_checks_the_latest_manifest_the_worker_let_start() -> None:
    records = [
        *boot_records(1),
        *boot_records(2, outcome="rejected"),
        *boot_records(3, outcome="failed"),
    ]
    audit = audit_of(records)
    assert [b.request.request_id for b in latest_accepted(audit.boots)] == ["r1"]


def test_the_service_filter_keeps_one_service() -> None:
    other = small_manifest(service="billing")
    records = [r for r in [*boot_records(1), *boot_records(2, document=other)]
               if r.topic == "service.starting"]  # fmt: skip
    accounting = account(History(records=tuple(records)), Topics(), WINDOW)
    audit = reconstruct(window=WINDOW, accounting=accounting, ledger={}, service="billing")
    assert [b.request.service for b in audit.boots] == ["billing"]
    assert [m.subject for m in audit.mismatches] == ["r2"]


NOW = 1_764_072_000_000  # 2025-11-25T12:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("90m", NOW - 90 * 60_000),
        ("12h", NOW - 12 * HOUR_MS),
        ("7d", NOW - 7 * 24 * HOUR_MS),
        ("2w", NOW - 14 * 24 * HOUR_MS),
        ("2025-11-25T12:00:00Z", NOW),
        ("2025-11-25T13:00:00+01:00", NOW),
        ("2025-11-25T12:00:00", NOW),  # no offset: UTC
        ("2025-11-25", NOW - 12 * HOUR_MS),
    ],
)
def test_times(text: str, expected: int) -> None:
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7x", "-3d", "2025-13-01"])
def test_bad_times_say_what_to_write(text: str) -> None:
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        parse_time(text, NOW)


def test_the_window_includes_since_and_excludes_until() -> None:
    assert DAY0 in WINDOW and DAY0 + 24 * HOUR_MS not in WINDOW
    assert DAY0 + 24 * HOUR_MS - 1 in WINDOW and DAY0 - 1 not in WINDOW


def _sample_audit() -> Audit:
    hostile = small_manifest()
    records = [*boot_records(1), *boot_records(2, reply=False, document=hostile)]
    ddl = [DdlEvent(database="nexus", time_ms=DAY0 + HOUR_MS, user="<script>alert(1)</script>",
                    application="psql", command="DROP TABLE", object="public.x")]  # fmt: skip
    return audit_of(records, [ledger_row(101, "r1", DAY0 + HOUR_MS)], ddl=ddl)


def test_json_lines_have_every_boot_and_mismatch_then_a_summary() -> None:
    lines = [json.loads(line) for line in json_lines(_sample_audit())]
    assert [line["type"] for line in lines] == ["boot", "boot", "mismatch", "mismatch", "summary"]
    assert lines[0]["statements"][0]["sql"] == "ALTER TABLE …"
    assert lines[0]["ledger_id"] == 101 and lines[0]["trace_id"] == f"{2:032x}"
    assert lines[-1]["mismatches"] == {"ddl-outside-worker": 1, "request-without-reply": 1}
    assert lines[-1]["outcomes"] == {"healed": 1, "no reply": 1}


def test_html_has_a_timeline_escapes_everything_and_links_the_marks() -> None:
    page = html_report(_sample_audit())
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<circle") == 2 and 'href="#boot-0"' in page and 'id="boot-0"' in page
    assert 'href="#mismatch-1"' in page and 'id="mismatch-1"' in page
    assert "request-without-reply" in page


def test_the_terminal_table_lists_boots_and_mismatches() -> None:
    from rich.console import Console

    console = Console(width=240, record=True, file=io.StringIO())
    console.print(terminal(_sample_audit()))
    text = console.export_text()
    assert "orchestrator" in text and "healed" in text and "no reply" in text
    assert "request-without-reply" in text and "2 boot(s)" in text
