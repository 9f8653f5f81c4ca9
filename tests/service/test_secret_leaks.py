"""Issue 15, item 5: a database password never appears in any output. The real ``schemaheal``
processes are started with DSNs written in every malformed way a person could write them;
every log line, error message, reply and health endpoint is searched for the password."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from contracts import BootGateTimeout, request_schema
from tests.deploy.scrape import _get
from tests.kafka import KafkaServer
from worker.embedded.postgres import free_port

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "examples" / "nexus" / "manifest.json"
MARK = "Zq8Xj3Wv9K"  # in every fragment of every password below, however it is split
PASSWORD = f"{MARK}a=@,:/?{MARK}b"  # every character a DSN parser might split at
ENCODED = quote(PASSWORD, safe="")
DOWN = "127.0.0.1:1"  # nothing listens there: connection errors
URL = f"postgresql://u:{ENCODED}@{DOWN}/nexus"

NO_ALIAS = "is a DSN without its alias"
NOT_URL = "a DSN that is not a postgresql:// URL"
UNPARSED = "the DSN cannot be parsed"
UNREACHABLE = "database not reachable at start-up"
#: how the databases are given: (name, environment, flags, databases-file text, what the
#: worker must say: why it stops, or that it runs without the database)
WORKER_CASES = [
    ("no alias", {"SCHEMAHEAL_DATABASES": URL}, [], None, NO_ALIAS),
    ("no alias, ?sslmode", {"SCHEMAHEAL_DATABASES": URL + "?sslmode=require"}, [], None,
     NO_ALIAS),
    ("password in the query",
     {"SCHEMAHEAL_DATABASES": f"nexus=postgresql://app@{DOWN}/nexus?sslmode=disable&password={MARK}"},
     [], None, UNREACHABLE),
    ("raw password, not encoded", {}, ["--database", f"nexus=postgresql://app:{PASSWORD}@{DOWN}/n"],
     None, UNPARSED),
    ("libpq key=value", {"SCHEMAHEAL_DATABASES":
                         f"nexus=host=127.0.0.1 port=1 user=app password={MARK} dbname=nexus"},
     [], None, NOT_URL),
    ("libpq key=value, no alias",
     {"SCHEMAHEAL_DATABASES": f"host=127.0.0.1 password={MARK} dbname=nexus"}, [], None, NOT_URL),
    ("comma in an unencoded password, env list",
     {"SCHEMAHEAL_DATABASES": f"nexus=postgresql://app:{MARK},{MARK}@{DOWN}/n,b=postgresql://x@{DOWN}/b"},
     [], None, UNREACHABLE),
    ("unknown host", {}, ["--database", f"nexus=postgresql://app:{ENCODED}@no-such.invalid/n"],
     None, UNREACHABLE),
    ("port not a number", {}, ["--database", f"nexus=postgresql://app:{MARK}@127.0.0.1:{MARK}/n"],
     None, UNPARSED),
    ("broken URL", {}, ["--database", f"nexus=postgresql://app:{MARK}@[::1/n"], None, UNPARSED),
    ("a file: CRLF, blank lines, a line without alias, a comment", {}, [],
     f"# our databases\r\nnexus={URL}\r\n\r\n{URL}?sslmode=require\n", "line 4 of"),
    ("a file: one good line, one with a raw password", {}, [],
     f"nexus={URL}\nbilling=postgresql://app:{PASSWORD}@{DOWN}/billing\n", UNPARSED),
]  # fmt: skip

#: DSNs for ``plan --dsn`` and ``heal --dsn``
DSN_CASES = [
    URL,
    f"postgresql://app:{PASSWORD}@{DOWN}/nexus",
    f"postgresql://app@{DOWN}/nexus?password={MARK}&sslmode=disable",
    f"host=127.0.0.1 port=1 user=app password={MARK} dbname=nexus",
    f"postgresql://app:{MARK}@no-such.invalid/nexus",
    f"postgresql://app:{MARK}@127.0.0.1:{MARK}/nexus",
    f"postgresql://app:{MARK}@[::1/nexus",
    f"postgresql://app:{MARK}@{DOWN}/nexus?sslmode={MARK}",
]


def assert_no_secret(where: str, text: str) -> None:
    """Not even five characters of it (an error that showed a DSN's first 20 did that)."""
    pieces = {MARK[i : i + 5] for i in range(len(MARK) - 4)}
    shown = sorted(p for p in pieces if p in text)
    assert not shown, f"the password ({shown}) appears in {where}:\n{text[:3000]}"


async def run(*args: str, env: dict[str, str] | None = None) -> str:
    """A ``schemaheal`` command to its end: stdout and stderr together."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", *args, cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return out.decode(errors="replace")


@pytest.mark.parametrize("dsn", DSN_CASES)
@pytest.mark.parametrize("command", ["plan", "heal"])
async def test_plan_and_heal_never_show_the_password(command: str, dsn: str) -> None:
    out = await run(command, "--dsn", dsn, str(MANIFEST))
    assert_no_secret(f"{command} --dsn output", out)
    assert "Traceback" not in out, out  # a clear error, not a crash


async def _serve_briefly(kafka: KafkaServer, env: dict[str, str], flags: list[str]) -> list[str]:
    """Start the worker; while it runs, read its endpoints and send it a request. Returns
    every output: its log, the endpoints' bodies, the reply (when there is one)."""
    port, log = free_port(), Path(os.environ.get("TMPDIR", "/tmp")) / f"worker-{os.getpid()}.log"
    with log.open("wb") as sink:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "worker", "--bootstrap-servers",
            kafka.bootstrap_servers, "--session-timeout-ms", "6000", "--heartbeat-interval-ms",
            "1000", "--fetch-max-wait-ms", "50", "--health-host", "127.0.0.1", "--health-port",
            str(port), *flags, cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=sink,
        )  # fmt: skip
        outputs = []
        try:
            if await _listening(port, worker):
                for path in ("/livez", "/readyz", "/metrics", "/asyncapi", "/asyncapi.json"):
                    outputs.append(f"{path}: {(await asyncio.to_thread(_get, port, path))[1]}")
                try:
                    reply = await request_schema(MANIFEST.read_bytes(), timeout_s=15,
                                                 bootstrap_servers=kafka.bootstrap_servers)  # fmt: skip
                    outputs.append(reply.model_dump_json())
                except BootGateTimeout:
                    pass  # a database that cannot be reached: the batch is retried, unanswered
                outputs.append(f"/readyz: {(await asyncio.to_thread(_get, port, '/readyz'))[1]}")
        finally:
            if worker.returncode is None:
                worker.terminate()
            await asyncio.wait_for(worker.wait(), 60)
    return [log.read_text(errors="replace"), *outputs]


