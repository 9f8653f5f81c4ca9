"""Fake Kafka records and request builders for the gate's tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contracts.events import REQUEST_TYPE, event_headers
from tests.contracts.builders import column, manifest, pk, table


@dataclass
class Record:
    """Just the ConsumerRecord fields the worker reads."""

    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    key: bytes | None = b"nexus"
    topic: str = "service.starting"
    partition: int = 0
    offset: int = 0


def request_body(**changes: Any) -> dict[str, Any]:
    want = manifest(table("tenants", column("id", "integer", nullable=False),
                          column("openai_api_key"), primary_key=pk("id")))  # fmt: skip
    body = {"service": "orchestrator", "instance": "pod-a", "database": "nexus", "manifest": want}
    return {**body, **changes}


def request_record(
    body: Any = None, *, request_id: str = "req-1", headers: Any = None, raw: bytes | None = None
) -> Record:
    value = (
        raw
        if raw is not None
        else json.dumps(body if body is not None else request_body()).encode()
    )
    if headers is None:
        headers = event_headers(event_type=REQUEST_TYPE, source="/services/orchestrator/pod-a",
                                subject="nexus", event_id=request_id)  # fmt: skip
    return Record(value=value, headers=headers)
