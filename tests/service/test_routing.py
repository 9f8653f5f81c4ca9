"""Where a reply goes and how its requester recognises it, by the request's own convention."""

from __future__ import annotations

import uuid

import pytest

from worker.service.routing import Destination, Route, refused_headers, route
from worker.settings import WorkerSettings

STANDARD = Destination(topic="schema.healed")
SPRING_ID = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").bytes  # binary, not UTF-8
ALLOWED = frozenset({"spring.replies", "faststream.replies"})


def partition(n: int) -> bytes:
    return n.to_bytes(4, "big", signed=True)


CASES = {
    "no convention: correlation_id is the ce_id, standard topic": (
        [("ce_id", b"r1")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"r1"),)),
    ),
    "its own correlation_id is echoed": (
        [("ce_id", b"r1"), ("correlation_id", b"abc")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"abc"),)),
    ),
    "a non-UTF-8 correlation_id is echoed byte for byte": (
        [("correlation_id", b"\xff\x00")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"\xff\x00"),)),
    ),
    "a null or empty correlation_id falls back to the ce_id": (
        [("correlation_id", None), ("correlation_id", b"")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"r1"),)),
    ),
    "a repeated correlation_id keeps its first value": (
        [("correlation_id", b"first"), ("correlation_id", b"second")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"first"),)),
    ),
    "FastStream reply_to an allowed topic: there, and a copy on the standard topic": (
        [("correlation_id", b"fs-1"), ("reply_to", b"faststream.replies")],
        Route(
            destinations=(Destination(topic="faststream.replies"), STANDARD),
            correlation=(("correlation_id", b"fs-1"),),
        ),
    ),
    "reply_to the standard topic: one record": (
        [("reply_to", b"schema.healed")],
        Route(destinations=(STANDARD,), correlation=(("correlation_id", b"r1"),)),
    ),
    "Spring: binary kafka_correlationId echoed, topic and partition honoured": (
        [("kafka_replyTopic", b"spring.replies"), ("kafka_replyPartition", partition(2)),
         ("kafka_correlationId", SPRING_ID)],
        Route(
            destinations=(Destination(topic="spring.replies", partition=2), STANDARD),
            correlation=(("correlation_id", b"r1"), ("kafka_correlationId", SPRING_ID)),
        ),
    ),
    "Spring partition on the standard topic: that partition only": (
        [("kafka_replyTopic", b"schema.healed"), ("kafka_replyPartition", partition(0))],
        Route(
            destinations=(Destination(topic="schema.healed", partition=0),),
            correlation=(("correlation_id", b"r1"),),
        ),
    ),
    "both conventions naming the same topic agree": (
        [("reply_to", b"spring.replies"), ("kafka_replyTopic", b"spring.replies")],
        Route(
            destinations=(Destination(topic="spring.replies"), STANDARD),
            correlation=(("correlation_id", b"r1"),),
        ),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("headers", "expected"), CASES.values(), ids=CASES.keys())
def test_a_reply_follows_the_convention_of_its_request(
    headers: list[tuple[str, bytes | None]], expected: Route
) -> None:
    assert route(headers, request_id="r1", reply_topic="schema.healed", allowed=ALLOWED) == expected


REFUSED = {
    "a topic the operator did not allow": (
        [("reply_to", b"orders")],
        "reply topic 'orders' is not allowed on this worker",
    ),
    "Spring naming a topic the operator did not allow": (
        [("kafka_replyTopic", b"service.starting"), ("kafka_correlationId", SPRING_ID)],
        "reply topic 'service.starting' is not allowed",
    ),
    "two conventions naming different topics": (
        [("reply_to", b"faststream.replies"), ("kafka_replyTopic", b"spring.replies")],
        "name different topics",
    ),
    "a reply topic that is not UTF-8 text": ([("reply_to", b"\xff")], "header reply_to must"),
    "an empty reply topic": ([("kafka_replyTopic", b" ")], "header kafka_replyTopic must"),
    "a partition of 3 bytes": (
        [("kafka_replyTopic", b"spring.replies"), ("kafka_replyPartition", b"\x00\x00\x01")],
        "4-byte big-endian",
    ),
    "a negative partition": (
        [("kafka_replyTopic", b"spring.replies"), ("kafka_replyPartition", partition(-1))],
        "4-byte big-endian",
    ),
    "a partition without a topic": (
        [("kafka_replyPartition", partition(1))],
        "without kafka_replyTopic",
    ),
    "a correlation id longer than 1 KiB": (
        [("correlation_id", b"x" * 1025), ("reply_to", b"faststream.replies")],
        "correlation_id is longer than 1024 bytes",
    ),
}


@pytest.mark.parametrize(("headers", "says"), REFUSED.values(), ids=REFUSED.keys())
def test_a_destination_that_cannot_be_honoured_is_refused_and_answered_on_the_standard_topic(
    headers: list[tuple[str, bytes | None]], says: str
) -> None:
    """Nothing is written where the request asked; its own correlation still comes back."""
    got = route(
        [("kafka_correlationId", SPRING_ID), *headers],
        request_id="r1",
        reply_topic="schema.healed",
        allowed=ALLOWED,
    )
    assert got.destinations == (STANDARD,)
    assert got.refused is not None and says in got.refused
    assert ("kafka_correlationId", SPRING_ID) in got.correlation or "1024" in got.refused


def test_the_refusal_header_says_why_and_is_absent_otherwise() -> None:
    assert refused_headers(None) == ()
    assert refused_headers("no") == (("x-schemaheal-reply-refused", b"no"),)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", frozenset()),
        ("spring.replies", frozenset({"spring.replies"})),
        (" a , b ,", frozenset({"a", "b"})),
        (["a", "b"], frozenset({"a", "b"})),
    ],
)
def test_allowed_reply_topics_are_a_comma_separated_setting(
    given: object, expected: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert WorkerSettings(allowed_reply_topics=given).allowed_reply_topics == expected
    if isinstance(given, str):
        monkeypatch.setenv("SCHEMAHEAL_ALLOWED_REPLY_TOPICS", given)
        assert WorkerSettings().allowed_reply_topics == expected


def test_by_default_only_the_standard_reply_topic_is_allowed() -> None:
    settings = WorkerSettings()
    assert settings.allowed_reply_topics == frozenset()
    got = route(
        [("reply_to", b"anything")], request_id="r1", reply_topic=settings.reply_topic,
        allowed=settings.allowed_reply_topics,
    )  # fmt: skip
    assert got.refused is not None and got.destinations == (STANDARD,)
