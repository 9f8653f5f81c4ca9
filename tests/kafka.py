"""Kafka-protocol brokers for the tests: Tansu (tier 1) or Apache Kafka 4 in KRaft mode (tier 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Protocol

from aiokafka.admin import AIOKafkaAdminClient

from worker.embedded.broker import LocalBroker


class KafkaServer(Protocol):
    @property
    def bootstrap_servers(self) -> str: ...
    def stop(self) -> None: ...


def start_kafka(kind: str) -> KafkaServer:
    """A started broker of ``kind`` ("tansu" or "apache")."""
    if kind == "apache":
        from tests.apache_kafka import ApacheKafka

        return ApacheKafka().start()
    return LocalBroker().start()


def serving(kind: str) -> Iterator[KafkaServer]:
    """A fixture's body: a started broker of ``kind``, stopped afterwards."""
    server = start_kafka(kind)
    yield server
    server.stop()


async def topics_made(
    bootstrap: str, topics: list[str], *, exited: Callable[[], bool] = lambda: False,
    timeout_s: float = 60, see: str = "",
) -> None:  # fmt: skip
    """Until ``topics`` exist: a worker makes its own at start, which takes seconds on a busy
    machine (a boot client finds no reply topic before that and gives up). RuntimeError when
    ``exited()`` says the process that should make them is gone, or after ``timeout_s``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not set(topics) <= set(await admin.list_topics()):
            if exited() or asyncio.get_running_loop().time() > deadline:
                why = "its maker exited" if exited() else f"not in {timeout_s:g} s"
                raise RuntimeError(f"{topics} were not created ({why}){see}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
