"""The gate's consumer spans: one per request, a child of the context its headers carry."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind

from worker.observability.tracing import context_from_headers, messaging_attributes, tracer
from worker.settings import WorkerSettings

__all__ = ["process_span", "start_process_span"]


def process_span(
    settings: WorkerSettings, headers: dict[str, str], request_id: str | None, record: Any,
    links: list[Link] | None = None,
) -> Any:  # fmt: skip
    """The consumer span of one request, current while the block runs."""
    span = start_process_span(settings, headers, request_id, record, links)
    return trace.use_span(span, end_on_exit=True)


def start_process_span(
    settings: WorkerSettings, headers: dict[str, str], request_id: str | None, record: Any,
    links: list[Link] | None = None,
) -> Span:  # fmt: skip
    """The consumer span of one request (ended by the caller)."""
    return tracer().start_span(
        f"process {settings.request_topic}",
        context=context_from_headers(headers),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=messaging_attributes(
            "process", settings.request_topic, message_id=request_id, key=record.key,
            **{"messaging.consumer.group.name": settings.group_id,
               "messaging.destination.partition.id": str(record.partition),
               "messaging.kafka.offset": record.offset},
        ),
    )  # fmt: skip
