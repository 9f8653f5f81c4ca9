"""Signed requests through a real broker: the boot client and `await-schema` sign; the worker
refuses what its access policy says must be signed and is not."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from contracts import SchemaRejected, ensure_schema
from tests.conftest import FreshDatabase
from tests.kafka import KafkaServer
from tests.service.conftest import running_worker, worker_settings

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "examples" / "nexus" / "manifest.json"


async def test_the_boot_client_and_await_schema_sign_and_unsigned_requests_are_refused(
    kafka: KafkaServer, database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute((ROOT / "examples" / "nexus" / "old_shape.sql").read_text())
    key = Ed25519PrivateKey.generate()
    public = base64.b64encode(
        key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    ).decode()
    pem = tmp_path / "orchestrator.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    policy = tmp_path / "access.json"
    policy.write_text(json.dumps({"services": {"orchestrator": {
        "databases": {"nexus": {"schemas": ["public"]}}, "keys": {"k1": public}}}}))  # fmt: skip
    settings = worker_settings(kafka, database, access_policy=policy)
    async with running_worker(settings):
        with pytest.raises(SchemaRejected, match="not signed"):
            await ensure_schema(
                MANIFEST.read_bytes(), bootstrap_servers=kafka.bootstrap_servers, timeout_s=60
            )
        reply = await ensure_schema(MANIFEST.read_bytes(), bootstrap_servers=kafka.bootstrap_servers,
                                    timeout_s=60, signing_key=key, key_id="k1")  # fmt: skip
        assert reply.outcome == "healed"
        waiter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "await-schema", "--bootstrap-servers",
            kafka.bootstrap_servers, "--signing-key", str(pem), "--key-id", "k1",
            "--format", "json", str(MANIFEST), cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(waiter.communicate(), 120)
    assert waiter.returncode == 0
    assert json.loads(out)["outcome"] == "unchanged"
