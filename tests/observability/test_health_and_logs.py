"""The health and metrics endpoints, and JSON log lines with trace ids."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import FreshDatabase
from worker.errors import ConfigurationError
from worker.observability.health import HealthServer, health_app
from worker.observability.logs import JsonFormatter
from worker.observability.metrics import SECONDS, make_instruments, meter_provider
from worker.settings import WorkerSettings


def _exchange(
    conn: http.client.HTTPConnection, method: str, path: str
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


async def exchanges(
    port: int, *requests: tuple[str, str]
) -> list[tuple[int, dict[str, str], bytes]]:
    """The requests in order on ONE HTTP/1.1 connection (it fails if the server closes it)."""

    def run() -> list[tuple[int, dict[str, str], bytes]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.connect()
            first = conn.sock
            out = [_exchange(conn, method, path) for method, path in requests]
            assert conn.sock is first, "the connection was not kept alive"
            return out
        finally:
            conn.close()

    return await asyncio.to_thread(run)


def _asyncapi_spec() -> Any:
    from worker.service.app import build_app
    from worker.settings import WorkerSettings

    app, _ = build_app(WorkerSettings(bootstrap_servers="127.0.0.1:9", health_port=0))
    return app.schema


async def test_health_endpoints_keep_alive_head_and_a_prometheus_parser() -> None:
    """Every route on one kept-alive connection; HEAD answers the headers without a body;
    /readyz gives its reasons; /metrics parses with prometheus_client's own parser."""
    provider = meter_provider()  # Prometheus reader + second buckets, as the worker sets it up
    instruments = make_instruments(provider.get_meter("test"))
    instruments.heal_duration.record(0.03, {"outcome": "healed", "database": "nexus"})
    problems: dict[str, str] = {}

    async def readiness() -> dict[str, str]:
        return problems

    server = HealthServer(health_app(readiness, _asyncapi_spec()), host="127.0.0.1", port=0)
    await server.start()
    try:
        (livez, head, ready, metrics, docs, nope, post) = await exchanges(
            server.port, ("GET", "/livez"), ("HEAD", "/livez"), ("GET", "/readyz"),
            ("GET", "/metrics"), ("GET", "/asyncapi"), ("GET", "/nope"), ("POST", "/readyz"),
        )  # fmt: skip
        assert (livez[0], livez[2]) == (200, b"ok\n")
        assert (head[0], head[2], head[1]["content-length"]) == (200, b"", "3")
        assert (ready[0], json.loads(ready[2])) == (200, {"ready": True, "problems": {}})
        assert metrics[0] == 200 and metrics[1]["content-type"].startswith("text/plain")
        assert docs[0] == 200 and b"AsyncApiStandalone" in docs[2] and b"schemaheal" in docs[2]
        assert nope[0] == 404
        assert (post[0], post[1]["allow"]) == (405, "GET, HEAD")
        problems["database nexus"] = "TimeoutError"
        (ready,) = await exchanges(server.port, ("GET", "/readyz"))
        assert ready[0] == 503
        assert json.loads(ready[2])["problems"] == {"database nexus": "TimeoutError"}
    finally:
        await server.stop()
        provider.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(metrics[2].decode())}
    heal = families["schemaheal_heal_duration_seconds"]
    assert heal.type == "histogram"
    bounds = [s.labels["le"] for s in heal.samples if s.name.endswith("_bucket")]
    assert bounds[0] == "0.005" and float(bounds[-2]) == 300 and bounds[-1] == "+Inf"
    assert SECONDS[-1] == 300


async def test_the_health_server_binds_the_configured_address_only() -> None:
    """``--health-host 127.0.0.1`` answers on loopback and nowhere else; a taken port is a
    ConfigurationError that says which settings to change."""

    async def readiness() -> dict[str, str]:
        return {}

    server = HealthServer(health_app(readiness, _asyncapi_spec()), host="127.0.0.1", port=0)
    await server.start()
    try:
        assert (await exchanges(server.port, ("GET", "/livez")))[0][0] == 200
        outside = _non_loopback_address()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((outside, server.port), timeout=2).close()
        taken = HealthServer(health_app(readiness, None), host="127.0.0.1", port=server.port)
        with pytest.raises(ConfigurationError, match="SCHEMAHEAL_HEALTH_HOST"):
            await taken.start()
    finally:
        await server.stop()
    assert WorkerSettings().health_host == "0.0.0.0"  # what a container's probes need


