"""A boot reaches the gate without a thread hand-off: FastStream's injection runs a plain custom
field (``NoCast``, ``KafkaMessage``) in a worker thread, two hand-offs per batch that cost a
no-drift boot 0.8-1.5 ms on a busy machine (``worker.service.arguments``); and without
FastStream's per-message pipeline at all (``worker.service.direct``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio.to_thread
import pytest
from faststream._internal.endpoint.subscriber.usecase import SubscriberUsecase

from contracts import ensure_schema
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings
from tests.service.test_gate_end_to_end import MANIFEST


async def test_a_boot_is_served_without_a_worker_thread_or_faststreams_pipeline(
    kafka: KafkaServer, database: FreshDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    threaded: list[str] = []
    piped: list[str] = []  # the topics whose records went through FastStream's pipeline
    run_sync = anyio.to_thread.run_sync
    process_message = SubscriberUsecase.process_message

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        threaded.append(repr(func)[:120])
        return await run_sync(func, *args, **kwargs)

    async def piped_through(self: Any, msg: Any) -> Any:
        piped.append(self.topics[0].name)
        return await process_message(self, msg)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    monkeypatch.setattr(SubscriberUsecase, "process_message", piped_through)
    async with running_worker(worker_settings(kafka, database)):
        for instance in ("pod-a", "pod-b"):  # a heal, then a no-drift boot
            reply = await ensure_schema(
                MANIFEST, bootstrap_servers=kafka.bootstrap_servers, instance=instance,
                timeout_s=60,
            )  # fmt: skip
            assert reply.may_start
    assert reply.outcome == "unchanged"
    assert threaded == []
    assert "service.starting" not in piped
