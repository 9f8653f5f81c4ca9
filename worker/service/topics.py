"""The worker's Kafka topics: created at start-up when missing, sized for the largest record
the worker publishes."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.worker")
HEADERS_ROOM = 1024 * 1024  # what a request record may carry besides its body


def record_limit(settings: WorkerSettings) -> int:
    """The largest record the worker publishes, and the topics it creates accept: the
    largest body it accepts plus room for headers (a dead letter is the request, plus why)."""
    return settings.max_request_bytes + HEADERS_ROOM


async def ensure_topics(settings: WorkerSettings) -> None:
    """Create the request, reply, dead-letter and heartbeat topics unless they exist."""
    options = settings.kafka_auth().aiokafka_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **options)
    await settings.start_client(admin)
    try:
        existing = set(await admin.list_topics())
        # time-based retention, never compaction: replay needs every request, not the last
        retention_ms = int(settings.topic_retention_days * 86_400_000)
        retention = {"cleanup.policy": "delete", "retention.ms": str(retention_ms),
                     "max.message.bytes": str(record_limit(settings))}  # fmt: skip
        missing = [
            NewTopic(
                name, settings.topic_partitions, settings.topic_replication, topic_configs=retention
            )
            for name in (
                settings.request_topic,
                settings.reply_topic,
                settings.dead_letter_topic,
                settings.heartbeat_topic,
            )
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was quicker
                await admin.create_topics(missing)
            log.info("created topics", extra={"topics": [t.name for t in missing]})
        absent = sorted(settings.allowed_reply_topics - existing - {settings.reply_topic})
        if absent:
            log.warning("allowed reply topics do not exist yet", extra={"topics": absent})
    finally:
        await admin.close()
