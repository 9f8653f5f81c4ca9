"""One settings model behind every command (pydantic-settings).

Each setting is read from a flag or from an environment variable ``SCHEMAHEAL_<NAME>``; flags win.
Secrets (database DSNs, Kafka passwords) may also come from files: ``SCHEMAHEAL_DATABASES_FILE``.
DSNs are kept as secrets and never logged. The flags themselves: :mod:`worker.settings_flags`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.engine.apply import RetryPolicy
from worker.engine.backfill import BackfillSettings
from worker.engine.contract import ContractSettings
from worker.engine.heal import HealOptions
from worker.engine.plan import PlanSettings
from worker.engine.policy import Policy
from worker.engine.pooler import ProxyMode
from worker.errors import ConfigurationError
from worker.secrets import parse_item, split_items
from worker.settings_kafka import KafkaSettings


def parse_databases(value: Any, where: str = "SCHEMAHEAL_DATABASES") -> dict[str, SecretStr]:
    """``ALIAS=postgresql://…`` items (lines, or comma separated, or a list, or a dict) → alias
    → DSN. An item that is not one says where it is, never what it is (it may hold a password)."""
    if isinstance(value, dict):  # a SecretStr stays itself: str() of one is its mask
        return {
            str(k): v if isinstance(v, SecretStr) else SecretStr(str(v)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        items = [(f"--database number {n}", str(v)) for n, v in enumerate(value, 1)]
    else:
        items = split_items(str(value), where)
    out: dict[str, SecretStr] = {}
    for position, item in items:
        parsed = parse_item(item, position)
        out[parsed.alias] = SecretStr(parsed.dsn)
    return out


class HealSettings(BaseSettings):
    """How a heal runs, wherever it runs: ``plan``/``heal``, the worker and ``replay --reapply``
    (one place, so the three can never disagree on a timeout or on what needs approval)."""

    model_config = SettingsConfigDict(env_prefix="SCHEMAHEAL_", extra="ignore")

    lock_timeout_ms: int = Field(
        2_000, gt=0, description="longest wait of one statement for a table lock"
    )
    statement_timeout_ms: int = Field(60_000, gt=0, description="limit of a metadata statement")
    long_statement_timeout_ms: int = Field(
        3_600_000, gt=0, description="limit of index builds, validations and rewrites"
    )
    rewrite_threshold_mb: float = Field(
        32.0, ge=0, description="table rewrites on bigger tables need approval"
    )
    lock_wait_s: float = Field(
        60.0, gt=0, description="longest wait for another heal of the same schemas"
    )
    retry_budget_s: float = Field(
        60.0, ge=0, description="time to keep retrying lock timeouts in one heal"
    )
    ledger_schema: str = Field("schemaheal", description="schema of the audit ledger")
    database_proxy: ProxyMode = Field(
        "refuse",
        description="a pooling proxy in front of a database: refuse, or session (it pools by "
        "session, so advisory locks hold)",
    )
    lease_ttl_s: float = Field(
        3600.0, gt=0, description="how long a booted instance counts as running without a "
        "heartbeat (contract waits while a running instance uses a migration's old shape)",
    )  # fmt: skip
    contract_grace_s: float = Field(
        600.0, ge=0, description="how long after the last instance using a migration's old shape "
        "ended contract still waits",
    )  # fmt: skip

    def plan_settings(self) -> PlanSettings:
        """The statements' timeouts; ConfigurationError when they do not fit together."""
        try:
            return PlanSettings(
                lock_timeout_ms=self.lock_timeout_ms,
                statement_timeout_ms=self.statement_timeout_ms,
                long_statement_timeout_ms=self.long_statement_timeout_ms,
            )
        except ValueError as exc:
            raise ConfigurationError(f"timeouts: {exc}") from None

    def heal_options(self) -> HealOptions:
        """Everything :func:`worker.engine.heal.heal` takes from configuration."""
        return HealOptions(
            plan=self.plan_settings(),
            policy=Policy(rewrite_threshold_bytes=int(self.rewrite_threshold_mb * 1024 * 1024)),
            retry=RetryPolicy(budget_s=self.retry_budget_s),
            lock_wait_s=self.lock_wait_s,
            ledger_schema=self.ledger_schema,
            # what replies and replay say about contract is judged with the worker's settings
            contract=ContractSettings(grace_s=self.contract_grace_s, lease_ttl_s=self.lease_ttl_s),
        )


