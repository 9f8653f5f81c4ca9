"""Issue 14's flood, scaled for CI: malformed records shuffled with good requests, through a
real broker and the real worker. Every good request is answered (duplicates only with the same
outcome), every bad record is dead-lettered — the 5 MB and the oversized ones too, truncated
where they do not fit — and rejected with a reply when it has a ``ce_id``. None is lost."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.events import REQUEST_TYPE, event_headers
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import read_until, running_worker, worker_settings
from tests.service.records import request_body

MiB = 1024 * 1024
Headers = list[tuple[str, bytes | None]]


@dataclass
class Sent:
    """One published record: what it is, its id (if any) and where it landed."""

    kind: str
    request_id: str | None
    value: bytes | None
    headers: Headers
    position: tuple[int, int] = (-1, -1)


def cloudevent(request_id: str) -> Headers:
    return list(event_headers(event_type=REQUEST_TYPE, source="/flood", event_id=request_id))


def good(i: int) -> Sent:
    body = json.dumps(request_body(instance=f"pod-{i}")).encode()
    return Sent("good", f"good-{i}", body, cloudevent(f"good-{i}"))


def bad_records(rng: random.Random) -> list[Sent]:
    """Every kind of malformed record the issue lists, a few of each."""

    def with_id(kind: str, i: int, value: bytes | None) -> Sent:
        return Sent(kind, f"{kind}-{i}", value, cloudevent(f"{kind}-{i}"))

    body = request_body()
    many_tables = {
        **body,
        "manifest": {
            **body["manifest"],
            "tables": [
                {"name": f"t{i}", "columns": [{"name": "id", "type": "integer"}]}
                for i in range(6000)
            ],
        },
    }
    long_name = {
        **body,
        "manifest": {
            **body["manifest"],
            "tables": [
                {"name": "n" * 100_000, "columns": [{"name": "c" * 100_000, "type": "integer"}]}
            ],
        },
    }
    out = [
        *(with_id("random", i, rng.randbytes(rng.randint(0, 3000))) for i in range(8)),
        *(with_id("truncated", i, json.dumps(body).encode()[: rng.randint(1, 80)])
          for i in range(4)),
        with_id("json-5mb", 0, json.dumps({**body, "instance": "x" * (5 * MiB)}).encode()),
        with_id("over-limit-9mb", 0, b"{" + b" " * 8_999_998 + b"}"),
        with_id("over-record-limit-12mb", 0, rng.randbytes(12 * MiB)),
        with_id("deep", 0, b"[" * 100_000 + b"]" * 100_000),
        with_id("deep-object", 0, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        with_id("many-tables", 0, json.dumps(many_tables).encode()),
        with_id("long-names", 0, json.dumps(long_name).encode()),
        *(Sent("no-headers", None, json.dumps(body).encode(), []) for _ in range(3)),
        *(Sent("garbage-headers", None, json.dumps(body).encode(),
               [(f"h{j}", rng.randbytes(rng.randint(0, 40))) for j in range(5)])
          for _ in range(3)),
        *(Sent("binary-ce-id", None, json.dumps(body).encode(),
               [*cloudevent("x")[:1], ("ce_id", b"\xff\xfe\x80"), *cloudevent("x")[2:]])
          for _ in range(2)),
        *(Sent("null-headers", None, json.dumps(body).encode(),
               [(k, None) for k, _ in cloudevent("x")]) for _ in range(2)),
    ]  # fmt: skip
    wrong_type = cloudevent("wrong-type-0")
    wrong_type[3] = ("ce_type", "é".encode("latin-1"))  # not UTF-8: the header is skipped
    out.append(Sent("wrong-type", "wrong-type-0", json.dumps(body).encode(), wrong_type))
    return out


async def create_request_topic(kafka: KafkaServer, topic: str) -> None:
    """The operators' request topic accepts larger records than the worker serves."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        config = {"max.message.bytes": str(16 * MiB)}
        await admin.create_topics([NewTopic(topic, 3, 1, topic_configs=config)])
    finally:
        await admin.close()


async def publish(kafka: KafkaServer, topic: str, records: list[Sent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers,
                                enable_idempotence=False, max_request_size=16 * MiB)  # fmt: skip
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic, r.value, key=b"nexus" if r.kind == "good" else None, headers=r.headers
            )
            for r in records
        ]
        for record, meta in zip(records, await asyncio.gather(*futures), strict=True):
            record.position = (meta.partition, meta.offset)
    finally:
        await producer.stop()


def header(record: Any, name: str) -> str | None:
    value = dict(record.headers).get(name)
    return value.decode() if value is not None else None


async def test_malformed_records_shuffled_with_good_requests_lose_nothing(
    kafka: KafkaServer, database: FreshDatabase
) -> None:
    rng = random.Random(14)
    goods, bads = [good(i) for i in range(10)], bad_records(rng)
    records = goods + bads
    rng.shuffle(records)
    settings = worker_settings(kafka, database)
    await create_request_topic(kafka, settings.request_topic)
    answerable = {r.request_id for r in records if r.request_id is not None}
    async with running_worker(settings):
        await publish(kafka, settings.request_topic, records)

        def answered(replies: list[Any]) -> bool:
            return answerable <= {json.loads(r.value)["request_id"] for r in replies}

        def dead_lettered(letters: list[Any]) -> bool:
            return len({dlq_position(d) for d in letters}) >= len(bads)

        replies = await read_until(kafka, settings.reply_topic, answered, 240)
        letters = await read_until(kafka, settings.dead_letter_topic, dead_lettered, 120)

    outcomes: dict[str, set[str]] = {}
    for reply in replies:
        body = json.loads(reply.value)
        outcomes.setdefault(body["request_id"], set()).add(body["outcome"])
    counts = {kind: sum(1 for r in records if r.kind == kind) for kind in {r.kind for r in bads}}
    print(f"\nflood: {len(goods)} good, {len(bads)} bad {counts}; {len(replies)} replies, "
          f"{len(letters)} dead letters")  # fmt: skip
    for sent in goods:  # answered once, or again only with the same outcome
        assert outcomes[sent.request_id or ""] in ({"healed"}, {"unchanged"}), sent.request_id
    assert {o for s in goods for o in outcomes[s.request_id or ""]} <= {"healed", "unchanged"}
    for sent in bads:
        if sent.request_id is not None:
            assert outcomes[sent.request_id] == {"rejected"}, sent.kind
    assert {dlq_position(d) for d in letters} == {r.position for r in bads}
    by_position = {dlq_position(d): d for d in letters}
    for sent in bads:
        letter = by_position[sent.position]
        if sent.kind == "over-record-limit-12mb":
            assert header(letter, "x-schemaheal-truncated") is not None
            assert header(letter, "x-schemaheal-error-code") == "too-large"
            assert 8 * MiB < len(letter.value) < 12 * MiB
            assert letter.value == (sent.value or b"")[: len(letter.value)]
        else:  # whole: the 5 MB JSON and the 9 MB body too
            assert header(letter, "x-schemaheal-truncated") is None, sent.kind
            assert letter.value == sent.value, sent.kind


def dlq_position(record: Any) -> tuple[int, int]:
    return (
        int(header(record, "x-schemaheal-original-partition") or -1),
        int(header(record, "x-schemaheal-original-offset") or -1),
    )
