"""Dockerfile and docker-compose.yml, checked without a Docker engine (there is none here)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings import WorkerSettings

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def test_dockerfile_is_multi_stage_pinned_non_root_with_health_check_and_lock_file() -> None:
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", DOCKERFILE, re.MULTILINE)
    assert len(stages) >= 2, "multi-stage"
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert "--require-hashes" in DOCKERFILE
    assert "requirements.lock" in DOCKERFILE
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert users, "USER set"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert "HEALTHCHECK" in DOCKERFILE
    assert "/livez" in DOCKERFILE
    assert 'ENTRYPOINT ["schemaheal"]' in DOCKERFILE
    assert 'CMD ["worker"]' in DOCKERFILE


@pytest.mark.skipif(shutil.which("hadolint") is None and not (Path(sys.executable).parent / "hadolint").exists(),
                    reason="hadolint is not installed")  # fmt: skip
def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lock_file_pins_every_runtime_dependency_with_hashes() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    pins = re.findall(r"^([a-z0-9_.-]+)==", lock, re.MULTILINE | re.IGNORECASE)
    for needed in (
        "pydantic",
        "asyncpg",
        "aiokafka",
        "faststream",
        "pglast",
        "sqlalchemy",
        "opentelemetry-sdk",
    ):
        assert needed in {p.lower() for p in pins}, needed
    assert lock.count("--hash=sha256:") >= len(pins)


def test_compose_has_the_whole_story() -> None:
    services = compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["postgres"]["image"].startswith("postgres:")
    workers = [name for name in services if name.startswith("worker-")]
    orchestrators = [name for name in services if name.startswith("orchestrator-")]
    assert len(workers) == 2
    assert len(orchestrators) == 3
    assert "jaeger" in services
    mounts = " ".join(services["postgres"]["volumes"])
    assert "examples/nexus/old_shape.sql" in mounts  # the seed's old shape


def test_compose_worker_environment_matches_the_settings_model() -> None:
    services = compose()["services"]
    known = {f"SCHEMAHEAL_{name.upper()}" for name in WorkerSettings.model_fields}
    for name in ("worker-1", "worker-2"):
        env = services[name]["environment"]
        ours = {k for k in env if k.startswith("SCHEMAHEAL_")}
        assert ours <= known, ours - known
        settings = WorkerSettings(**{k.removeprefix("SCHEMAHEAL_").lower(): v for k, v in env.items()
                                     if k.startswith("SCHEMAHEAL_")})  # fmt: skip
        assert settings.bootstrap_servers == "kafka:9092"
        assert list(settings.databases) == ["nexus"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://jaeger:")
    assert "8080:8080" in services["worker-1"]["ports"]


def test_compose_topics_are_the_contracts_topics_with_time_based_retention() -> None:
    script = (ROOT / "deploy" / "kafka-topics.sh").read_text()
    defaults = WorkerSettings()
    for topic in (defaults.request_topic, defaults.reply_topic, defaults.dead_letter_topic,
                  defaults.heartbeat_topic):  # fmt: skip
        assert topic in script
    assert "cleanup.policy=delete" in script
    assert "cleanup.policy=compact" not in script
    assert f"--partitions {WorkerSettings(**{'topic_partitions': 6}).topic_partitions}" in script


def test_compose_orchestrators_boot_through_the_gate() -> None:
    services = compose()["services"]
    for name in ("orchestrator-1", "orchestrator-2", "orchestrator-3"):
        entry = services[name]["entrypoint"]
        assert "examples.nexus.orchestrator" in entry
        assert services[name]["depends_on"]["worker-1"]["condition"] == "service_healthy"
