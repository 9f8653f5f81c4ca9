"""The committed AsyncAPI document of the worker (``contracts/schemas/asyncapi.json``).

FastStream generates it from the worker's subscriber and publishers. Regenerate with
``make schemas``; a test keeps the committed file current. Served HTML uses no "try it out"
publishing: nobody should be able to publish a ``service.starting`` from a docs page.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.specification.asyncapi import get_asyncapi_html

from contracts.events import (
    HEARTBEAT_TYPE,
    REPLY_TYPE,
    REQUEST_TYPE,
    STOPPED_TYPE,
    ServiceHeartbeat,
)
from worker.service.app import build_app
from worker.settings import WorkerSettings

_CE = {
    "ce_specversion": {"type": "string", "const": "1.0"},
    "ce_id": {"type": "string", "description": "unique per event; the request id"},
    "ce_source": {"type": "string", "description": "e.g. /services/orchestrator/pod-a"},
    "ce_type": {"type": "string"},
    "ce_time": {"type": "string", "format": "date-time"},
    "ce_subject": {"type": "string"},
    "content-type": {"type": "string", "const": "application/json"},
    "traceparent": {"type": "string", "description": "W3C trace context, request to reply"},
    "tracestate": {"type": "string"},
}
_BYTES = "raw bytes (a Kafka header value, not necessarily UTF-8)"
_REQUEST = {
    "correlation_id": {
        "type": "string",
        "description": "the requester's own correlation id (FastStream, most Kafka RPC "
        "helpers), echoed byte for byte on the reply; without it the reply carries the ce_id",
    },
    "reply_to": {
        "type": "string",
        "description": "FastStream: the topic the reply should go to; honoured only for topics "
        "the operator allows (--allowed-reply-topics), else the request is rejected",
    },
    "kafka_replyTopic": {
        "type": "string",
        "description": "Spring Kafka: the reply topic (UTF-8), allowed like reply_to",
    },
    "kafka_replyPartition": {
        "type": "string",
        "description": f"Spring Kafka: the reply partition, a 4-byte big-endian int; {_BYTES}",
    },
    "kafka_correlationId": {
        "type": "string",
        "description": f"Spring Kafka: the correlation id, echoed byte for byte; {_BYTES}",
    },
    "x-schemaheal-signature-version": {
        "type": "string",
        "enum": ["2", "1"],
        "description": "the signature's version: 2 signs x-schemaheal-signature-version, "
        "-key-id, -timestamp, ce_id, ce_source, ce_type, ce_time, correlation_id, reply_to, "
        "kafka_correlationId, kafka_replyTopic, kafka_replyPartition, the Kafka key and the "
        "body (contracts/signing.py; test vectors in contracts/schemas/signature-v2.vectors."
        "json). Absent: version 1 (key id, timestamp, ce_id, body), accepted only from "
        "services whose access policy lists it in signature_versions",
    },
    "x-schemaheal-key-id": {
        "type": "string",
        "description": "which of the service's keys signed (the access policy's keys)",
    },
    "x-schemaheal-timestamp": {
        "type": "string",
        "pattern": "^[0-9]{1,18}$",
        "description": "unix seconds when signed; refused outside the worker's 5-minute window",
    },
    "x-schemaheal-signature": {
        "type": "string",
        "contentEncoding": "base64",
        "description": "Ed25519 over the signed bytes; required of services whose access "
        "policy lists keys, whose ce_source must then be /services/SERVICE[/INSTANCE]",
    },
}
#: heartbeats are signed like requests, and route nothing
_SIGNED = {k: v for k, v in _REQUEST.items() if k.startswith("x-schemaheal-")}
_REPLY = {
    "correlation_id": {
        "type": "string",
        "description": "the request's correlation_id header, byte for byte; else its ce_id",
    },
    "kafka_correlationId": {
        "type": "string",
        "description": f"the request's kafka_correlationId, when it had one; {_BYTES}",
    },
    "x-schemaheal-reply-refused": {
        "type": "string",
        "description": "why the reply is not where the request asked (a topic not allowed, "
        "a malformed header, a partition the topic lacks)",
    },
}
_REPLY_ADDRESS = {
    "location": "$message.header#/reply_to",
    "description": "or kafka_replyTopic (+ kafka_replyPartition), for allowed topics only; the "
    "reply is then also published on schema.healed, which holds every answer",
}


def _headers(event_type: str | list[str], own: dict[str, Any]) -> dict[str, Any]:
    kind = {"const": event_type} if isinstance(event_type, str) else {"enum": event_type}
    properties = {**_CE, **own, "ce_type": {"type": "string", **kind}}
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"]
    return {"type": "object", "properties": properties, "required": required}


def document() -> dict[str, Any]:
    """The AsyncAPI document for default settings (servers shown as the default bootstrap).

    The subscriber takes raw records (the gate validates and rejects them itself, so FastStream
    never casts them); the document states their real payload and CloudEvents headers, and
    the reply each request gets (where, and by which correlation id)."""
    app, _ = build_app(WorkerSettings(bootstrap_servers="kafka:9092", health_port=0))
    data: dict[str, Any] = app.schema.to_specification().to_jsonable()
    messages = data["components"]["messages"]
    request = messages["service.starting:SubscribeMessage"]
    request["payload"] = {"$ref": "#/components/schemas/ServiceStarting"}
    request["headers"] = _headers(REQUEST_TYPE, _REQUEST)
    messages["schema.healed:Message"]["headers"] = _headers(REPLY_TYPE, _REPLY)
    heartbeat = messages["service.heartbeat:SubscribeMessage"]
    heartbeat["payload"] = {"$ref": "#/components/schemas/ServiceHeartbeat"}
    heartbeat["headers"] = _headers([HEARTBEAT_TYPE, STOPPED_TYPE], _SIGNED)
    data["components"]["schemas"]["ServiceHeartbeat"] = ServiceHeartbeat.model_json_schema()
    data["operations"]["service.starting"]["reply"] = {
        "address": _REPLY_ADDRESS,
        "channel": {"$ref": "#/channels/schema.healed"},
        "messages": [{"$ref": "#/channels/schema.healed/messages/Message"}],
    }
    data["components"]["schemas"].pop("EmptyPayload", None)
    return data


def html() -> str:
    """The document as a page, without "try it out"."""
    app, _ = build_app(WorkerSettings(bootstrap_servers="kafka:9092", health_port=0))
    return get_asyncapi_html(app.schema.to_specification(), try_it_out_path=None)


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"
