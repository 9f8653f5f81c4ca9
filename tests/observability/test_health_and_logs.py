"""The health and metrics endpoints, and JSON log lines with trace ids."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tests.conftest import FreshDatabase
from worker.embedded.postgres import free_port
from worker.observability.health import HealthServer
from worker.observability.logs import JsonFormatter
from worker.observability.metrics import SECONDS, make_instruments, meter_provider


async def get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
    await writer.drain()
    data = (await reader.read()).decode()
    writer.close()
    status = int(data.split()[1])
    return status, data.split("\r\n\r\n", 1)[1]


async def test_health_endpoints() -> None:
    provider = meter_provider()  # Prometheus reader + second buckets, as the worker sets it up
    instruments = make_instruments(provider.get_meter("test"))
    instruments.heal_duration.record(0.03, {"outcome": "healed", "database": "nexus"})
    problems: dict[str, str] = {}

    async def readiness() -> dict[str, str]:
        return problems

    port = free_port()
    server = HealthServer(port, readiness, lambda: "<html>AsyncApiStandalone</html>")
    await server.start()
    try:
        assert await get(port, "/livez") == (200, "ok\n")
        status, body = await get(port, "/readyz")
        assert (status, json.loads(body)["ready"]) == (200, True)
        problems["database nexus"] = "TimeoutError"
        status, body = await get(port, "/readyz")
        assert status == 503
        assert json.loads(body)["problems"] == {"database nexus": "TimeoutError"}
        status, text = await get(port, "/metrics")
        assert status == 200
        assert "schemaheal_heal_duration_seconds_bucket" in text
        assert 'le="0.005"' in text
        assert 'le="300"' in text or 'le="300.0"' in text
        assert (await get(port, "/asyncapi"))[0] == 200
        assert (await get(port, "/nope"))[0] == 404
    finally:
        await server.stop()
        provider.shutdown()
    assert SECONDS[-1] == 300


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
