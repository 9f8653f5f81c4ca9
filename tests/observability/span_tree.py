"""Boot traces as Jaeger stores them (OTLP JSON from its ``/api/v3``), checked against the
README's tree:

    ensure_schema (the client; under the caller's span when it has one)
    ├── send service.starting
    │   └── process service.starting                      (the worker)
    │       ├── schemaheal boot check                      (answers a verified manifest, or
    │       │                                               steps aside for the heal)
    │       ├── schemaheal heal                            (not in a coalesced request's trace:
    │       │   ├── schemaheal lock wait                    its process span links to the heal)
    │       │   ├── schemaheal inspect and plan
    │       │   ├── schemaheal apply → one span per statement, db.* attributes  (when there is
    │       │   ├── schemaheal verify                                          something to do)
    │       │   └── schemaheal ledger write
    │       └── send schema.healed
    └── receive schema.healed                              (links to send schema.healed)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from tests.jaeger import attribute_map

Span = dict[str, Any]
HEAL_CHILDREN = {"schemaheal lock wait", "schemaheal inspect and plan", "schemaheal ledger write"}
APPLY_CHILDREN = {"schemaheal apply", "schemaheal verify"}  # when there was something to apply


def by_trace(spans: list[Span]) -> dict[str, list[Span]]:
    traces: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        traces[span["traceId"]].append(span)
    return dict(traces)


def attributes(span: Span) -> dict[str, Any]:
    return attribute_map(span.get("attributes", []))


def links(span: Span) -> list[tuple[str, str]]:
    return [(link["traceId"], link["spanId"]) for link in span.get("links", [])]


def statements_covered(spans: list[Span]) -> int:
    """How many statements ``spans`` ran: a new table's statements go in one round trip, one
    span for them saying how many (``db.operation.batch.size``)."""
    return sum(int(attributes(s).get("db.operation.batch.size", 1)) for s in spans)


@dataclass(frozen=True, slots=True)
class Boot:
    """One boot's trace, checked: its spans by name (one each, statements aside)."""

    trace_id: str
    root: Span
    spans: dict[str, Span]
    statements: list[Span]

    @property
    def heal(self) -> Span | None:
        """The span that served the request: the heal, or the boot check when it answered."""
        return self.spans.get("schemaheal heal") or self.spans.get("schemaheal boot check")

    @property
    def process(self) -> Span:
        return self.spans["process service.starting"]


def check_boot(spans: list[Span], *, external_parent: str | None = None) -> Boot:
    """Assert one boot's trace is the README's tree, with no orphan span; return it."""
    ids = {s["spanId"]: s for s in spans}
    [root] = [s for s in spans if s.get("parentSpanId", "") in ("", external_parent)]
    assert root["name"] == "ensure_schema", f"the root is {root['name']}"
    orphans = [s["name"] for s in spans if s is not root and s.get("parentSpanId") not in ids]
    assert not orphans, f"orphan spans: {orphans}"

    def parent(span: Span) -> str:
        return str(ids[span["parentSpanId"]]["name"])

    apply = [s for s in spans if s["name"] == "schemaheal apply"]
    statements = [s for s in spans if apply and s.get("parentSpanId") == apply[0]["spanId"]]
    named = {s["name"]: s for s in spans if s not in statements}
    assert len(named) + len(statements) == len(spans), "a span name appears twice"
    assert parent(named["send service.starting"]) == "ensure_schema"
    assert parent(named["process service.starting"]) == "send service.starting"
    assert parent(named["send schema.healed"]) == "process service.starting"
    assert parent(named["receive schema.healed"]) == "ensure_schema"
    reply = named["send schema.healed"]
    assert links(named["receive schema.healed"]) == [(reply["traceId"], reply["spanId"])]
    if "schemaheal boot check" in named:
        assert parent(named["schemaheal boot check"]) == "process service.starting"
    if "schemaheal heal" in named:
        assert parent(named["schemaheal heal"]) == "process service.starting"
        for name in HEAL_CHILDREN | (APPLY_CHILDREN if statements else set()):
            assert parent(named[name]) == "schemaheal heal", name
    for statement in statements:
        found = attributes(statement)
        assert found["db.system.name"] == "postgresql"
        assert found["db.query.text"] and found["db.operation.name"], statement["name"]
    return Boot(trace_id=root["traceId"], root=root, spans=named, statements=statements)