async def _listening(port: int, worker: asyncio.subprocess.Process) -> bool:
    """True once the health server answers; False when the worker stopped first."""
    for _ in range(600):
        if worker.returncode is not None:
            return False
        try:
            if (await asyncio.to_thread(_get, port, "/livez"))[0] == 200:
                return True
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the worker neither started nor stopped within a minute")


@pytest.mark.parametrize(("name", "env", "flags", "file", "says"), WORKER_CASES,
                         ids=[c[0] for c in WORKER_CASES])  # fmt: skip
async def test_the_worker_and_replay_never_show_the_password(
    kafka: KafkaServer, tmp_path: Path, name: str, env: dict[str, str], flags: list[str],
    file: str | None, says: str,
) -> None:  # fmt: skip
    if file is not None:
        (tmp_path / "databases").write_text(file)
        flags = [*flags, "--databases-file", str(tmp_path / "databases")]
    outputs = await _serve_briefly(kafka, env, flags)
    assert says in outputs[0], outputs[0][-3000:]
    assert (says == UNREACHABLE) == (len(outputs) > 1)  # ran, and its endpoints were read
    for i, output in enumerate(outputs):
        assert_no_secret(f"worker output {i}", output)
    out = await run("replay", "--bootstrap-servers", kafka.bootstrap_servers, "--since", "1h",
                    "--no-progress", *flags, env=env)  # fmt: skip
    assert_no_secret("replay output", out)
