"""How the worker's batch subscribers consume: options, a parser that survives binary headers,
raw bodies, Kafka security in FastStream's form, and acknowledging a batch only once it is
served and every reply is confirmed (at-least-once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from faststream import AckPolicy
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from contracts.kafka_auth import KafkaAuth
from worker.service.sink import KafkaSink
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.worker")
REDELIVERY_PAUSE_S = 5.0
# Nobody waits for a heartbeat: its topic is polled at least this long, however short the request
# topic's wait (at 10 ms, an idle worker and its broker spent as much on heartbeat polls as on
# request polls, on the cores the boots need).
HEARTBEAT_WAIT_MS = 100


def tolerant_parser() -> Any:
    """FastStream's batch parser decodes every header as UTF-8 and crashes on null or binary
    values. Hand it copies without such headers, then put the original records back."""

    async def parse(records: tuple[Any, ...], original: Any) -> Any:
        clean = tuple(_without_binary_headers(r) for r in records)
        message = await original(clean)
        message.raw_message = records
        return message

    return parse


def _without_binary_headers(record: Any) -> Any:
    """``record``, or a copy without its null or binary headers when it has some."""
    headers = record.headers or ()
    kept = tuple((k, v) for k, v in headers if _utf8(v))
    return record if len(kept) == len(headers) else replace(record, headers=kept)


def _utf8(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def raw_bodies(message: Any, _original: Any) -> list[bytes]:
    """Bodies stay bytes here; the gate parses (and rejects) them itself."""
    return [r.value or b"" for r in message.raw_message]


def broker_security(auth: KafkaAuth) -> BaseSecurity | None:
    """FastStream's form of ``auth`` (it takes security objects, not aiokafka's keywords)."""
    context = auth.ssl_context()
    if not auth.uses_sasl or auth.username is None or auth.password is None:
        return BaseSecurity(ssl_context=context) if context is not None else None
    kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256}.get(
        auth.sasl_mechanism, SASLPlaintext
    )
    return kind(
        auth.username, auth.password.get_secret_value(), ssl_context=context, use_ssl=auth.uses_tls
    )


def batch_consumer(
    settings: WorkerSettings, group_id: str, *, wait_ms: int | None = None
) -> dict[str, Any]:
    """Subscriber options of the worker's batch consumers: acknowledged by hand, only after the
    whole batch was served (the Kafka default commits before the handler runs). ``wait_ms``:
    the longest wait of one fetch and batch, ``settings.fetch_max_wait_ms`` unless given."""
    wait_ms = settings.fetch_max_wait_ms if wait_ms is None else wait_ms
    return {
        "batch": True,
        "group_id": group_id,
        "ack_policy": AckPolicy.MANUAL,
        "auto_offset_reset": "earliest",
        "max_records": settings.batch_max_records,
        "batch_timeout_ms": wait_ms,
        "fetch_max_wait_ms": wait_ms,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        # FastStream would publish the handler's return value (nothing) to any topic a request
        # names in reply_to; replies are KafkaSink's, to the topics the operator allows.
        "no_reply": True,
        "parser": tolerant_parser(),
        "decoder": raw_bodies,
    }


def heartbeat_consumer(settings: WorkerSettings) -> dict[str, Any]:
    """Options of the heartbeat subscriber: a group of its own, polled at least every
    ``HEARTBEAT_WAIT_MS``."""
    wait_ms = max(settings.fetch_max_wait_ms, HEARTBEAT_WAIT_MS)
    return batch_consumer(settings, f"{settings.group_id}.heartbeats", wait_ms=wait_ms)


async def settle(message: Any, sink: KafkaSink, serving: Awaitable[bool], doing: str) -> None:
    """Acknowledge the batch once it is served and every reply and dead letter is acknowledged
    by the broker; otherwise rewind it after a pause (served requests are then answered from
    the ledger). The handlers never raise; a refused or lost send does."""
    try:
        served = await serving
        await sink.flush()
    except Exception:
        log.exception("%s failed; the batch will be redelivered", doing)
        served = False
    if served:
        await message.ack()
    else:
        await asyncio.sleep(REDELIVERY_PAUSE_S)
        await message.nack()
