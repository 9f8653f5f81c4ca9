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


def signed_record(
    private_key: Any, key_id: str, request_id: str, offset: int = 0, *,
    body: Any = None, source: str = "/services/orchestrator/pod-a",
    extra: dict[str, str] | None = None, binary: tuple[tuple[str, bytes], ...] = (),
    key: bytes | None = b"nexus",
) -> Record:  # fmt: skip
    """A request signed (version 2) by ``private_key`` as the boot client signs one."""
    from contracts.signing import sign

    value = json.dumps(body if body is not None else request_body()).encode()
    headers = event_headers(event_type=REQUEST_TYPE, source=source, event_id=request_id,
                            extra={"correlation_id": request_id, **(extra or {})})  # fmt: skip
    headers += binary
    headers += sign(private_key, key_id, headers, key, value)
    return Record(value=value, headers=list(headers), key=key, offset=offset)


def with_header(record: Record, name: str, value: bytes | None) -> Record:
    """``record`` with header ``name`` set to ``value`` (replaced in place, else added)."""
    names = [n for n, _ in record.headers]
    headers = list(record.headers)
    if name in names:
        headers[names.index(name)] = (name, value)
    else:
        headers.append((name, value))
    return Record(value=record.value, headers=headers, key=record.key, topic=record.topic,
                  partition=record.partition, offset=record.offset)  # fmt: skip
