"""The committed AsyncAPI document of the worker (``contracts/schemas/asyncapi.json``).

FastStream generates it from the worker's subscriber and publishers. Regenerate with
``make schemas``; a test keeps the committed file current. Served HTML uses no "try it out"
publishing: nobody should be able to publish a ``service.starting`` from a docs page.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.specification.asyncapi import get_asyncapi_html

from contracts.events import REPLY_TYPE, REQUEST_TYPE
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
    "correlation_id": {"type": "string", "description": "the request's ce_id, on replies"},
    "traceparent": {"type": "string", "description": "W3C trace context, request to reply"},
    "tracestate": {"type": "string"},
}


def _headers(event_type: str) -> dict[str, Any]:
    properties = {**_CE, "ce_type": {"type": "string", "const": event_type}}
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"]
    return {"type": "object", "properties": properties, "required": required}


def document() -> dict[str, Any]:
    """The AsyncAPI document for default settings (servers shown as the default bootstrap).

    The subscriber takes raw records (the gate validates and rejects them itself, so FastStream
    never casts them); the document states their real payload and CloudEvents headers."""
    app, _ = build_app(WorkerSettings(bootstrap_servers="kafka:9092", health_port=0))
    data: dict[str, Any] = app.schema.to_specification().to_jsonable()
    messages = data["components"]["messages"]
    request = messages["service.starting:SubscribeMessage"]
    request["payload"] = {"$ref": "#/components/schemas/ServiceStarting"}
    request["headers"] = _headers(REQUEST_TYPE)
    messages["schema.healed:Message"]["headers"] = _headers(REPLY_TYPE)
    data["components"]["schemas"].pop("EmptyPayload", None)
    return data


def html() -> str:
    """The document as a page, without "try it out"."""
    app, _ = build_app(WorkerSettings(bootstrap_servers="kafka:9092", health_port=0))
    return get_asyncapi_html(app.schema.to_specification(), try_it_out_path=None)


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"
