"""Apache Kafka 4 in KRaft mode for the compatibility tier, from the jars Maven Central serves.

``mvn dependency:copy-dependencies`` fetches ``org.apache.kafka:kafka_2.13`` and its dependencies
once into ``~/.cache/schemaheal/kafka-<version>``; each broker then gets a fresh formatted log
directory and runs ``kafka.Kafka`` as one combined broker + controller on free local ports.

The suite starts ~80 of them, so starting is made cheap (CI time, not behaviour): the JVM runs
the client compiler only and maps Kafka's classes from a class-data archive (written by the first
broker that stops cleanly, cached per JDK build next to the jars), and a log directory is
formatted once per process and SCRAM user set, then copied, instead of one ``StorageTool`` JVM per
broker.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.cachelock import build_once
from tests.tls import make_server_tls
from worker.embedded.postgres import free_port
from worker.embedded.processes import stop_process, wait_listening

VERSION = "4.1.1"
CACHE = Path.home() / ".cache" / "schemaheal" / f"kafka-{VERSION}"
POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.schemaheal</groupId><artifactId>test-kafka</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{VERSION}</version></dependency>
  </dependencies>
</project>
"""


def available() -> bool:
    """A JDK and Maven are on this machine (the jars can then be fetched)."""
    return shutil.which("java") is not None and (CACHE.exists() or shutil.which("mvn") is not None)


def jars() -> Path:
    """The directory of Kafka's jars, fetched with Maven on first use."""
    target = CACHE / "jars"
    build_once(target, CACHE / ".complete", lambda: _fetch(target))
    return target


def _fetch(target: Path) -> None:
    (CACHE / "pom.xml").write_text(POM)
    subprocess.run(
        ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={target}"],
        cwd=CACHE, check=True, capture_output=True,
    )  # fmt: skip
    (CACHE / ".complete").touch()


# A test broker lives for seconds: the client compiler (C1) alone starts it faster than tiered
# compilation, and the serial collector keeps its threads few on the 2-core CI machines.
JVM = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


def class_archive() -> Path:
    """The class-data archive of Kafka's classes for this JDK build (it may not exist yet).

    A JVM refuses an archive of another build (it then warns and loads classes from the jars),
    but keying the file by the ``java`` binary keeps a JDK upgrade from losing the speed-up."""
    java = Path(shutil.which("java") or "java").resolve()
    stamp = java.stat().st_mtime_ns if java.exists() else 0
    key = hashlib.sha256(f"{java}:{stamp}".encode()).hexdigest()[:12]
    return CACHE / f"classes-{key}.jsa"


def _usable(archive: Path) -> bool:
    """The JVM maps ``archive`` for Kafka's classpath (a cut-short file would crash every
    broker that used it, so only a checked one is kept)."""
    if not archive.exists():
        return False
    check = ["java", f"-XX:SharedArchiveFile={archive}", "-Xshare:on", "-cp", f"{jars()}/*",
             "-version"]  # fmt: skip
    return subprocess.run(check, capture_output=True, check=False).returncode == 0


_FORMATTED: dict[tuple[str, ...], Path] = {}  # formatted log directories, by SCRAM arguments


def _forget_formatted() -> None:
    for template in _FORMATTED.values():
        shutil.rmtree(template, ignore_errors=True)


atexit.register(_forget_formatted)


