"""The gate's consumer spans: one per request, a child of the context its headers carry."""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from worker.observability.tracing import context_from_headers, messaging_attributes, tracer
from worker.settings import WorkerSettings

__all__ = ["process_span", "start_process_span"]


class Received(Protocol):
    """A request or a rejected record: what its span is made of."""

    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def record(self) -> Any: ...


def process_span(settings: WorkerSettings, of: Received, links: list[Link] | None = None) -> Any:
    """The consumer span of one request, current while the block runs."""
    return trace.use_span(start_process_span(settings, of, links), end_on_exit=True)


def start_process_span(
    settings: WorkerSettings, of: Received, links: list[Link] | None = None
) -> Span:
    """The consumer span of one request (ended by the caller)."""
    record = of.record
    return tracer().start_span(
        f"process {settings.request_topic}",
        context=context_from_headers(of.headers),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=messaging_attributes(
            "process", settings.request_topic, message_id=of.request_id, key=record.key,
            **{"messaging.consumer.group.name": settings.group_id,
               "messaging.destination.partition.id": str(record.partition),
               "messaging.kafka.offset": record.offset},
        ),
    )  # fmt: skip