def _non_loopback_address() -> str:
    """An address of this host other than loopback: the one a route to the outside uses, or
    else the one the host name resolves to."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent by a UDP connect
        address: str = probe.getsockname()[0]
    except OSError:  # no route out: a sandbox
        address = socket.gethostbyname(socket.gethostname())
    finally:
        probe.close()
    assert not address.startswith("127."), f"this host has no address besides {address}"
    return address


def test_json_log_lines_carry_trace_and_span_ids() -> None:
    tracer = TracerProvider().get_tracer("t")
    record = logging.makeLogRecord({"msg": "applied", "name": "schemaheal.heal", "levelname": "INFO",
                                    "statement": "ALTER TABLE t ADD COLUMN c text"})  # fmt: skip
    with tracer.start_as_current_span("heal") as span:
        line = json.loads(JsonFormatter().format(record))
    assert line["event"] == "applied"
    assert line["statement"] == "ALTER TABLE t ADD COLUMN c text"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")


def test_faststream_lines_are_json_lines_too(capsys: pytest.CaptureFixture[str]) -> None:
    """FastStream's loggers bring a plain-text handler and stop propagation; the worker's
    logging takes them over, so their lines are JSON lines: the app's lifecycle at INFO, the
    broker's and aiokafka's chatter only from WARNING up."""
    from worker.observability.logs import configure_logging
    from worker.service.app import build_app
    from worker.settings import WorkerSettings

    configure_logging(json_lines=True)
    _, broker = build_app(WorkerSettings(bootstrap_servers="127.0.0.1:9"))
    try:
        broker_logger = broker.config.logger.params_storage.get_logger(context=None)
        broker_logger.info("callback for Task-1 is being executed...")
        broker_logger.warning("subscriber raised an exception, retrying")
        logging.getLogger("faststream").info("FastStream app starting...")
        logging.getLogger("aiokafka").info("Discovered coordinator")
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["level"], line["event"]) for line in lines] == [
        ("faststream.broker", "warning", "subscriber raised an exception, retrying"),
        ("faststream", "info", "FastStream app starting..."),
    ]


async def test_every_applied_statement_is_one_structured_log_event(
    database: FreshDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    """The seed's ``[MIGRATION] Applying step...`` as one event per statement, in order, with
    what ran, its change, hazards, duration and retries; and each event is a JSON line."""
    from contracts import load_manifest
    from worker.engine.connection import connect
    from worker.engine.heal import heal

    nexus = Path(__file__).parents[2] / "examples" / "nexus"
    await database.execute((nexus / "old_shape.sql").read_text())
    conn = await connect(database.dsn)
    try:
        with caplog.at_level(logging.INFO, logger="schemaheal.apply"):
            result = await heal(conn, load_manifest((nexus / "manifest.json").read_bytes()))
    finally:
        await conn.close()
    events = [r for r in caplog.records if r.name == "schemaheal.apply"]
    assert [e.sql for e in events] == [s.sql for s in result.applied]  # type: ignore[attr-defined]
    assert len(events) == 10
    line = json.loads(JsonFormatter().format(events[2]))
    change = result.applied[2].change
    assert line["event"].startswith(f"applied statement 3 of 10: {change} — ALTER TABLE (")
    assert line["statement_ordinal"] == 3 and line["statement_total"] == 10
    assert line["change"] == result.applied[2].change and line["retries"] == 0
    assert isinstance(line["hazards"], list) and line["duration_ms"] >= 0


async def test_a_readiness_check_that_raises_is_answered_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def readiness() -> dict[str, str]:
        raise RuntimeError("the check itself broke")

    server = HealthServer(health_app(readiness, None), host="127.0.0.1", port=0)
    await server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="schemaheal.health"):
            ((status, _, _), (livez, _, _)) = await exchanges(
                server.port, ("GET", "/readyz"), ("GET", "/livez")
            )
    finally:
        await server.stop()
    assert (status, livez) == (500, 200)
    (record,) = [r for r in caplog.records if r.name == "schemaheal.health"]
    assert record.exc_info is not None and "the check itself broke" in str(record.exc_info[1])
