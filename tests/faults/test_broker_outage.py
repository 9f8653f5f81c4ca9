"""A reply is confirmed only when the broker acknowledged it (issue 14: the send was never
awaited and ``flush()`` did not raise, so a reply lost in a broker outage was committed past)."""

from __future__ import annotations

import pytest

from contracts.events import SchemaHealed
from tests.kafka import start_kafka
from tests.service.records import request_record
from worker.errors import KafkaUnavailable
from worker.service.app import KafkaSink, ensure_topics
from worker.service.requests import Rejection
from worker.settings import WorkerSettings


async def test_a_reply_the_broker_never_acknowledged_fails_the_flush() -> None:
    broker = start_kafka("tansu")
    settings = WorkerSettings(bootstrap_servers=broker.bootstrap_servers)
    sink = KafkaSink(settings, request_timeout_ms=2000)
    try:
        await ensure_topics(settings)
        await sink.start()
        reply = SchemaHealed(request_id="r1", outcome="healed")
        await sink.reply(reply, {}, b"nexus")
        record = request_record(raw=b"x" * (5 * 1024 * 1024))  # over the client's 1 MiB default
        await sink.dead_letter(Rejection(code="not-json", message="m", record=record, headers={}))
        await sink.flush()  # both acknowledged
        broker.stop()
        await sink.reply(SchemaHealed(request_id="r2", outcome="healed"), {}, b"nexus")
        with pytest.raises(KafkaUnavailable, match="not acknowledged"):
            await sink.flush()
    finally:
        await sink.stop()
        broker.stop()
