"""Keep a booted instance's lease: ``async with keep_alive(...)`` around the service's life.

After :func:`~contracts.client.ensure_schema`, a service wraps its run in :func:`keep_alive`: a
background task publishes ``service.heartbeat`` every ``interval_s`` (keep it well below the
worker's ``lease_ttl_s``), and leaving the block publishes ``service.stopped``, so the worker
knows this instance no longer uses its manifest's shape and may finish (contract) migrations
that only it held back. Records are CloudEvents keyed by the database alias, signed like the
boot request when a ``signing_key`` is given. A heartbeat that cannot be sent is retried at the
next interval: a lost one costs nothing while the lease outlives a few intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.events import (
    HEARTBEAT_TOPIC,
    HEARTBEAT_TYPE,
    STOPPED_TYPE,
    ServiceHeartbeat,
    event_headers,
    service_source,
)
from contracts.kafka_auth import KafkaAuth
from contracts.signing import sign

__all__ = ["keep_alive", "liveness_record"]

log = logging.getLogger("schemaheal.client")


def liveness_record(
    body: ServiceHeartbeat,
    *,
    stopped: bool = False,
    signer: tuple[Ed25519PrivateKey, str] | None = None,
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of one heartbeat (or ``stopped``) record."""
    value = body.model_dump_json().encode("utf-8")
    key = body.database.encode("utf-8")
    headers = event_headers(
        event_type=STOPPED_TYPE if stopped else HEARTBEAT_TYPE,
        source=service_source(body.service, body.instance),
        subject=body.database,
    )
    if signer is not None:
        headers += sign(signer[0], signer[1], headers, key, value)
    return key, value, headers


@contextlib.asynccontextmanager
async def keep_alive(
    *,
    service: str,
    instance: str,
    database: str,
    bootstrap_servers: str,
    interval_s: float = 300.0,
    kafka_auth: KafkaAuth | None = None,
    kafka_options: Mapping[str, Any] | None = None,
    signing_key: Ed25519PrivateKey | None = None,
    key_id: str | None = None,
) -> AsyncIterator[None]:
    """Heartbeats every ``interval_s`` while the block runs; ``service.stopped`` when it ends.
    ``instance`` must be the one the boot request named."""
    body = ServiceHeartbeat(service=service, instance=instance, database=database)
    signer = (signing_key, key_id or "default") if signing_key is not None else None
    options = {**(kafka_auth or KafkaAuth()).aiokafka_options(), **(kafka_options or {})}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all",
                                enable_idempotence=False, **options)  # fmt: skip
    await producer.start()

    async def send(stopped: bool) -> None:
        key, value, headers = liveness_record(body, stopped=stopped, signer=signer)
        await producer.send_and_wait(HEARTBEAT_TOPIC, value, key=key, headers=headers)

    async def beat() -> None:
        while True:
            try:
                await send(stopped=False)
            except KafkaError as exc:
                log.warning("sending a heartbeat failed; trying again in %.0f s: %s",
                            interval_s, exc)  # fmt: skip
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(beat(), name=f"heartbeat {service}/{instance}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await send(stopped=True)
        except KafkaError as exc:  # the lease then ends when it expires
            log.warning("sending service.stopped failed: %s", exc)
        finally:
            await producer.stop()
