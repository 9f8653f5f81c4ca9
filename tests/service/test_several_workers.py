"""Several workers on the embedded broker, and boot clients at once: every client gets its reply.

Can a reply be written out of offset order, so that a client's fetch jumps over it? One worker
writes its replies through one producer, which has one produce request in flight per broker
(aiokafka), so they are written in order. With the reply topic partitioned like the request
topic, a reply partition is written by one worker only: the one that owns the request partition
of the same number (reply and request share the key, the database alias). Several workers write
one reply partition when ownership moves (a rebalance: the old owner's last replies and the new
owner's first ones) and when the reply topic has fewer partitions than the request topic. Here
it has one: three workers, serving the three request partitions, write every reply to it at
once, and clients of all three databases wait on it, rounds after rounds, while one worker leaves
(a rebalance) halfway. The client used to move past an offset it had not read (a batch written
late; tests/service/test_reply_reading.py shows it on the fake broker); it must find every
reply."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts import BootGateTimeout, request_schema
from contracts.events import REPLY_TOPIC, REQUEST_TOPIC
from tests.conftest import FreshDatabase
from tests.replay.builders import small_manifest
from tests.service.conftest import running_worker, worker_settings
from tests.service.test_reply_reading import key_on
from worker.embedded.broker import LocalBroker

WORKERS = 3
CLIENTS_PER_DATABASE = 6
ROUNDS = 4


def _manifest(alias: str) -> dict[str, Any]:
    return {**small_manifest(), "database": alias}


async def _round(servers: str, aliases: list[str], n: int) -> list[str]:
    """Every client of every database at once; the ids of those that got no reply."""

    async def boot(alias: str, i: int) -> str | None:
        instance = f"{alias}-{n}-{i}-{uuid.uuid4().hex[:6]}"
        try:
            reply = await request_schema(_manifest(alias), bootstrap_servers=servers,
                                         instance=instance, timeout_s=60)  # fmt: skip
        except BootGateTimeout:
            return instance
        return None if reply.outcome in ("healed", "unchanged") else f"{instance}: {reply}"

    boots = [boot(a, i) for a in aliases for i in range(CLIENTS_PER_DATABASE)]
    return [lost for lost in await asyncio.gather(*boots) if lost is not None]


async def test_every_client_gets_its_reply_from_several_workers(database: FreshDatabase) -> None:
    aliases = [key_on(p, WORKERS).decode() for p in range(WORKERS)]  # one per request partition
    with LocalBroker() as broker:
        servers = broker.bootstrap_servers
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        await admin.create_topics(
            [NewTopic(REQUEST_TOPIC, WORKERS, 1), NewTopic(REPLY_TOPIC, 1, 1)]
        )
        await admin.close()
        settings = worker_settings(broker, database, topic_partitions=WORKERS,
                                   databases=dict.fromkeys(aliases, database.dsn))  # fmt: skip
        lost: list[str] = []
        async with AsyncExitStack() as workers:
            for _ in range(WORKERS - 1):
                await workers.enter_async_context(running_worker(settings))
            async with running_worker(settings):
                for n in range(ROUNDS // 2):
                    lost += await _round(servers, aliases, n)
            for n in range(ROUNDS // 2, ROUNDS):  # one worker left: its partitions moved
                lost += await _round(servers, aliases, n)
    assert lost == []
