"""The settings model: environment, flags and files; Kafka security that does not fit together
stops the command with a ConfigurationError that names the setting."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic_settings import BaseSettings

from worker.errors import ConfigurationError
from worker.settings import (
    HealSettings,
    KafkaSettings,
    ReplaySettings,
    WorkerSettings,
)
from worker.settings_flags import add_flags, settings_from

S = TypeVar("S", bound=BaseSettings)


def _parse(model: type[S], *argv: str) -> S:
    parser = argparse.ArgumentParser()
    add_flags(parser, model)
    return settings_from(parser.parse_args(list(argv)), model)


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMAHEAL_BOOTSTRAP_SERVERS", "from-env:9092")
    monkeypatch.setenv("SCHEMAHEAL_KAFKA_SSL_CHECK_HOSTNAME", "false")
    assert _parse(KafkaSettings).bootstrap_servers == "from-env:9092"
    settings = _parse(KafkaSettings, "--bootstrap-servers", "flag:9093",
                      "--kafka-ssl-check-hostname", "yes")  # fmt: skip
    assert settings.bootstrap_servers == "flag:9093"
    assert settings.kafka_ssl_check_hostname is True
    assert _parse(KafkaSettings).kafka_ssl_check_hostname is False


def test_the_sasl_password_comes_from_a_file_and_is_never_shown(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2\n")
    settings = _parse(WorkerSettings, "--kafka-security-protocol", "SASL_PLAINTEXT",
                      "--kafka-sasl-username", "worker",
                      "--kafka-sasl-password-file", str(secret))  # fmt: skip
    auth = settings.kafka_auth()
    assert auth.aiokafka_options()["sasl_plain_password"] == "hunter2"
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(auth)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--kafka-security-protocol", "SASL_SSL"], "needs a SASL username and password"),
        (["--kafka-sasl-username", "u", "--kafka-sasl-password", "p"], "choose SASL_SSL"),
        (["--kafka-security-protocol", "SASL_SSL", "--kafka-sasl-username", "u",
          "--kafka-sasl-password-file", "/nonexistent/password"], "kafka_sasl_password_file"),
    ],
)  # fmt: skip
def test_kafka_security_that_does_not_fit_is_a_configuration_error(
    argv: list[str], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        _parse(KafkaSettings, *argv).kafka_auth()


def test_an_unknown_protocol_is_refused_when_settings_are_read() -> None:
    with pytest.raises(ConfigurationError, match="kafka_security_protocol"):
        _parse(KafkaSettings, "--kafka-security-protocol", "TLS")


def test_databases_handed_from_one_settings_model_to_another_keep_their_dsns() -> None:
    """``schemaheal dev`` builds ReplaySettings from its WorkerSettings: a DSN must arrive as
    itself, not as the mask that ``str()`` of a secret prints."""
    worker = WorkerSettings(databases="nexus=postgresql://u@h:5432/nexus")
    replay = ReplaySettings(databases=worker.databases)
    assert replay.dsn("nexus") == "postgresql://u@h:5432/nexus"
    assert "postgresql" not in repr(replay)


def test_heal_settings_are_one_model_for_every_command_that_heals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``plan``/``heal``, the worker and ``replay --reapply`` read the same heal settings, from
    the same flags and environment variables, into the same HealOptions."""
    from worker.cli import build_parser

    monkeypatch.setenv("SCHEMAHEAL_LOCK_TIMEOUT_MS", "500")
    monkeypatch.setenv("SCHEMAHEAL_LEDGER_SCHEMA", "audit")
    args = build_parser().parse_args(
        ["heal", "--dsn", "postgresql://h/db", "m.json", "--rewrite-threshold-mb", "1"]
    )
    from_cli = settings_from(args, HealSettings).heal_options()
    from_worker = _parse(WorkerSettings, "--rewrite-threshold-mb", "1").heal_options()
    from_replay = _parse(ReplaySettings, "--rewrite-threshold-mb", "1").heal_options()
    assert from_cli == from_worker == from_replay
    assert from_cli.plan.lock_timeout_ms == 500 and from_cli.ledger_schema == "audit"
    assert from_cli.policy.rewrite_threshold_bytes == 1024 * 1024


def test_timeouts_that_do_not_fit_together_are_a_configuration_error() -> None:
    settings = HealSettings(lock_timeout_ms=5000, statement_timeout_ms=1000)
    with pytest.raises(ConfigurationError, match="timeouts: lock_timeout must be positive"):
        settings.heal_options()


def test_an_unknown_proxy_mode_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigurationError, match="database_proxy"):
        _parse(HealSettings, "--database-proxy", "transaction")


def test_a_bad_setting_names_its_flag_and_variable_and_never_echoes_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCHEMAHEAL_LOCK_TIMEOUT_MS", "hunter2")
    with pytest.raises(ConfigurationError) as caught:
        _parse(WorkerSettings, "--database", "nexus")
    message = str(caught.value)
    assert (
        "lock_timeout_ms (--lock-timeout-ms, SCHEMAHEAL_LOCK_TIMEOUT_MS): Input should be"
        in message
    )
    assert (
        "databases (--database, SCHEMAHEAL_DATABASES): the database item at --database number 1 "
        "is not ALIAS=postgresql://" in message
    )
    assert "hunter2" not in message and "\n" not in message


def test_the_backfill_s_wal_settings_reach_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = _parse(WorkerSettings).backfill_settings()
    assert (defaults.wal_compression, defaults.synchronous_commit) == (True, True)
    monkeypatch.setenv("SCHEMAHEAL_BACKFILL_SYNCHRONOUS_COMMIT", "false")
    runner = _parse(WorkerSettings, "--backfill-wal-compression", "false").backfill_settings()
    assert (runner.wal_compression, runner.synchronous_commit) == (False, False)