class GateSettings(HealSettings, KafkaSettings):
    """The topics, databases and heals of the boot gate: shared by the worker and ``replay``."""

    databases: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict, description="database aliases: ALIAS=DSN, comma separated"
    )
    databases_file: Path | None = Field(None, description="a file of ALIAS=DSN lines")
    request_topic: str = Field("service.starting", description="topic of service.starting requests")
    reply_topic: str = Field("schema.healed", description="topic of schema.healed replies")
    dead_letter_topic: str = Field(
        "service.starting.dlq", description="where records that cannot be served are copied"
    )

    @field_validator("databases", mode="before")
    @classmethod
    def _databases(cls, value: Any) -> dict[str, SecretStr]:
        return parse_databases(value)

    @model_validator(mode="after")
    def _load_file(self) -> Self:
        if self.databases_file is not None:
            text = self.databases_file.read_text()
            self.databases = {**parse_databases(text, str(self.databases_file)), **self.databases}
        return self

    def dsn(self, alias: str) -> str:
        """The DSN of ``alias``; ConfigurationError when it is not configured."""
        secret = self.databases.get(alias)
        if secret is None:
            raise ConfigurationError(f"unknown database alias {alias!r}")
        return secret.get_secret_value()


class ReplaySettings(GateSettings):
    """``schemaheal replay``: the gate's topics and databases, read without disturbing them."""

    replay_group_id: str = Field(
        "schemaheal-replay", description="replay's own consumer group (never commits offsets)"
    )
    replay_reply_grace_s: float = Field(
        900.0,
        ge=0,
        description="how long after --until replies are still looked for (requests are read "
        "this long around the window too, to match replies and ledger rows)",
    )
    replay_fetch_max_wait_ms: int = Field(100, ge=1, description="longest wait of one fetch")
    replay_trust_offsets: bool = Field(
        False,
        description="the broker's offsets are in order, as on Apache Kafka (its lookup by time "
        "is exact and it never serves past an unwritten offset): start each partition at the "
        "window instead of offset 0. Leave off for Tansu and for brokers you have not checked",
    )
    replay_gap_wait_s: float = Field(
        30.0,
        gt=0,
        description="how long offsets may stay unreadable before replay reports "
        "them as an unreadable-record mismatch and reads on",
    )
    replay_settle_s: float = Field(
        6.0,
        ge=0,
        description="without --replay-trust-offsets: how long the broker's end offset may lag "
        "behind the records it acknowledged (Tansu caches it for 5 s after concurrent writes); a "
        "replay whose window ended less than this long ago reads at least this long",
    )


