"""What the interop tests share: a drifted database, the request body, reply topics, the checks."""

from __future__ import annotations

import json
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer

NEXUS = Path(__file__).parents[2] / "examples" / "nexus"


async def drifted(database: FreshDatabase) -> None:
    """The seed's database in its old shape: the heal has work to do."""
    await database.execute((NEXUS / "old_shape.sql").read_text())


def request_body(instance: str) -> dict[str, object]:
    """A ``service.starting`` body for the seed's orchestrator, as another stack writes it."""
    manifest = json.loads((NEXUS / "manifest.json").read_text())
    return {"service": "orchestrator", "instance": instance, "database": "nexus",
            "manifest": manifest}  # fmt: skip


def binary_mode_headers(request_id: str, instance: str) -> dict[str, str]:
    """The CloudEvents headers the README asks a request to carry."""
    return {
        "ce_specversion": "1.0",
        "ce_id": request_id,
        "ce_source": f"/services/orchestrator/{instance}",
        "ce_type": "dev.schemaheal.service.starting.v1",
        "ce_subject": "nexus",
        "content-type": "application/json",
    }


async def create_topic(kafka: KafkaServer, name: str, partitions: int) -> None:
    """A client's own reply topic (clients create these, not the worker)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def records_in(kafka: KafkaServer, topic: str) -> int:
    """How many records ``topic`` holds (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} is unknown to the broker"
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def assert_healed(database: FreshDatabase, request_id: str) -> None:
    """The database changed, and the ledger has the request's row."""
    rows = await database.fetch(
        "SELECT outcome FROM schemaheal.heals WHERE request_id = $1", request_id
    )
    assert [r["outcome"] for r in rows] == ["healed"]
    columns = await database.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND table_name = 'credentials'"
    )
    assert {"scope", "category"} <= {c["column_name"] for c in columns}
