"""Traces: one per boot, from the service's boot span through the worker and back.

Configured the standard way, by the ``OTEL_*`` environment variables only:
``OTEL_TRACES_EXPORTER=otlp`` (with ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_EXPORTER_OTLP_PROTOCOL``) or ``console``; ``OTEL_SERVICE_NAME`` names the process. With
nothing configured no SDK is installed, and the OpenTelemetry API's no-op tracer costs next to
nothing. Span names, kinds and attributes follow the current messaging semantic conventions
(``send service.starting``, ``process service.starting``, ``messaging.operation.type``, …), not
the deprecated names FastStream's own middleware emits, so that middleware is not used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

TRACER_NAME = "schemaheal"


def configure_tracing(default_service: str = "schemaheal-worker") -> TracerProvider | None:
    """Install an SDK tracer provider when ``OTEL_*`` asks for an exporter; else do nothing."""
    exporter = _exporter_from_env()
    if exporter is None:
        return None
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", default_service)}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _exporter_from_env() -> SpanExporter | None:
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        names = ["otlp"]
    if not names or names == ["none"]:
        return None
    if "console" in names:
        return ConsoleSpanExporter()
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )

        return OTLPSpanExporter()  # type: ignore[no-any-return]
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def context_from_headers(headers: Mapping[str, str]) -> Context:
    """The trace context a record carries (W3C traceparent / tracestate)."""
    return propagate.extract(dict(headers))


def headers_from_context(context: Context | None = None) -> dict[str, str]:
    """``traceparent`` / ``tracestate`` for the current (or given) context."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return carrier


def messaging_attributes(
    operation: str,
    destination: str,
    *,
    message_id: str | None = None,
    key: bytes | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Attributes of a Kafka send/receive/process span, by the current semantic conventions."""
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "messaging.destination.name": destination,
    }
    if message_id is not None:
        attributes["messaging.message.id"] = message_id
    if key is not None:
        attributes["messaging.kafka.message.key"] = key.decode("utf-8", "replace")
    attributes.update({k: v for k, v in extra.items() if v is not None})
    return attributes