class WorkerSettings(GateSettings):
    """Everything the worker and ``dev`` can be configured with."""

    group_id: str = Field("schemaheal", description="the worker's consumer group")
    topic_partitions: int = Field(6, ge=1, description="partitions of topics the worker creates")
    topic_replication: int = Field(1, ge=1, description="replication factor of those topics")
    topic_retention_days: float = Field(
        365.0, gt=0, description="time-based retention of topics the worker creates (audits)"
    )
    max_request_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="larger request records are rejected"
    )
    batch_max_records: int = Field(500, ge=1, description="requests taken per poll (coalesced)")
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        description="longest wait of one fetch (and batch); on `service.heartbeat` at least 100 ms",
    )
    session_timeout_ms: int = Field(10_000, ge=1000, description="consumer group session timeout")
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="consumer group heartbeat")
    max_heal_s: float = Field(900.0, gt=0, description="the longest heal; sizes poll interval")
    retry_attempts: int = Field(3, ge=1, description="in-process tries before redelivery")
    access_policy: Path | None = Field(
        None, description="JSON file: which services may heal which databases and schemas"
    )
    health_port: int = Field(
        8080, ge=0, le=65535, description="port of /livez, /readyz, /metrics, /asyncapi (0: off)"
    )
    health_host: str = Field(
        "0.0.0.0",  # a container's probes and scrapes come from outside the pod
        min_length=1,
        description="address the health port binds (0.0.0.0: every interface, as a container "
        "needs; 127.0.0.1: this host only; :: for IPv6)",
    )

    allowed_reply_topics: Annotated[frozenset[str], NoDecode] = Field(
        default_factory=frozenset,
        description="topics a request may name for its reply (reply_to, kafka_replyTopic), "
        "comma separated; the reply topic always may",
    )

    @field_validator("allowed_reply_topics", mode="before")
    @classmethod
    def _topics(cls, value: Any) -> frozenset[str]:
        items = value if isinstance(value, (list, tuple, set, frozenset)) else str(value).split(",")
        return frozenset(t for t in (str(i).strip() for i in items) if t)

    offset_guard: bool = Field(
        False,
        description="serve a partition's requests only in unbroken offset order, fetching again "
        "from a hole until it is written: needed on Tansu (schemaheal dev turns it on), whose "
        "fetches can skip a batch written late; Apache Kafka never does",
    )
    offset_gap_wait_s: float = Field(
        30.0,
        gt=0,
        description="with offset_guard: how long a hole may stay unwritten before the "
        "worker logs it as lost and serves on",
    )
    backfill: bool = Field(
        True,
        description="run the backfills of online column migrations (expand/contract) in the "
        "background; one per table across all workers",
    )
    backfill_batch_rows: int = Field(1000, ge=1, description="rows of a backfill's first batch")
    backfill_batch_target_ms: float = Field(
        50.0, ge=0, description="backfill batches are resized toward this duration, 100 to "
        "20,000 rows (what a writer of a row a batch holds may wait); 0: every batch "
        "backfill_batch_rows rows",
    )  # fmt: skip
    backfill_duty: float = Field(
        1.0, gt=0, le=1, description="the share of the time a backfill spends in batches: each "
        "batch is followed by a rest in proportion to its duration (0.5: as long as it took), "
        "which leaves the writers' commits the disk; 1: no rest",
    )  # fmt: skip
    backfill_wal_compression: bool = Field(
        True, description="compress the page images in the WAL of backfill batches (SET "
        "wal_compression = on for their session) when the server does not: about 10% less WAL; "
        "needs a superuser or GRANT SET ON PARAMETER wal_compression, else skipped (logged once)",
    )  # fmt: skip
    backfill_synchronous_commit: bool = Field(
        True, description="backfill batches wait for their WAL to reach the disk at commit; "
        "false: they do not (a crash of PostgreSQL may lose the last batches, which are then "
        "done again: the progress record commits with its batch)",
    )  # fmt: skip
    backfill_pause_s: float = Field(
        0.0, ge=0, description="pause between backfill batches: the throttle that leaves room to "
        "writers",
    )  # fmt: skip
    backfill_lock_timeout_ms: int = Field(
        1000, ge=1, description="how long a backfill batch waits for a row or table lock before "
        "it is rolled back and retried (writers of the rows it already holds wait meanwhile)",
    )  # fmt: skip
    backfill_poll_s: float = Field(
        30.0, gt=0, description="how often the worker looks for migrations to backfill besides "
        "being woken when a heal registers one",
    )  # fmt: skip
    heartbeat_topic: str = Field(
        "service.heartbeat", description="topic of service.heartbeat and service.stopped events"
    )

    def contract_settings(self) -> ContractSettings:
        return ContractSettings(
            grace_s=self.contract_grace_s,
            lease_ttl_s=self.lease_ttl_s,
            lock_timeout_ms=self.backfill_lock_timeout_ms,
            statement_timeout_ms=max(self.statement_timeout_ms, self.backfill_lock_timeout_ms + 1),
            store_schema=self.ledger_schema,
        )

    def backfill_settings(self) -> BackfillSettings:
        return BackfillSettings(
            batch_rows=self.backfill_batch_rows,
            batch_target_ms=self.backfill_batch_target_ms,
            duty=self.backfill_duty,
            wal_compression=self.backfill_wal_compression,
            synchronous_commit=self.backfill_synchronous_commit,
            pause_s=self.backfill_pause_s,
            lock_timeout_ms=self.backfill_lock_timeout_ms,
            statement_timeout_ms=max(self.statement_timeout_ms, self.backfill_lock_timeout_ms + 1),
            long_statement_timeout_ms=self.long_statement_timeout_ms,
            store_schema=self.ledger_schema,  # the migrations table lives with the ledger
        )

    @property
    def max_poll_interval_ms(self) -> int:
        """Long enough for a batch's longest heal, so a slow heal never leaves the group."""
        return int((self.max_heal_s + self.lock_wait_s + 60) * 1000)
