"""Gate history for the replay tests: request and reply records and ledger rows, with known
timestamps. Shared by the pure tests and the ones on Apache Kafka."""

from __future__ import annotations

import json
from typing import Any

from contracts.events import REPLY_TYPE, REQUEST_TYPE, SchemaHealed, event_headers
from contracts.validation import load_manifest, manifest_hash
from tests.contracts.builders import column, manifest, pk, table
from worker.replay.audit import LedgerRow, StatementRow
from worker.replay.history import HistoryRecord

HOUR_MS = 3_600_000
TRACEPARENT = "00-{:032x}-{:016x}-01"


def small_manifest(*extra_columns: str, service: str = "orchestrator") -> dict[str, Any]:
    columns = [column("id", "integer", nullable=False), column("name"),
               *(column(c) for c in extra_columns)]  # fmt: skip
    return manifest(table("agents", *columns, primary_key=pk("id")), service=service)


def hash_of(document: dict[str, Any]) -> str:
    return manifest_hash(load_manifest(json.dumps(document)))


def request_value(document: dict[str, Any], instance: str = "pod-a") -> bytes:
    body = {
        "service": document["service"],
        "instance": instance,
        "database": document["database"],
        "manifest": document,
    }
    return json.dumps(body).encode()


def request_headers(request_id: str, service: str, n: int) -> list[tuple[str, bytes]]:
    return event_headers(
        event_type=REQUEST_TYPE, source=f"/services/{service}/pod-a", subject="nexus",
        event_id=request_id,
        extra={"correlation_id": request_id, "traceparent": TRACEPARENT.format(n + 1, n + 1)},
    )  # fmt: skip


def reply_value(
    request_id: str, outcome: str, document: dict[str, Any], ledger_id: int | None
) -> bytes:
    reply = SchemaHealed(request_id=request_id, outcome=outcome, service=document["service"],
                         instance="pod-a", database="nexus", manifest_hash=hash_of(document),
                         ledger_id=None if outcome == "rejected" else ledger_id)  # fmt: skip
    return reply.model_dump_json().encode()


def reply_headers(request_id: str) -> list[tuple[str, bytes]]:
    return event_headers(event_type=REPLY_TYPE, source="/schemaheal/worker", subject=request_id,
                         extra={"correlation_id": request_id})  # fmt: skip


def history(topic: str, offset: int, time_ms: int, value: bytes,
            headers: list[tuple[str, bytes]]) -> HistoryRecord:  # fmt: skip
    return HistoryRecord(topic=topic, partition=0, offset=offset, timestamp_ms=time_ms,
                         key=b"nexus", value=value,
                         headers={k: v.decode() for k, v in headers})  # fmt: skip


def ledger_row(row_id: int, request_id: str | None, time_ms: int, outcome: str = "healed",
               service: str = "orchestrator", manifest_hash: str = "f" * 64,
               served_by: int | None = None) -> LedgerRow:  # fmt: skip
    statement = StatementRow(ordinal=1, change="add column", sql="ALTER TABLE …", hazards=(),
                             duration_ms=1.5, retries=0)  # fmt: skip
    return LedgerRow(id=row_id, database="nexus", request_id=request_id, service=service,
                     instance="pod-a", outcome=outcome, manifest_hash=manifest_hash,
                     started_ms=time_ms, duration_ms=12.0, lock_wait_ms=0.5, served_by=served_by,
                     trace_id=None, statements=(statement,))  # fmt: skip
