"""A shell init container without Python: deploy/await-schema.sh (kcat) boots through the gate.

The script runs with a PATH holding only the tools it names (sh, kcat, coreutils, grep, sed):
no Python. It publishes with kcat's -H headers and picks its reply out of the topic by its
own correlation_id, on the standard reply topic or on a topic it asks for with reply_to.

kcat cannot talk to Tansu while it is built on librdkafka older than 2.2: those skip one byte
too few of every tagged field (fixed by librdkafka PR #4278), and Tansu's ApiVersions v3 answer
carries FinalizedFeaturesEpoch = -1, eight 0xff bytes that librdkafka, one byte off, reads as a
length of 2^57 - 1 ("Protocol read buffer underflow for ApiVersion v3"). Apache Kafka's answer
is misread the same way but its bytes there are small, so it passes. The Tansu run is replaced by
a test of that diagnosis until kcat's librdkafka is new enough.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BROKERS, FreshDatabase
from tests.interop.helpers import NEXUS, assert_healed, create_topic, drifted
from tests.kafka import KafkaServer, serving
from tests.service.conftest import running_worker, worker_settings
from worker.embedded.broker import LocalBroker

SCRIPT = Path(__file__).parents[2] / "deploy" / "await-schema.sh"
TOOLS = ("sh", "kcat", "cat", "date", "mktemp", "grep", "sed", "tr", "head", "hostname", "sleep",
         "rm", "kill")  # fmt: skip


def librdkafka_version() -> tuple[int, ...]:
    """The librdkafka kcat is built on ("... librdkafka 2.0.2 builtin.features=...")."""
    shown = subprocess.run(["kcat", "-V"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", shown)
    assert found is not None, shown
    return tuple(int(part) for part in found.groups())


KCAT_READS_TANSU = librdkafka_version() >= (2, 2, 0)


@pytest.fixture(params=[b for b in BROKERS if b != "tansu" or KCAT_READS_TANSU])
def broker(request: pytest.FixtureRequest) -> Iterator[KafkaServer]:
    """The selected brokers kcat can talk to."""
    yield from serving(request.param)


def python_free_path(root: Path) -> str:
    """A directory with links to just the script's tools."""
    root.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not installed"
        (root / tool).symlink_to(found)
    return str(root)


def headers_of(printed: str) -> dict[str, str]:
    """kcat's %h: name=value pairs, comma separated."""
    return dict(pair.split("=", 1) for pair in printed.split("\t", 1)[0].split(","))


@pytest.mark.parametrize("reply_topic", ["schema.healed", "kcat.replies"])
async def test_kcat_publishes_a_request_and_reads_its_reply_by_its_correlation_id(
    broker: KafkaServer, database: FreshDatabase, tmp_path: Path, reply_topic: str
) -> None:
    kafka = broker
    await drifted(database)
    if reply_topic != "schema.healed":
        await create_topic(kafka, reply_topic, 2)
    settings = worker_settings(kafka, database, allowed_reply_topics="kcat.replies")
    async with running_worker(settings):
        shell = await asyncio.create_subprocess_exec(
            "/bin/sh", str(SCRIPT), kafka.bootstrap_servers, str(NEXUS / "manifest.json"),
            env={"PATH": python_free_path(tmp_path / "bin"), "SCHEMAHEAL_TIMEOUT_S": "60",
                 "SCHEMAHEAL_REPLY_TOPIC": reply_topic, "SCHEMAHEAL_INSTANCE": "init-pod"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await shell.communicate()
    assert shell.returncode == 0, err.decode()
    said = err.decode()  # "request <ce_id> (correlation_id <id>) sent; ..."
    request_id, correlation = said.split()[1], said.split()[3].rstrip(")")
    headers = headers_of(out.decode().strip())
    assert headers["correlation_id"] == correlation != request_id
    assert headers["ce_subject"] == request_id
    assert '"outcome":"healed"' in out.decode()
    await assert_healed(database, request_id)


def test_kcat_reads_tansu_exactly_when_its_librdkafka_is_2_2_or_newer() -> None:
    """Why the kcat test runs on Tansu only with a new librdkafka (the module docstring): if
    this fails, kcat or Tansu changed, and which brokers test_kcat uses should change too."""
    tansu = LocalBroker().start()
    try:
        done = subprocess.run(
            ["kcat", "-b", tansu.bootstrap_servers, "-L", "-m", "3", "-d", "protocol"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        tansu.stop()
    if KCAT_READS_TANSU:
        assert done.returncode == 0, done.stderr[-2000:]
    else:
        assert done.returncode != 0
        assert "Protocol read buffer underflow for ApiVersion v3" in done.stderr
        assert "expected 216172782113783806 bytes" in done.stderr  # 0xff x 8, 0x02, minus one
