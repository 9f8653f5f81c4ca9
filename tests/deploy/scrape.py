"""What ``/metrics`` really exposes after the worker served traffic: ``schemaheal worker`` as
deployed (a process, JSON logs, the Prometheus reader), fed one batch that exercises every
instrument — two requests for the same manifest (one heal, one coalesced), one whose manifest
contradicts the database (blocked: unresolved drift), one that renames a column (an online
migration: its backfill, contract gauges and lease), a poison record (a rejection and a dead
letter) — then scraped over HTTP and parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import http.client
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from contracts.events import REQUEST_TYPE, event_headers
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import produce, read_topic, worker_settings
from worker.embedded.postgres import free_port
from worker.service.app import ensure_topics

ROOT = Path(__file__).parents[2]
NEXUS = ROOT / "examples" / "nexus"


# tenants.id is integer in the seed's database: text is no widening, so this stays drift
CONTRARY = {"format_version": 1, "service": "legacy", "database": "nexus", "schemas": ["public"],
            "tables": [{"name": "tenants", "columns": [{"name": "id", "type": "text", "nullable": False}],
                        "primary_key": {"columns": ["id"]}}]}  # fmt: skip
# an online rename of a table only this test has: the worker backfills it in the background
NOTES_SQL = """CREATE TABLE public.scrape_notes (id integer PRIMARY KEY, body text NOT NULL);
INSERT INTO public.scrape_notes SELECT g, 'note ' || g FROM generate_series(1, 50) g"""
RENAMED = {"format_version": 1, "service": "notes", "database": "nexus", "schemas": ["public"],
           "tables": [{"name": "scrape_notes", "primary_key": {"columns": ["id"]}, "columns": [
               {"name": "id", "type": "integer", "nullable": False},
               {"name": "text", "type": "text", "nullable": False, "renamed_from": "body"}]}]}  # fmt: skip


def metric_samples(text: str) -> dict[str, set[frozenset[str]]]:
    """Sample name (``schemaheal_requests_total``) → the label-name sets it is exposed with."""
    out: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).add(frozenset(sample.labels))
    return out


async def _one_batch(kafka: KafkaServer, database: FreshDatabase) -> None:
    """The records the worker finds in its first poll (so the two requests coalesce)."""
    settings = worker_settings(kafka, database)
    await ensure_topics(settings)
    seed = json.loads((NEXUS / "manifest.json").read_text())
    requests = (
        ("scrape-1", seed),
        ("scrape-2", seed),
        ("scrape-3", CONTRARY),
        ("scrape-4", RENAMED),
    )
    for request_id, manifest in requests:
        body = {"service": manifest["service"], "instance": "pod-a", "database": "nexus",
                "manifest": manifest}  # fmt: skip
        headers = event_headers(event_type=REQUEST_TYPE, source="/services/x/pod-a",
                                subject="nexus", event_id=request_id)  # fmt: skip
        await produce(kafka, settings.request_topic, json.dumps(body).encode(), headers)
    poison = event_headers(event_type=REQUEST_TYPE, source="/s", event_id="scrape-poison")
    await produce(kafka, settings.request_topic, b"{not json", poison)


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


async def scrape(port: int) -> str:
    status, text = await asyncio.to_thread(_get, port, "/metrics")
    assert status == 200
    return text


@asynccontextmanager
async def worker_process(
    kafka: KafkaServer, database: FreshDatabase, *extra: str
) -> AsyncIterator[int]:
    """``schemaheal worker`` as deployed, its health port on loopback; yields that port."""
    port = free_port()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "worker",
        "--bootstrap-servers", kafka.bootstrap_servers, "--database", f"nexus={database.dsn}",
        "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000",
        "--fetch-max-wait-ms", "50", "--topic-partitions", "3",
        "--health-host", "127.0.0.1", "--health-port", str(port), *extra,
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _until_listening(port, worker)
        yield port
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 60)
    assert worker.returncode == 0, "SIGTERM must stop the worker cleanly"


async def _until_listening(port: int, worker: asyncio.subprocess.Process) -> None:
    """The health server starts after the databases are checked and the topics exist."""
    for _ in range(600):
        assert worker.returncode is None, f"the worker exited with {worker.returncode}"
        try:
            if (await asyncio.to_thread(_get, port, "/livez"))[0] == 200:
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the worker's health server did not start within a minute")


async def gauge(port: int, name: str) -> float | None:
    """The value of a gauge without labels other than OpenTelemetry's scope, or None."""
    for family in text_string_to_metric_families(await scrape(port)):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


async def scrape_after_traffic(kafka: KafkaServer, database: FreshDatabase) -> str:
    """``/metrics`` of a worker process after it answered the batch of :func:`_one_batch`."""
    await database.execute((NEXUS / "old_shape.sql").read_text())
    await database.execute(NOTES_SQL)
    await _one_batch(kafka, database)
    async with worker_process(kafka, database) as port:
        replies = await read_topic(kafka, "schema.healed", 5, timeout_s=90)
        outcomes = sorted(json.loads(r.value)["outcome"] for r in replies)
        assert outcomes == ["blocked", "healed", "healed", "healed", "rejected"], outcomes
        # the fetch-age gauge has a value after the consumer's first fetch; the migration
        # gauges count the rename's lease after the backfill round it woke
        for _ in range(300):
            text = await scrape(port)
            if "schemaheal_consumer_fetch_age_seconds" in text and "schemaheal_leases_live" in text:
                break
            await asyncio.sleep(0.1)
        return await scrape(port)
