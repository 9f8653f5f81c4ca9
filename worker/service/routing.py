"""Where a reply goes and how its requester recognises it: request/reply conventions. Pure.

A request may follow the convention of the client that sent it, not ours:

* ``correlation_id`` (FastStream, most Kafka RPC helpers, our own boot client): echoed on the
  reply's ``correlation_id`` header; without it the reply's ``correlation_id`` is the ``ce_id``.
* ``kafka_correlationId`` (Spring Kafka's ``ReplyingKafkaTemplate``; raw bytes, by default a
  16-byte binary UUID): echoed byte for byte.
* ``reply_to`` (FastStream) or ``kafka_replyTopic`` (Spring Kafka, UTF-8) name the reply topic,
  ``kafka_replyPartition`` (Spring Kafka, a 4-byte big-endian int) its partition.

A requested destination is honoured only when the operator allows that topic
(``--allowed-reply-topics``; the standard reply topic always is): a requester must not make the
worker write to any topic it likes. A reply sent elsewhere is also published on the standard
reply topic, which stays the complete record of every answer (``schemaheal replay`` reads it).
A destination that cannot be honoured is a :class:`Route` with ``refused`` set: the gate then
rejects the request, and its ``rejected`` reply goes to the standard topic only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from contracts.events import first_values

CORRELATION_ID = "correlation_id"
REPLY_TO = "reply_to"
SPRING_CORRELATION_ID = "kafka_correlationId"
SPRING_REPLY_TOPIC = "kafka_replyTopic"
SPRING_REPLY_PARTITION = "kafka_replyPartition"
REFUSED_HEADER = "x-schemaheal-reply-refused"
MAX_CORRELATION_BYTES = 1024

RawHeaders = Iterable[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """Where one record of a reply goes: a topic, and a partition (None: by the key)."""

    topic: str
    partition: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """Where a reply goes and the headers by which its requester recognises it."""

    destinations: tuple[Destination, ...]
    correlation: tuple[tuple[str, bytes], ...]
    refused: str | None = None  # why the requested destination cannot be honoured


def route(
    headers: RawHeaders, *, request_id: str, reply_topic: str, allowed: frozenset[str]
) -> Route:
    """The route of the reply to a request with raw Kafka ``headers`` (values may be null or
    not UTF-8); ``allowed`` are the topics a requester may name besides ``reply_topic``."""
    first = first_values(headers)
    correlation, problem = _correlation(first, request_id)
    standard = Destination(topic=reply_topic)
    requested = problem or _requested(first)
    if isinstance(requested, str):
        return Route(destinations=(standard,), correlation=correlation, refused=requested)
    if requested is None:
        return Route(destinations=(standard,), correlation=correlation)
    if requested.topic != reply_topic and requested.topic not in allowed:
        why = (
            f"reply topic {requested.topic!r} is not allowed on this worker: ask its operators "
            "to add it to --allowed-reply-topics (SCHEMAHEAL_ALLOWED_REPLY_TOPICS), or drop the "
            f"reply_to / kafka_replyTopic header and read the reply from {reply_topic}"
        )
        return Route(destinations=(standard,), correlation=correlation, refused=why)
    if requested.topic == reply_topic:
        return Route(destinations=(requested,), correlation=correlation)
    return Route(destinations=(requested, standard), correlation=correlation)


def refused_headers(reason: str | None) -> tuple[tuple[str, bytes], ...]:
    """The header that tells a reader of the standard topic why the destination its request
    named was not used (none when nothing was refused)."""
    return () if reason is None else ((REFUSED_HEADER, reason[:1000].encode("utf-8")),)


def _correlation(
    first: dict[str, bytes], request_id: str
) -> tuple[tuple[tuple[str, bytes], ...], str | None]:
    """The correlation headers of the reply (echoed byte for byte), and a problem with them."""
    own = first.get(CORRELATION_ID) or request_id.encode("utf-8")
    pairs = [(CORRELATION_ID, own)]
    if first.get(SPRING_CORRELATION_ID):
        pairs.append((SPRING_CORRELATION_ID, first[SPRING_CORRELATION_ID]))
    too_long = [name for name, value in pairs if len(value) > MAX_CORRELATION_BYTES]
    if too_long:
        limit = f"is longer than {MAX_CORRELATION_BYTES} bytes: send a shorter id"
        return ((CORRELATION_ID, request_id.encode("utf-8")),), f"{too_long[0]} {limit}"
    return tuple(pairs), None


def _requested(first: dict[str, bytes]) -> Destination | str | None:
    """The destination the request names, None when it names none, or why it is unusable."""
    given = [name for name in (REPLY_TO, SPRING_REPLY_TOPIC) if name in first]
    bad = [name for name in given if _text(first[name]) is None]
    if bad:
        return f"header {', '.join(bad)} must name a topic in UTF-8 text"
    named = {_text(first[name]) or "" for name in given}
    if len(named) > 1:
        return "reply_to and kafka_replyTopic name different topics: send one of them"
    partition = first.get(SPRING_REPLY_PARTITION)
    if not named:
        return None if partition is None else "kafka_replyPartition comes without kafka_replyTopic"
    topic = named.pop()
    if partition is None:
        return Destination(topic=topic)
    if len(partition) != 4 or partition[0] & 0x80:
        return "kafka_replyPartition must be a 4-byte big-endian partition number (0 or more)"
    return Destination(topic=topic, partition=int.from_bytes(partition, "big"))


def _text(value: bytes | None) -> str | None:
    """``value`` as non-empty UTF-8 text, else None."""
    if not value:
        return None
    try:
        text = value.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    return text or None
