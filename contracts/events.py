"""The wire contract of the boot gate: topics, CloudEvents headers, request and reply bodies.

Events are CloudEvents 1.0 in Kafka *binary content mode*: attributes travel as ``ce_*`` headers,
the JSON body is the event data, ``content-type: application/json``. The Kafka key is the
database alias, so one database's requests stay in order on one partition.

    service.starting      request   ServiceStarting   key = database alias
    schema.healed         reply     SchemaHealed      key = database alias
    service.starting.dlq  dead letters: the original record, with x-schemaheal-error-* headers
    service.heartbeat     liveness  ServiceHeartbeat  key = database alias; ce_type
                          HEARTBEAT_TYPE (still running) or STOPPED_TYPE (stopped for good)

A reply's ``ce_subject`` repeats the request's ``ce_id``; its ``correlation_id`` header repeats
the request's ``correlation_id`` (else its ``ce_id``), and Spring Kafka's ``kafka_correlationId``
comes back byte for byte. A request may name its reply topic (``reply_to``, or Spring Kafka's
``kafka_replyTopic`` / ``kafka_replyPartition``) among those the worker's operator allows. W3C
``traceparent`` / ``tracestate`` headers are carried from request to reply.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CONTENT_TYPE",
    "DEAD_LETTER_TOPIC",
    "HEARTBEAT_TOPIC",
    "HEARTBEAT_TYPE",
    "REPLY_TOPIC",
    "REPLY_TYPE",
    "REQUEST_TOPIC",
    "REQUEST_TYPE",
    "STOPPED_TYPE",
    "AppliedStatementInfo",
    "BlockedStatementInfo",
    "DriftInfo",
    "Durations",
    "ErrorInfo",
    "SchemaHealed",
    "ServiceHeartbeat",
    "ServiceStarting",
    "decode_headers",
    "event_headers",
    "first_values",
    "service_source",
    "source_service",
]

REQUEST_TOPIC = "service.starting"
REPLY_TOPIC = "schema.healed"
DEAD_LETTER_TOPIC = "service.starting.dlq"
REQUEST_TYPE = "dev.schemaheal.service.starting.v1"
HEARTBEAT_TOPIC = "service.heartbeat"
HEARTBEAT_TYPE = "dev.schemaheal.service.heartbeat.v1"
STOPPED_TYPE = "dev.schemaheal.service.stopped.v1"
REPLY_TYPE = "dev.schemaheal.schema.healed.v1"
CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"

Outcome = Literal["healed", "unchanged", "blocked", "rejected", "failed"]
_NAME = r"^[a-z0-9][a-z0-9._-]{0,99}$"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Instance(_Event):
    """Which running instance of which service an event comes from."""

    service: Annotated[str, Field(pattern=_NAME)]
    instance: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


class ServiceStarting(_Instance):
    """The request a service publishes before it starts: heal my schemas, then tell me.

    Where the worker's access policy lists keys for ``service``, the record must be signed
    (version 2, in ``x-schemaheal-*`` headers: see the AsyncAPI document) over these exact
    bytes, its key and its routing headers, and its ``ce_source`` must name ``service``."""

    database: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")] = Field(
        description="an alias the worker maps to a DSN; a DSN never travels in an event"
    )
    manifest: dict[str, Any] = Field(description="the schema manifest (manifest.schema.json)")


class ServiceHeartbeat(_Instance):
    """An instance that booted through the gate says it still runs (``ce_type`` HEARTBEAT_TYPE:
    its lease is renewed for the worker's ``lease_ttl_s``) or that it stopped (STOPPED_TYPE: its
    lease ends now). Signed and checked like a request, without a manifest; no reply."""

    database: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]


class AppliedStatementInfo(_Event):
    ordinal: int
    change: str
    sql: str
    hazards: list[str]
    duration_ms: float
    retries: int


class DriftInfo(_Event):
    kind: str
    target: str
    detail: str
    blocking: bool


class BlockedStatementInfo(_Event):
    sql: str
    hazard: str
    reason: str


class MigrationInfo(_Event):
    """An online column migration of the manifest (issue 19) and where it stands: the heal
    answers once its expand committed, while its backfill and enforcement go on."""

    id: str
    kind: Literal["rename", "convert", "backfill"]
    target: str = Field(description="schema.table.column")
    state: str = Field(
        description="backfilling, enforcing, expanded, contracted, retired-kept (contracted, the "
        "old column kept until column-drop is approved), or unregistered"
    )
    running: bool = Field(description="true while the backfill or the enforcement runs")
    rows_done: int
    relies_on: str = Field(description="what the service may rely on meanwhile")
    contract: str = Field(
        "", description="where its contract stands, and why it waits (\"waiting: service X "
        "instance I with the old shape holds a lease until T…\", \"waiting: grace period until "
        "T\", \"waiting: approval for column-drop needed…\", \"waiting: backfill running N%…\")",
    )  # fmt: skip
    waiting: str | None = Field(
        None, description="why contract waits, as a stable word: backfill, stopped, tracking, "
        "lease, grace or approval (null: it does not wait)",
    )  # fmt: skip


class ErrorInfo(_Event):
    code: str
    message: str


class Durations(_Event):
    total_ms: float = 0.0
    lock_wait_ms: float = 0.0
    queue_ms: float = 0.0


class SchemaHealed(_Event):
    """The worker's answer to one request."""

    request_id: str
    outcome: Outcome
    service: str | None = None
    instance: str | None = None
    database: str | None = None
    manifest_hash: str | None = None
    statements: list[AppliedStatementInfo] = []
    drift: list[DriftInfo] = []
    blocked: list[BlockedStatementInfo] = []
    migrations: list[MigrationInfo] = Field(
        default=[], exclude_if=lambda migrations: not migrations,
        description="the manifest's online column migrations not yet contracted",
    )  # fmt: skip
    error: ErrorInfo | None = None
    durations: Durations = Durations()
    coalesced: bool = Field(default=False, description="served by a heal run for another request")
    healed_by: str | None = Field(default=None, description="request_id of the heal that served it")
    from_ledger: bool = Field(
        default=False, description="a redelivered request, answered from the ledger"
    )
    ledger_id: int | None = None

    @property
    def may_start(self) -> bool:
        """True when the service may proceed with its startup."""
        return self.outcome in ("healed", "unchanged")


