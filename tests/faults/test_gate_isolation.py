"""One record's failure is that record's answer or dead letter; its neighbours are served.

Each test publishes a bad record between good ones in one batch, on a real PostgreSQL."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contracts.events import SchemaHealed
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.faults.sink import RecordingSink
from tests.service.records import Record, request_body, request_record, signed_record, with_header
from worker.errors import KafkaUnavailable
from worker.service.gate import Gate
from worker.service.routing import Route
from worker.settings import WorkerSettings

KEY = Ed25519PrivateKey.generate()


def signing_policy(tmp_path: Path) -> Path:
    public = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
    policy = tmp_path / "access.json"
    policy.write_text(json.dumps({"services": {
        "orchestrator": {"databases": {"nexus": {"schemas": ["public"]}},
                         "keys": {"k1": public.decode()}},
        "billing": {"databases": {"nexus": {"schemas": ["public"]}}}}}))  # fmt: skip
    return policy


def signed(request_id: str, offset: int, **header_changes: str) -> Record:
    record = signed_record(KEY, "k1", request_id, offset)
    for name, value in header_changes.items():
        record = with_header(record, name, value.encode())
    return record


def billing(request_id: str, offset: int) -> Record:
    """A neighbour: another service, another table of the same database."""
    want = manifest(table("invoices", column("id", "bigint", nullable=False), primary_key=pk("id")),
                    service="billing")  # fmt: skip
    record = request_record(request_body(service="billing", manifest=want), request_id=request_id)
    record.offset = offset
    return record


async def serve(
    database: FreshDatabase, policy: Path | None, batch: list[Record], **settings_: Any
) -> RecordingSink:
    sink = RecordingSink()
    settings = WorkerSettings(databases={"nexus": database.dsn}, access_policy=policy, **settings_)
    gate = Gate(settings, sink)
    try:
        assert await gate.handle(batch)
    finally:
        await gate.close()
    return sink


async def test_a_unicode_digit_or_huge_timestamp_refuses_only_its_own_record(
    database: FreshDatabase, tmp_path: Path
) -> None:
    """Issue 15.1: ``²`` passes ``isdigit()`` and then ``int()`` raised out of the batch."""
    batch = [
        signed("before", 1),
        signed("superscript", 2, **{"x-schemaheal-timestamp": "²"}),
        signed("huge", 3, **{"x-schemaheal-timestamp": "9" * 5000}),
        signed("arabic-indic", 4, **{"x-schemaheal-timestamp": "١٧٠٠٠٠٠٠٠٠"}),
        billing("after", 5),
    ]
    sink = await serve(database, signing_policy(tmp_path), batch)
    assert sink.outcomes() == {
        "before": ["healed"],
        "superscript": ["rejected bad-signature"],
        "huge": ["rejected bad-signature"],
        "arabic-indic": ["rejected bad-signature"],
        "after": ["healed"],
    }
    assert sorted(d.request_id or "" for d in sink.dead) == ["arabic-indic", "huge", "superscript"]


async def test_a_signed_record_published_twice_in_one_batch_is_a_replay(
    database: FreshDatabase, tmp_path: Path
) -> None:
    """Issue 15.4: the second copy was served (``unchanged``, coalesced) instead of refused."""
    first = signed("once", 1)
    copy = Record(value=first.value, headers=first.headers, offset=2)
    sink = await serve(database, signing_policy(tmp_path), [first, copy])
    assert sorted(sink.outcomes()["once"]) == ["healed", "rejected replayed-request"]
    assert [(d.code, d.record.offset) for d in sink.dead] == [("replayed-request", 2)]
    rows = await database.fetch("SELECT record_position FROM schemaheal.heals")
    assert [r["record_position"] for r in rows] == ["service.starting:0:1"]


async def test_a_table_comment_on_an_existing_table_is_healed_and_neighbours_served(
    database: FreshDatabase,
) -> None:
    """Issue 15.2: ``describe`` raised AttributeError on a SetComment (its column is a string
    or None), taking the whole batch down."""
    await database.execute("CREATE TABLE tenants (id integer PRIMARY KEY, "
                           "openai_api_key text)")  # fmt: skip
    body = request_body()
    body["manifest"]["tables"][0]["comment"] = "who pays"
    body["manifest"]["tables"][0]["columns"][1]["comment"] = "secret; never logged"
    commented = request_record(body, request_id="commented")
    commented.offset = 2
    sink = await serve(database, None, [billing("first", 1), commented, billing("last", 3)])
    assert sink.outcomes() == {"first": ["healed"], "commented": ["healed"], "last": ["healed"]}
    comments = await database.fetch(
        "SELECT obj_description('tenants'::regclass, 'pg_class') AS t, "
        "col_description('tenants'::regclass, 2) AS c"
    )
    assert tuple(comments[0]) == ("who pays", "secret; never logged")


class RefusingSink(RecordingSink):
    """A broker that refuses the reply to one request (as a full or unreachable broker does)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def reply(
        self, reply: SchemaHealed, headers: dict[str, str], key: bytes | None, route: Route
    ) -> None:
        if reply.request_id == self.refused:
            raise KafkaUnavailable("publishing to schema.healed: the broker is down")
        await super().reply(reply, headers, key, route)


async def test_a_reply_that_cannot_be_published_brings_the_batch_back(
    database: FreshDatabase,
) -> None:
    """The batch must not be committed (handle is False) — and the other records are served."""
    sink = RefusingSink("unlucky")
    gate = Gate(WorkerSettings(databases={"nexus": database.dsn}), sink)
    junk = request_record(request_id="junk", raw=b"\xff")
    try:
        batch = [billing("first", 1), request_record(request_id="unlucky"), junk]
        assert await gate.handle(batch) is False
        assert sink.outcomes() == {"first": ["healed"], "junk": ["rejected not-json"]}
        sink.refused = ""
        assert await gate.handle(batch) is True  # redelivered: answered, from the ledger
        assert sink.outcomes()["unlucky"] == ["healed"]
    finally:
        await gate.close()


async def test_an_empty_comment_is_no_comment_not_a_failed_verification(
    database: FreshDatabase,
) -> None:
    """Found by test_fuzzed_records: ``COMMENT ON … IS ''`` removes the comment, so a
    manifest's empty comment was planned again after applying: ``failed verify-failed``."""
    body = request_body()
    body["manifest"]["tables"][0]["comment"] = ""
    body["manifest"]["tables"][0]["columns"][0]["comment"] = ""
    sink = await serve(database, None, [request_record(body, request_id="empty")])
    assert sink.outcomes() == {"empty": ["healed"]}
