"""SASL/SCRAM over TLS on a real Apache Kafka: the worker, the boot client, ``await-schema`` and
``replay`` authenticate and verify the broker; wrong credentials and an untrusted CA are refused with a
message that says what to check."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import BrokerUnavailable, KafkaAuth, ensure_schema
from tests.conftest import BROKERS, FreshDatabase
from tests.service.conftest import running_worker, worker_settings
from worker.errors import KafkaUnavailable
from worker.service.app import ensure_topics

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "examples" / "nexus" / "manifest.json"
USERS = {"schemaheal-worker": "w0rker-secret", "orchestrator": "orch-secret"}

pytestmark = pytest.mark.skipif(
    "apache" not in BROKERS, reason="needs Apache Kafka (tier 2): a JDK and Maven"
)


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[object]:
    from tests.apache_kafka import ApacheKafka

    server = ApacheKafka(scram_users=USERS).start()
    yield server
    server.stop()


def _client_auth(kafka: object, password: str = USERS["orchestrator"]) -> KafkaAuth:
    return KafkaAuth(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                     username="orchestrator", password=password,
                     ssl_cafile=kafka.tls.ca_pem)  # type: ignore[attr-defined]  # fmt: skip


async def test_worker_client_and_await_schema_authenticate_over_tls(
    secure_kafka: object, database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute((ROOT / "examples" / "nexus" / "old_shape.sql").read_text())
    password_file = tmp_path / "kafka-password"
    password_file.write_text(USERS["schemaheal-worker"] + "\n")
    settings = worker_settings(
        secure_kafka, database,  # type: ignore[arg-type]
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="schemaheal-worker", kafka_sasl_password_file=password_file,
        kafka_ssl_cafile=secure_kafka.tls.ca_pem,  # type: ignore[attr-defined]
    )  # fmt: skip
    async with running_worker(settings):
        reply = await ensure_schema(
            MANIFEST.read_bytes(),
            bootstrap_servers=secure_kafka.bootstrap_servers,  # type: ignore[attr-defined]
            kafka_auth=_client_auth(secure_kafka),
            timeout_s=90,
        )
        assert reply.outcome == "healed"
        assert reply.statements
        env = {
            **os.environ,
            "SCHEMAHEAL_BOOTSTRAP_SERVERS": secure_kafka.bootstrap_servers,  # type: ignore[attr-defined]
            "SCHEMAHEAL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SCHEMAHEAL_KAFKA_SASL_USERNAME": "orchestrator",
            "SCHEMAHEAL_KAFKA_SASL_PASSWORD": USERS["orchestrator"],
            "SCHEMAHEAL_KAFKA_SSL_CAFILE": str(secure_kafka.tls.ca_pem),  # type: ignore[attr-defined]
        }
        waiter = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "await-schema", "--format", "json",
            str(MANIFEST), cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(waiter.communicate(), 120)
    assert waiter.returncode == 0, err.decode()
    assert json.loads(out)["outcome"] == "unchanged"
    assert USERS["orchestrator"].encode() not in out + err  # a secret is never printed
    # replay reads the same history over SASL_SSL, and finds it agrees with the ledger
    replay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "replay", "--since", "1h", "--format", "json",
        "--database", f"nexus={database.dsn}", "--replay-fetch-max-wait-ms", "50",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(replay.communicate(), 120)
    assert replay.returncode == 0, (out + err).decode()
    boots = [line for line in map(json.loads, out.splitlines()) if line["type"] == "boot"]
    assert [b["outcome"] for b in boots] == ["healed", "unchanged"]
    assert USERS["orchestrator"].encode() not in out + err


async def test_wrong_credentials_are_refused_with_what_to_check(
    secure_kafka: object, database: FreshDatabase
) -> None:
    with pytest.raises(BrokerUnavailable, match="invalid credentials"):
        await ensure_schema(
            MANIFEST.read_bytes(),
            bootstrap_servers=secure_kafka.bootstrap_servers,  # type: ignore[attr-defined]
            kafka_auth=_client_auth(secure_kafka, password="not-the-password"),
            timeout_s=30,
        )
    settings = worker_settings(
        secure_kafka, database,  # type: ignore[arg-type]
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="schemaheal-worker",
        kafka_sasl_password="not-the-password",
        kafka_ssl_cafile=secure_kafka.tls.ca_pem,  # type: ignore[attr-defined]
    )  # fmt: skip
    with pytest.raises(KafkaUnavailable, match="check kafka_sasl_username") as caught:
        await ensure_topics(settings)
    assert "not-the-password" not in str(caught.value)


async def test_a_broker_certificate_from_an_unknown_ca_is_refused(secure_kafka: object) -> None:
    auth = KafkaAuth(security_protocol="SASL_SSL", username="orchestrator",
                     password=USERS["orchestrator"])  # system CAs only  # fmt: skip
    with pytest.raises(BrokerUnavailable, match=r"(?i)certificate"):
        await ensure_schema(
            MANIFEST.read_bytes(),
            bootstrap_servers=secure_kafka.bootstrap_servers,  # type: ignore[attr-defined]
            kafka_auth=auth,
            timeout_s=30,
        )