def event_headers(
    *,
    event_type: str,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers (plus ``extra``), as Kafka header tuples."""
    headers = {
        "ce_specversion": SPEC_VERSION,
        "ce_id": event_id or str(uuid.uuid4()),
        "ce_source": source,
        "ce_type": event_type,
        "ce_time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "content-type": CONTENT_TYPE,
    }
    if subject is not None:
        headers["ce_subject"] = subject
    headers.update(extra or {})
    return [(key, value.encode("utf-8")) for key, value in headers.items()]


def first_values(raw: Iterable[tuple[str, bytes | None]] | None) -> dict[str, bytes]:
    """Each header's first non-null value, as bytes: the one the worker reads (and the one a
    signature covers); a repeated header keeps its first."""
    out: dict[str, bytes] = {}
    for key, value in raw or ():
        if value is not None and key not in out:
            out[key] = bytes(value)
    return out


def decode_headers(raw: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Kafka headers as text: each one's first non-null value (see :func:`first_values`); a
    header whose value is not UTF-8 is left out (never fatal, and never replaced by a later
    value, which a signature would not cover)."""
    out: dict[str, str] = {}
    for key, value in first_values(raw).items():
        try:
            out[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return out


def service_source(service: str, instance: str) -> str:
    """The ``ce_source`` of a request from ``instance`` of ``service``."""
    return f"/services/{service}/{instance}"


def source_service(source: str | None) -> str | None:
    """The service a ``ce_source`` names: ``/services/NAME`` or ``/services/NAME/ANYTHING``."""
    parts = (source or "").split("/", 3)
    if len(parts) < 3 or parts[0] != "" or parts[1] != "services" or not parts[2]:
        return None
    return parts[2]
