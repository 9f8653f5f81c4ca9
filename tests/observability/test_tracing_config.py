"""Tracing is configured by ``OTEL_*`` alone: OTLP over HTTP or gRPC, or the console; anything
else stops the command with one line that says what to use (tests/observability/test_jaeger.py
proves both OTLP protocols against a real Jaeger)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from tests.observability.processes import environment, run
from worker.errors import ConfigurationError
from worker.observability import tracing

MANIFEST = Path(__file__).parents[2] / "examples" / "nexus" / "manifest.json"


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, Grpc),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, Http),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, Http),  # the default
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
          "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, Grpc),  # the signal's own wins
        ({"OTEL_TRACES_EXPORTER": "console"}, ConsoleSpanExporter),
    ],
)  # fmt: skip
def test_the_exporter_the_environment_asks_for(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], kind: type
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL",
                 "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exporter = tracing._exporter_from_env()
    assert isinstance(exporter, kind)
    exporter.shutdown()


def test_no_exporter_without_otel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.configure_tracing() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure_tracing() is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"),
        ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"}, "TRACES_PROTOCOL=thrift"),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER=zipkin"),
    ],
)
async def test_an_unsupported_setting_is_one_line_not_a_traceback(
    env: dict[str, str], named: str
) -> None:
    """Through the command line, as an init container would meet it."""
    settings = {"OTEL_TRACES_EXPORTER": "otlp", **env}
    code, out, err = await run(
        "-m", "worker.cli", "await-schema", "--bootstrap-servers", "127.0.0.1:1",
        str(MANIFEST), env=environment(**settings),
    )  # fmt: skip
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0] and "not supported" in lines[0]
    assert "Traceback" not in err and not out
    with pytest.MonkeyPatch.context() as patch:  # and the same for the worker's own call
        for name, value in settings.items():
            patch.setenv(name, value)
        with pytest.raises(ConfigurationError):
            tracing.configure_tracing()
