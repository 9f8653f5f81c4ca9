"""Issue 15.3, validation is total: arbitrary bytes and Unicode in every header and body field
the worker reads. The only outcomes for that record are a reply or a dead letter (never the
worker's own ``internal`` error), and the good requests beside it in the batch are served.

The gate with a recording sink and a real PostgreSQL; the same records through a real broker
and the whole worker are in test_malformed_flood.py."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.events import REQUEST_TYPE, event_headers
from contracts.signing import sign
from tests.conftest import FreshDatabase
from tests.faults.sink import RecordingSink
from tests.faults.test_gate_isolation import KEY, billing, signing_policy
from tests.service.records import Record, request_body
from worker.service.gate import Gate
from worker.settings import WorkerSettings

READ_HEADERS = (
    "ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type",
    "traceparent", "tracestate", "x-schemaheal-key-id", "x-schemaheal-timestamp",
    "x-schemaheal-signature", "x-schemaheal-signature-version", "correlation_id", "reply_to",
    "kafka_correlationId", "kafka_replyTopic", "kafka_replyPartition",
)  # fmt: skip
#: headers to corrupt; those read last (the signature's) more often, as fewer records reach them
TARGETS = READ_HEADERS + ("x-schemaheal-timestamp", "x-schemaheal-signature") * 3
text = st.text(max_size=300)
junk_bytes = st.binary(max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


#: what a corrupted header holds: nothing (left out), null, bytes, Unicode, Unicode digits
corrupted = st.one_of(
    st.just("drop"), st.none(), junk_bytes, text.map(str.encode),
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=30).map(str.encode),
    st.integers(min_value=0).map(lambda n: str(n).encode()),
)  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """A body: arbitrary bytes, arbitrary JSON, or a request with one field made arbitrary."""
    kinds = ["bytes", "json", "field", "manifest-field", "comment", "valid", "valid"]
    kind = draw(st.sampled_from(kinds))
    if kind == "bytes":
        return draw(st.binary(max_size=2000))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = request_body()
    if kind == "field":
        body[draw(st.sampled_from(["service", "instance", "database", "manifest"]))] = draw(
            json_values
        )
    elif kind == "manifest-field":
        table = body["manifest"]["tables"][0]
        target = draw(st.sampled_from([body["manifest"], table, table["columns"][1]]))
        field = draw(st.sampled_from(["name", "type", "default", "comment", "schema",
                                      "service", "columns", "nullable", "check"]))  # fmt: skip
        target[field] = draw(json_values)
    elif kind == "comment":  # on a table that exists after the first heal
        body["manifest"]["tables"][0]["comment"] = draw(text)
    return json.dumps(body).encode()


@st.composite
def fuzzed_records(draw: st.DrawFn) -> Record:
    """A signed request with a few of its headers, its body, one body or manifest field or its
    key made arbitrary (few at a time, so that the checks behind the first one are reached)."""
    value = draw(bodies())
    request_id = draw(st.sampled_from(["fuzzed", "é" * 1000, "²"]))
    unsigned = event_headers(event_type=REQUEST_TYPE, source="/services/orchestrator/fuzz",
                             event_id=request_id)  # fmt: skip
    valid = dict(unsigned + sign(KEY, "k1", unsigned, b"nexus", value))
    broken = draw(st.dictionaries(st.sampled_from(TARGETS), corrupted, max_size=2))
    headers = [
        (name, broken.get(name, valid.get(name)))
        for name in READ_HEADERS
        if broken.get(name) != "drop" and (name in broken or name in valid)
    ]
    headers += draw(st.lists(st.tuples(text, st.none() | junk_bytes), max_size=2))
    key = draw(st.sampled_from([b"nexus", None]) | junk_bytes)
    return Record(value=value, headers=draw(st.permutations(headers)), key=key, offset=2)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(record=fuzzed_records())
async def test_any_record_is_answered_or_dead_lettered_and_its_neighbours_served(
    database: FreshDatabase, tmp_path_factory: Any, record: Record
) -> None:
    sink = RecordingSink()
    policy = signing_policy(tmp_path_factory.mktemp("policy"))
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}, access_policy=policy), sink)
    before, after = billing("before", 1), billing("after", 3)
    try:
        assert await gate.handle([before, record, after])
    finally:
        await gate.close()
    outcomes = sink.outcomes()
    assert outcomes.pop("before") in (["healed"], ["unchanged"])
    assert outcomes.pop("after") in (["healed"], ["unchanged"])
    [*answers] = outcomes.values()
    dead = [d.code for d in sink.dead]
    assert answers or dead, "the record was neither answered nor dead-lettered"
    assert len(answers) <= 1 and len(answers[0] if answers else []) <= 1
    assert not any("internal" in a for a in (answers[0] if answers else [])), answers
    assert "internal" not in dead
