"""The seed's orchestrator, with its boot rewritten: no more ``migration_steps`` in ``main.py``.

Before (Protocol Omega), every replica ran ``DO $$ … IF NOT EXISTS … ALTER TABLE …`` itself at
boot — racing the other replicas, blocking boots and leaving no record. Now its lifespan asks the
schemaheal worker and waits for the answer; it starts only when the schema is ready::

    python -m examples.nexus.orchestrator --bootstrap-servers localhost:9092 --instance pod-a

The manifest is generated from the same SQLAlchemy models the service uses. While it runs it
sends heartbeats (``contracts.keep_alive``), so the worker knows this version still runs and
keeps the old shape of any online migration for it; leaving the lifespan says it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from contracts import BootGateError, Manifest, SchemaHealed, keep_alive
from contracts.client import ensure_schema
from contracts.from_sqlalchemy import manifest_from_metadata
from examples.nexus.models import Base

log = logging.getLogger("orchestrator")


def manifest() -> Manifest:
    """The orchestrator's schema manifest, from its models."""
    return manifest_from_metadata(Base.metadata, service="orchestrator", database="nexus")


@asynccontextmanager
async def lifespan(
    *, bootstrap_servers: str, instance: str, timeout_s: float = 120.0, heartbeat_s: float = 300.0
) -> AsyncIterator[SchemaHealed]:
    """The orchestrator's startup: the boot gate first, then everything else; heartbeats every
    ``heartbeat_s`` (well below the worker's lease TTL) while it runs, and ``service.stopped``
    when it ends."""
    wanted = manifest()
    reply = await ensure_schema(
        wanted,
        bootstrap_servers=bootstrap_servers,
        instance=instance,
        timeout_s=timeout_s,
        kafka_options={"client_id": f"orchestrator-{instance}"},
    )
    log.info("schema ready (%s, %d statements); starting", reply.outcome, len(reply.statements))
    async with keep_alive(
        service=wanted.service,
        instance=instance,
        database=wanted.database,
        bootstrap_servers=bootstrap_servers,
        interval_s=heartbeat_s,
        kafka_options={"client_id": f"orchestrator-{instance}-heartbeat"},
    ):
        yield reply  # … serve requests …


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--instance", default="orchestrator-0")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    # A real service configures OpenTelemetry its own way; the boot span below starts the trace
    # that the boot gate continues through Kafka and the worker.
    from opentelemetry import trace

    from worker.observability.tracing import configure_tracing

    provider = configure_tracing(default_service="orchestrator")
    try:
        with trace.get_tracer("orchestrator").start_as_current_span("orchestrator boot"):
            async with lifespan(bootstrap_servers=args.bootstrap_servers, instance=args.instance):
                log.info("orchestrator %s is up", args.instance)
    except BootGateError as exc:
        log.error("not starting: %s", exc)
        return 1
    finally:
        if provider is not None:
            provider.shutdown()  # flush the boot trace
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
