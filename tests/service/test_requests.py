"""parse_record: every way a record can be bad becomes a rejection that says why. Pure."""

from __future__ import annotations

import pytest

from contracts.events import REQUEST_TYPE, event_headers
from tests.service.records import Record, request_body, request_record
from worker.service.requests import Rejection, Request, parse_record

ALIASES = frozenset({"nexus"})


def parse(record: Record, max_bytes: int = 1_000_000) -> Request | Rejection:
    return parse_record(record, max_bytes=max_bytes, aliases=ALIASES)


def headers_without(name: str) -> list[tuple[str, bytes | None]]:
    return [
        (k, v)
        for k, v in event_headers(event_type=REQUEST_TYPE, source="/s", event_id="r")
        if k != name
    ]


def test_a_good_record_becomes_a_request() -> None:
    parsed = parse(request_record(request_id="abc"))
    assert isinstance(parsed, Request)
    assert (parsed.request_id, parsed.alias, parsed.body.service) == (
        "abc",
        "nexus",
        "orchestrator",
    )
    assert len(parsed.manifest_hash) == 64


@pytest.mark.parametrize(
    ("record", "code", "answerable"),
    [
        (request_record(raw=b"{not json"), "not-json", True),
        (request_record(raw=b"\xff\xfe\x00"), "not-json", True),
        (request_record(raw=b"[1, 2]"), "not-json", True),
        (request_record(request_body(manifest={"tables": "x"})), "invalid-manifest", True),
        (request_record(request_body(database="unknown")), "inconsistent-request", True),
        (request_record(request_body(service="Bad Name")), "invalid-request", True),
        (request_record(request_body(extra=1)), "invalid-request", True),
        (request_record(headers=headers_without("ce_id")), "not-a-cloudevent", False),
        (request_record(headers=headers_without("ce_specversion")), "not-a-cloudevent", True),
        (request_record(headers=[*headers_without("ce_type"), ("ce_type", b"com.evil.v1")]), "unknown-type", True),
        (request_record(headers=[*headers_without("content-type"), ("content-type", b"text/plain")]), "wrong-content-type", True),
        (request_record(raw=b"x" * 2000), "too-large", True),
        (Record(value=None, headers=[("ce_id", b"\xff\xfe"), ("ce_type", None)]), "not-a-cloudevent", False),
    ],
)  # fmt: skip
def test_bad_records_are_rejections_with_a_reason(
    record: Record, code: str, answerable: bool
) -> None:
    parsed = parse(record, max_bytes=1500)
    assert isinstance(parsed, Rejection)
    assert parsed.code == code
    assert (parsed.request_id is not None) is answerable
    assert parsed.message


def test_unknown_database_alias_is_rejected_with_advice() -> None:
    body = request_body(database="billing")
    body["manifest"] = {**body["manifest"], "database": "billing"}
    parsed = parse(request_record(body))
    assert isinstance(parsed, Rejection)
    assert parsed.code == "unknown-database"
    assert "--database ALIAS=DSN" in parsed.message


def test_hostile_manifest_problems_are_reported_with_their_path() -> None:
    body = request_body()
    body["manifest"]["tables"][0]["columns"][1]["default"] = "pg_sleep(100)"
    parsed = parse(request_record(body))
    assert isinstance(parsed, Rejection)
    assert "$.manifest.tables[0].columns[1].default" in parsed.message


def test_null_and_binary_header_values_are_skipped_not_fatal() -> None:
    record = request_record()
    record.headers = [*record.headers, ("x-binary", b"\xff\xfe"), ("x-null", None)]
    assert isinstance(parse(record), Request)
