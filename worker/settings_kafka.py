"""How to reach Kafka (TLS, SASL) and say why it cannot be reached: the part of the settings
(:mod:`worker.settings`) shared by the worker, ``await-schema`` and ``replay``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.kafka_auth import KafkaAuth, SaslMechanism, SecurityProtocol, connection_problem
from worker.errors import ConfigurationError, KafkaUnavailable


class KafkaSettings(BaseSettings):
    """How to reach Kafka: shared by the worker, ``await-schema`` and ``replay``."""

    model_config = SettingsConfigDict(env_prefix="SCHEMAHEAL_", extra="ignore")

    bootstrap_servers: str = Field("localhost:9092", description="Kafka bootstrap servers")
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        "SCRAM-SHA-512", description="SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret)")
    kafka_sasl_password_file: Path | None = Field(
        None, description="a file holding the SASL password"
    )
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) to verify brokers")
    kafka_ssl_certfile: Path | None = Field(None, description="client certificate (PEM), mTLS")
    kafka_ssl_keyfile: Path | None = Field(None, description="client private key (PEM), mTLS")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="password of the client key (secret)"
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="check that broker certificates name the host"
    )

    def kafka_auth(self) -> KafkaAuth:
        """The TLS and SASL settings as the value the clients take; ConfigurationError when
        they do not fit together."""
        password = self.kafka_sasl_password
        if password is None and self.kafka_sasl_password_file is not None:
            try:
                password = SecretStr(self.kafka_sasl_password_file.read_text().strip())
            except OSError as exc:
                raise ConfigurationError(
                    f"kafka_sasl_password_file: {exc.strerror}: {self.kafka_sasl_password_file}"
                ) from None
        try:
            return KafkaAuth(
                security_protocol=self.kafka_security_protocol,
                sasl_mechanism=self.kafka_sasl_mechanism,
                username=self.kafka_sasl_username,
                password=password,
                ssl_cafile=self.kafka_ssl_cafile,
                ssl_certfile=self.kafka_ssl_certfile,
                ssl_keyfile=self.kafka_ssl_keyfile,
                ssl_key_password=self.kafka_ssl_key_password,
                ssl_check_hostname=self.kafka_ssl_check_hostname,
            )
        except ValueError as exc:
            raise ConfigurationError(f"Kafka security: {_first_error(exc)}") from None

    async def start_client(self, client: Any) -> None:
        """Start an aiokafka client (consumer, producer or admin); when it cannot, close it and
        raise KafkaUnavailable saying why (aiokafka itself only logs the cause)."""
        try:
            await client.start()
        except KafkaError:
            await (client.close() if hasattr(client, "close") else client.stop())
            options = self.kafka_auth().aiokafka_options()
            raise self.unavailable(
                await connection_problem(self.bootstrap_servers, options)
            ) from None

    def unavailable(self, why: str) -> KafkaUnavailable:
        """The error that says why Kafka cannot be used (``why``), and what to check."""
        if "SaslAuthenticationFailed" in why or "Authentication failed" in why:
            hint = (
                "the broker refused the SASL credentials: check kafka_sasl_username, "
                "kafka_sasl_password and kafka_sasl_mechanism"
            )
        elif "SSL" in why or "certificate" in why.lower():
            hint = "TLS failed: check kafka_ssl_cafile and the host the broker's certificate names"
        else:
            hint = (
                "check bootstrap_servers and kafka_security_protocol "
                f"({self.kafka_security_protocol} now)"
            )
        return KafkaUnavailable(f"cannot use Kafka at {self.bootstrap_servers}: {hint} ({why})")


def _first_error(exc: ValueError) -> str:
    return error_message(exc.errors()[0]) if isinstance(exc, ValidationError) else str(exc)


def error_message(error: Any) -> str:
    """One pydantic error's message, without the "Value error, " our validators get."""
    return str(error["msg"]).removeprefix("Value error, ")
