"""Dead letters that do not fit the producer's record limit are truncated, never lost. Pure."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tests.service.records import Record
from worker.service.replies import dead_letter
from worker.service.requests import Rejection

LIMIT = 64 * 1024


def rejection(value: bytes, headers: list[tuple[str, bytes | None]]) -> Rejection:
    record = Record(value=value, headers=headers, key=b"k" * 100, partition=2, offset=7)
    return Rejection(code="too-large", message="the record is too large", record=record,
                     headers={})  # fmt: skip


def test_a_dead_letter_that_fits_is_whole() -> None:
    original = rejection(b"v" * 1000, [("ce_id", b"r1"), ("x-null", None)])
    key, value, headers = dead_letter(original, LIMIT)
    assert (key, value) == (b"k" * 100, b"v" * 1000)
    assert headers[:2] == [("ce_id", b"r1"), ("x-null", None)]
    assert ("x-schemaheal-original-offset", b"7") in headers
    assert not any(name == "x-schemaheal-truncated" for name, _ in headers)


def test_a_dead_letter_too_large_is_cut_to_fit_with_its_position_and_reason() -> None:
    for value, original_headers in [
        (b"v" * (LIMIT * 3), [("ce_id", b"r1")]),  # a large body
        (b"v" * 100, [(f"h{i}", b"x" * 1000) for i in range(200)]),  # large headers
        (b"v" * (LIMIT - 300), [("ce_id", b"r1")]),  # fits only before our own headers
    ]:
        key, cut, headers = dead_letter(rejection(value, original_headers), LIMIT)
        names = dict(headers)
        assert names["x-schemaheal-error-code"] == b"too-large"
        assert (names["x-schemaheal-original-partition"], names["x-schemaheal-original-offset"]) \
            == (b"2", b"7")  # fmt: skip
        assert b"cut to fit" in (names["x-schemaheal-truncated"] or b"")
        assert cut == value[: len(cut or b"")]
        # what the producer itself measures stays within its limit
        assert DefaultRecordBatchBuilder.estimate_size_in_bytes(key, cut, headers) <= LIMIT
