"""``docker compose up`` shows the boot traces in its Jaeger: every process that exports spans
points at the Compose Jaeger with a protocol on the port that serves it, and that Jaeger is the
release tests/observability/test_jaeger.py checks the traces in."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.deploy.test_packaging import compose
from tests.jaeger import RELEASE

OTLP_PORTS = {"grpc": 4317, "http/protobuf": 4318}  # Jaeger's OTLP receivers


def test_every_exporting_service_reaches_the_compose_jaeger() -> None:
    services = compose()["services"]
    jaeger = services["jaeger"]
    assert jaeger["image"] == f"jaegertracing/jaeger:{RELEASE}"
    published = {int(p.split(":")[-1]) for p in jaeger["ports"]}
    exporting = {name: s["environment"] for name, s in services.items()
                 if "OTEL_EXPORTER_OTLP_ENDPOINT" in s.get("environment", {})}  # fmt: skip
    assert {"worker-1", "worker-2", "orchestrator-1"} <= set(exporting)
    for name, env in exporting.items():
        endpoint = urlsplit(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        assert env["OTEL_TRACES_EXPORTER"] == "otlp", name
        assert endpoint.hostname == "jaeger", name
        assert endpoint.port == OTLP_PORTS[protocol], f"{name}: {protocol} on {endpoint.port}"
        assert endpoint.port in published, name
        assert "jaeger" in services[name]["depends_on"] or name.startswith("orchestrator")
