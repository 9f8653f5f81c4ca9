"""Issue 14's flood at its full size: 2,000 malformed records of every kind shuffled with 20
good requests, through a real broker and the real worker. Every good request is answered
(duplicates only with the same outcome), every bad record is dead-lettered — the 5 MB and the
oversized ones too, truncated where they do not fit — and rejected with a reply when it has a
``ce_id``. None is lost."""

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


def with_id(kind: str, i: int, value: bytes | None) -> Sent:
    return Sent(kind, f"{kind}-{i}", value, cloudevent(f"{kind}-{i}"))


def big_bodies() -> dict[str, bytes]:
    """The large and pathological bodies, built once: each is sent a few times."""
    body = request_body()

    def with_tables(tables: list[dict[str, Any]]) -> bytes:
        return json.dumps({**body, "manifest": {**body["manifest"], "tables": tables}}).encode()

    column = {"name": "id", "type": "integer"}
    return {
        "json-5mb": json.dumps({**body, "instance": "x" * (5 * MiB)}).encode(),
        "over-limit-9mb": b"{" + b" " * 8_999_998 + b"}",
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        "many-tables": with_tables([{"name": f"t{i}", "columns": [column]} for i in range(10_000)]),
        "long-names": with_tables(
            [{"name": "n" * 100_000, "columns": [{"name": "c" * 100_000, "type": "integer"}]}]
        ),
    }


# How many of each kind the flood holds (2,000 in all): the multi-megabyte ones a few times
# each (they take the time), the small ones by the hundred.
BIG = {"json-5mb": 2, "over-limit-9mb": 2, "over-record-limit-12mb": 1, "deep": 5,
       "deep-object": 5, "many-tables": 3, "long-names": 4}  # fmt: skip
SMALL = {"random": 600, "truncated": 500, "no-headers": 200, "garbage-headers": 250,
         "binary-ce-id": 150, "null-headers": 150, "wrong-type": 128}  # fmt: skip


def small_record(kind: str, i: int, rng: random.Random, body: bytes) -> Sent:
    if kind == "random":
        return with_id(kind, i, rng.randbytes(rng.randint(0, 3000)))
    if kind == "truncated":
        return with_id(kind, i, body[: rng.randint(1, len(body) - 1)])
    if kind == "no-headers":
        return Sent(kind, None, body, [])
    if kind == "garbage-headers":
        return Sent(kind, None, body, [(f"h{j}", rng.randbytes(rng.randint(0, 40)))
                                       for j in range(rng.randint(1, 8))])  # fmt: skip
    if kind == "binary-ce-id":
        return Sent(kind, None, body, [*cloudevent("x")[:1], ("ce_id", rng.randbytes(3) + b"\xff"),
                                       *cloudevent("x")[2:]])  # fmt: skip
    if kind == "null-headers":
        return Sent(kind, None, body, [(k, None) for k, _ in cloudevent("x")])
    wrong_type = cloudevent(f"{kind}-{i}")
    wrong_type[3] = ("ce_type", "é".encode("latin-1"))  # not UTF-8: the header is skipped
    return Sent(kind, f"{kind}-{i}", body, wrong_type)


def bad_records(rng: random.Random) -> list[Sent]:
    """Every kind of malformed record the issue lists: 2,000 of them."""
    body = json.dumps(request_body()).encode()
    bigs = big_bodies()
    out = [small_record(kind, i, rng, body) for kind, n in SMALL.items() for i in range(n)]
    for kind, n in BIG.items():
        out += [with_id(kind, i, bigs.get(kind) or rng.randbytes(12 * MiB)) for i in range(n)]
    assert len(out) == 2000
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
    goods, bads = [good(i) for i in range(20)], bad_records(rng)
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
