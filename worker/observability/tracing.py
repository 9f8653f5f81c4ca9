"""Traces: one per boot, from the service's boot span through the worker and back.

Configured the standard way, by the ``OTEL_*`` environment variables only:
``OTEL_TRACES_EXPORTER=otlp`` (with ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` or ``grpc``) or ``console``;
``OTEL_SERVICE_NAME`` names the process. With nothing configured no SDK is installed, and the
OpenTelemetry API's no-op tracer costs next to nothing. Span names, kinds and attributes follow
the current messaging semantic conventions (``send service.starting``, ``process
service.starting``, ``messaging.operation.type``, …), not the deprecated names FastStream's own
middleware emits, so that middleware is not used.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from worker.errors import ConfigurationError

TRACER_NAME = "schemaheal"


PROTOCOLS = ("http/protobuf", "grpc")
EXPORTERS = ("otlp", "console", "none")


def configure_tracing(default_service: str = "schemaheal-worker") -> TracerProvider | None:
    """Install an SDK tracer provider when ``OTEL_*`` asks for an exporter; else do nothing.

    Raise :class:`ConfigurationError` (one line, no traceback) for an exporter or protocol we
    do not serve. Call ``shutdown()`` on the provider before a short-lived process exits."""
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
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={','.join(unknown)} is not supported: use {', '.join(EXPORTERS)}"
        )
    if not names or names == ["none"]:
        return None
    if "console" in names:
        return ConsoleSpanExporter()
    return _otlp_exporter(otlp_protocol())


def otlp_protocol() -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``, checked."""
    name = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    protocol = os.environ.get(name, "").strip()
    if not protocol:
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
        protocol = os.environ.get(name, "").strip() or "http/protobuf"
    if protocol not in PROTOCOLS:
        raise ConfigurationError(
            f"{name}={protocol} is not supported: use {' or '.join(PROTOCOLS)}"
        )
    return protocol


def _otlp_exporter(protocol: str) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as Grpc,
        )

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    return Http()


def environment_trace_headers() -> dict[str, str]:
    """``TRACEPARENT`` / ``TRACESTATE`` from the environment, as W3C headers: how a platform
    hands a process (an init container) the trace of the deploy it belongs to."""
    found = {
        name.lower(): os.environ.get(name, "").strip() for name in ("TRACEPARENT", "TRACESTATE")
    }
    return {name: value for name, value in found.items() if value}


@contextmanager
def tracing_configured(default_service: str) -> Iterator[None]:
    """:func:`configure_tracing` for a command that ends: its spans are flushed at the end."""
    provider = configure_tracing(default_service)
    try:
        yield
    finally:
        if provider is not None:
            provider.shutdown()


@functools.cache
def tracer() -> trace.Tracer:
    """The worker's tracer (a proxy until a provider is set, which then delegates to it)."""
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
