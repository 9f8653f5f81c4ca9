"""A Java service with Spring Kafka's ReplyingKafkaTemplate boots through the gate.

The template sends kafka_replyTopic, kafka_replyPartition (4-byte big-endian) and a 16-byte
binary kafka_correlationId, and completes its future only for a record on that partition that
echoes the correlation id byte for byte: the Java program exiting 0 with a reply is Spring
recognising its reply by its own convention.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from tests.conftest import FreshDatabase
from tests.interop.helpers import assert_healed, create_topic, drifted, request_body
from tests.interop.spring_client import classpath
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings

REPLIES = "spring.replies"


async def test_spring_replying_kafka_template_gets_its_reply_on_its_partition(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    jars = await asyncio.to_thread(classpath)
    await drifted(database)
    await create_topic(kafka, REPLIES, 3)
    body = tmp_path / "request.json"
    body.write_text(json.dumps(request_body("spring-pod")))
    request_id = str(uuid.uuid4())
    settings = worker_settings(kafka, database, allowed_reply_topics=REPLIES)
    async with running_worker(settings):
        java = await asyncio.create_subprocess_exec(
            "java", "-Xmx256m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", jars,
            "dev.schemaheal.interop.BootThroughGate", kafka.bootstrap_servers,
            "service.starting", REPLIES, "2", str(body), "nexus", request_id, "60",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await java.communicate()
    assert java.returncode == 0, err.decode()[-3000:]
    printed = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
    assert len(printed["sent.correlation"]) == 32  # Spring's binary UUID, 16 bytes
    assert printed["reply.correlation"] == printed["sent.correlation"]
    assert (printed["reply.topic"], printed["reply.partition"]) == (REPLIES, "2")
    reply = json.loads(printed["reply.value"])
    assert (reply["request_id"], reply["outcome"]) == (request_id, "healed")
    await assert_healed(database, request_id)
