"""The committed JSON Schema is current and judges examples as the validator does."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from contracts.jsonschema import SCHEMA_DIR, documents, render
from tests.contracts.builders import TENANTS, column, manifest, table
from tests.contracts.test_from_sqlalchemy import nexus_manifest_dict


@pytest.mark.parametrize("name", sorted(documents()))
def test_committed_schema_files_are_current(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == render(documents()[name]), f"{name} is stale: run `make schemas`"


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMA_DIR / "manifest.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    "data",
    [nexus_manifest_dict(), manifest(TENANTS), manifest(table("t", column("a", "int")))],
)
def test_valid_examples_pass(data: dict[str, Any]) -> None:
    assert list(validator().iter_errors(data)) == []


@pytest.mark.parametrize(
    "data",
    [
        {"service": "s"},
        manifest(table("bad;name", column("a"))),
        manifest(table("t", column("a", bogus=True))),
        manifest(table("t")),
        {**manifest(), "format_version": 2},
        manifest(extensions=[{"name": "plpython3u"}]),
        manifest(table("t", column("a"), indexes=[{"elements": ["a"], "method": "evil"}])),
    ],
)
def test_invalid_examples_fail(data: dict[str, Any]) -> None:
    assert list(validator().iter_errors(data)) != []


def test_committed_asyncapi_document_is_current() -> None:
    from worker.service.asyncapi import render

    committed = (SCHEMA_DIR / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == render(), "asyncapi.json is stale: run `make schemas`"
    document = json.loads(committed)
    assert set(document["channels"]) == {
        "service.starting",
        "schema.healed",
        "service.starting.dlq",
        "service.heartbeat",
    }
    request = document["components"]["messages"]["service.starting:SubscribeMessage"]
    assert request["payload"] == {"$ref": "#/components/schemas/ServiceStarting"}
    assert "ce_id" in request["headers"]["required"]
    beat = document["components"]["messages"]["service.heartbeat:SubscribeMessage"]
    assert beat["payload"] == {"$ref": "#/components/schemas/ServiceHeartbeat"}
    assert beat["headers"]["properties"]["ce_type"]["enum"] == [
        "dev.schemaheal.service.heartbeat.v1", "dev.schemaheal.service.stopped.v1"
    ]  # fmt: skip
    assert "x-schemaheal-signature" in beat["headers"]["properties"]


def test_the_docs_page_offers_no_try_it_out_publishing() -> None:
    from worker.service.asyncapi import html

    page = html()
    assert "AsyncApiStandalone" in page or "asyncapi" in page.lower()
    assert "try" not in page.lower().replace("entry", "")


def test_asyncapi_names_the_correlation_and_reply_headers_the_worker_reads() -> None:
    from worker.service import routing

    document = json.loads((SCHEMA_DIR / "asyncapi.json").read_text(encoding="utf-8"))
    messages = document["components"]["messages"]
    request = messages["service.starting:SubscribeMessage"]["headers"]["properties"]
    reply = messages["schema.healed:Message"]["headers"]["properties"]
    assert {routing.CORRELATION_ID, routing.REPLY_TO, routing.SPRING_REPLY_TOPIC,
            routing.SPRING_REPLY_PARTITION, routing.SPRING_CORRELATION_ID} <= set(request)  # fmt: skip
    assert {routing.CORRELATION_ID, routing.SPRING_CORRELATION_ID, routing.REFUSED_HEADER} <= set(
        reply
    )
    answer = document["operations"]["service.starting"]["reply"]
    assert answer["address"]["location"] == f"$message.header#/{routing.REPLY_TO}"
    assert answer["channel"] == {"$ref": "#/channels/schema.healed"}


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ({"service": "orchestrator", "instance": "pod-a", "database": "nexus"}, True),
        ({"service": "orchestrator", "instance": "pod-a"}, False),
        ({"service": "Bad Name", "instance": "pod-a", "database": "nexus"}, False),
        ({"service": "orchestrator", "instance": "pod a", "database": "nexus"}, False),
        ({"service": "orchestrator", "instance": "pod-a", "database": "nexus", "x": 1}, False),
    ],
)
def test_the_heartbeat_schema_judges_as_the_model_does(data: dict[str, Any], valid: bool) -> None:
    from pydantic import ValidationError

    from contracts.events import ServiceHeartbeat

    schema = json.loads((SCHEMA_DIR / "service-heartbeat.schema.json").read_text())
    assert (list(jsonschema.Draft202012Validator(schema).iter_errors(data)) == []) is valid
    try:
        ServiceHeartbeat.model_validate(data)
    except ValidationError:
        assert not valid
    else:
        assert valid