def _cluster_id() -> str:
    """A random KRaft cluster id. Like Kafka's own, it never starts with "-": the storage
    tool would read such an id as an option (a 1-in-64 failure the CI run found)."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster.startswith("-"):
            return cluster


class ApacheKafka:
    """One KRaft node (broker + controller) on 127.0.0.1; ``stop()`` removes its data, unless
    it was given a ``log_dir`` of its own: then ``stop()`` keeps it and its configuration, and
    ``start()`` again brings the same broker back on the same ports with its topics, records and
    committed offsets (the fault tests stop the broker mid-stream). The caller removes it.

    With ``scram_users`` it also listens with SASL_SSL (SCRAM-SHA-512 and -256, TLS from a
    throwaway CA: ``tls.ca_pem``) on ``secure_port``; ``bootstrap_servers`` is then that
    listener, and the plaintext one stays for the broker itself."""

    def __init__(
        self, scram_users: dict[str, str] | None = None, *, log_dir: Path | None = None
    ) -> None:
        self.port = free_port()
        self.controller_port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="schemaheal-kafka-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.dumping: Path | None = None  # where this JVM writes the class-data archive
        self.scram_users = scram_users or {}
        self.secure_port = free_port() if self.scram_users else None
        self.tls = make_server_tls(self.root / "tls") if self.scram_users else None
        self.persistent = log_dir is not None
        self.log_dir = log_dir or self.root / "logs"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.secure_port or self.port}"

    @property
    def plaintext_bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _listeners(self) -> list[str]:
        plain = f"PLAINTEXT://127.0.0.1:{self.port}"
        controller = f"CONTROLLER://127.0.0.1:{self.controller_port}"
        if self.tls is None:
            return [
                f"listeners={plain},{controller}",
                f"advertised.listeners={plain}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        secure = f"SASL_SSL://127.0.0.1:{self.secure_port}"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return [
            f"listeners={plain},{secure},{controller}",
            f"advertised.listeners={plain},{secure}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,"
            "CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.tls.keystore}",
            f"ssl.keystore.password={self.tls.keystore_password}",
            f"ssl.key.password={self.tls.keystore_password}",
        ]

    def _config(self) -> Path:
        config = self.root / "server.properties"
        config.write_text(
            "\n".join([
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                *self._listeners(),
                "controller.listener.names=CONTROLLER",
                f"log.dirs={self.log_dir}",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=3",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=false",
            ])
            + "\n"
        )  # fmt: skip
        return config

    def start(self, timeout_s: float = 90.0) -> ApacheKafka:
        classpath = f"{jars()}/*"
        config = self._config()
        archive = class_archive()
        java = ["java", *JVM, "-cp", classpath]
        if archive.exists():
            java.insert(1, f"-XX:SharedArchiveFile={archive}")
        if not (self.log_dir / "meta.properties").exists():  # formatted once: a restart keeps it
            self._format(java, config)
        dump = []
        if not archive.exists():  # this broker writes the archive when it stops (see stop())
            self.dumping = archive.with_name(f"{archive.name}.{os.getpid()}.{uuid.uuid4().hex}")
            dump = [f"-XX:ArchiveClassesAtExit={self.dumping}"]
        with (self.root / "server.log").open("ab") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [*java[:1], *dump, *java[1:], "kafka.Kafka", str(config)], stdout=log, stderr=log
            )
        log = self.root / "server.log"
        for port in (self.port, self.secure_port):
            if port is not None:
                wait_listening(self.process, port, timeout_s, lambda: log.read_text()[-3000:])
        return self

    def _format(self, java: list[str], config: Path) -> None:
        """Format the log directory: the first time per SCRAM user set with ``StorageTool``,
        then by copying that result (a fresh cluster id per broker is not needed: no two of
        these brokers ever form a cluster)."""
        scram = [
            arg
            for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256")
            for user, password in self.scram_users.items()
            for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
        ]
        key = tuple(scram)
        template = _FORMATTED.get(key)
        if template is not None:
            shutil.copytree(template, self.log_dir, dirs_exist_ok=True)
            return
        subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                        "-c", str(config), *scram], check=True, capture_output=True)  # fmt: skip
        template = Path(tempfile.mkdtemp(prefix="schemaheal-kafka-formatted-"))
        shutil.copytree(self.log_dir, template, dirs_exist_ok=True)
        _FORMATTED[key] = template

    def _stop_process(self) -> None:
        """Stop the JVM; a clean exit of the one that dumps leaves the class-data archive."""
        process, self.process = self.process, None
        stop_process(process, grace_s=20)
        dumping, self.dumping = self.dumping, None
        if dumping is None:
            return
        if process is not None and process.returncode != -9 and _usable(dumping):
            os.replace(dumping, class_archive())
        else:
            dumping.unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop_process()
        if not self.persistent:
            self.remove()

    def remove(self) -> None:
        """Stop it and remove what it wrote (but a ``log_dir`` of the caller's)."""
        self._stop_process()
        shutil.rmtree(self.root, ignore_errors=True)
