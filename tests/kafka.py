"""Kafka-protocol brokers for the tests: Tansu (tier 1) or Apache Kafka 4 in KRaft mode (tier 2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
