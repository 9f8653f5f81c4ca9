"""Jaeger v2 for the trace tier: a real OpenTelemetry-compatible backend, asked through its
query API.

The binary is built once from the Go module proxy into ``~/.cache/schemaheal/go/jaeger``
(:mod:`tests.gobuild`). Each server is the all-in-one
collector with memory storage, OTLP over gRPC and HTTP on free ports, and the query service's
HTTP API (``/api/v3``: OTLP JSON) on another. ``python -m tests.jaeger`` builds it and says how
long that took.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests import gobuild
from worker.embedded.postgres import free_port
from worker.embedded.processes import stop_process, wait_listening

# The Go module's v1.x tag that carries the Jaeger v2 binary (v1.76.0 = Jaeger v2.13.0, the
# image docker-compose.yml runs).
VERSION = "v1.76.0"
RELEASE = "2.13.0"
MODULE = "github.com/jaegertracing/jaeger"
BINARY = gobuild.ROOT / "jaeger" / VERSION / "jaeger"
CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {{receivers: [otlp], exporters: [jaeger_storage_exporter]}}
  telemetry:
    metrics: {{level: none}}
    logs: {{level: warn}}
extensions:
  jaeger_storage:
    backends: {{memstore: {{memory: {{max_traces: 10000}}}}}}
  jaeger_query:
    storage: {{traces: memstore}}
    enable_tracing: false
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
exporters:
  jaeger_storage_exporter: {{trace_storage: memstore}}
"""


def binary() -> Path:
    """The Jaeger binary, built on first use (minutes cold: see the README's Tests section)."""
    return gobuild.built("jaeger", MODULE, VERSION, "./cmd/jaeger")


class Jaeger:
    """One Jaeger all-in-one process on 127.0.0.1 with memory storage; ``stop()`` ends it."""

    def __init__(self) -> None:
        self.ports = {n: free_port() for n in ("query", "query_grpc", "grpc", "http")}
        self.root = Path(tempfile.mkdtemp(prefix="schemaheal-jaeger-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def otlp_grpc(self) -> str:
        return f"http://127.0.0.1:{self.ports['grpc']}"

    def start(self) -> Jaeger:
        config = self.root / "config.yaml"
        config.write_text(CONFIG.format(**self.ports))
        with (self.root / "jaeger.log").open("wb") as log:  # the child keeps its own copy
            self.process = subprocess.Popen(
                [str(binary()), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        for name in ("grpc", "http", "query"):
            wait_listening(self.process, self.ports[name], 60, self.log)
        return self

    def log(self) -> str:
        return (self.root / "jaeger.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)

    def get(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.ports['query']}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the v3 API's answer for "no such trace" / "no traces"
                return {}
            raise

    def services(self) -> list[str]:
        return sorted(self.get("/api/v3/services").get("services", []))

    def spans(self) -> list[dict[str, Any]]:
        """Every span stored, each with its resource's ``service.name`` as ``service``."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for service in self.services():
            answer = self.get(
                "/api/v3/traces",
                **{"query.service_name": service,
                   "query.start_time_min": "2000-01-01T00:00:00Z",
                   "query.start_time_max": "2100-01-01T00:00:00Z",
                   "query.num_traces": "1000", "query.raw_traces": "true"},
            )  # fmt: skip
            for span in _spans_of(answer):
                found[(span["traceId"], span["spanId"])] = span
        return list(found.values())


def _spans_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    spans = []
    for resource_spans in answer.get("result", {}).get("resourceSpans", []):
        attributes = attribute_map(resource_spans.get("resource", {}).get("attributes", []))
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                spans.append({**span, "service": attributes.get("service.name")})
    return spans


def attribute_map(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON's ``[{key, value: {stringValue: …}}]`` as a plain dict."""
    return {a["key"]: next(iter(a["value"].values()), None) for a in attributes}


def main() -> int:
    started = time.monotonic()
    path = binary()
    print(f"{path} ready in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
