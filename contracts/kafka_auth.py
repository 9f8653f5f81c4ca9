"""How to reach a secured Kafka: TLS and SASL (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN).

One value shared by the boot client, the worker and ``replay``::

    auth = KafkaAuth(security_protocol="SASL_SSL", username="svc", password="…",
                     ssl_cafile="/etc/kafka/ca.pem")
    await ensure_schema(manifest, bootstrap_servers="kafka:9093", kafka_auth=auth)

``aiokafka_options()`` gives the keyword arguments every aiokafka client takes. The password is a
:class:`~pydantic.SecretStr`: it never appears in a repr, a log line or an error.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

__all__ = ["KafkaAuth", "SaslMechanism", "SecurityProtocol"]

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaAuth(BaseModel):
    """Kafka transport security and authentication (the default: plaintext, anonymous)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> KafkaAuth:
        if self.uses_sasl and not (self.username and self.password):
            raise ValueError(
                f"{self.security_protocol} needs a SASL username and password "
                "(or choose PLAINTEXT or SSL)"
            )
        if not self.uses_sasl and (self.username or self.password):
            raise ValueError(
                f"a SASL username or password was given but the security protocol is "
                f"{self.security_protocol}: choose SASL_SSL (or SASL_PLAINTEXT)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("a client certificate needs both its certificate and key file")
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(
                f"TLS files were given but the security protocol is {self.security_protocol}: "
                "choose SSL or SASL_SSL"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {path} is not a readable file")
        return self

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context (the system's CAs unless ``ssl_cafile``), or None."""
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            key_password = self.ssl_key_password
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile),
                password=key_password.get_secret_value() if key_password else None,
            )
        return context

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl and self.password is not None:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password.get_secret_value(),
            }
        return options


async def connection_problem(bootstrap_servers: str, options: dict[str, Any]) -> str:
    """Why no bootstrap server can be used: aiokafka only logs the cause (refused credentials,
    an untrusted certificate) and raises "Unable to bootstrap". One connection attempt per
    server tells the user which it is."""
    from aiokafka.conn import create_conn  # imported late: only on this error path

    keys = ("ssl_context", "security_protocol", "sasl_mechanism", "sasl_plain_username",
            "sasl_plain_password")  # fmt: skip
    problems: list[str] = []
    for server in (s.strip() for s in bootstrap_servers.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            conn = await create_conn(
                host or server, int(port or 9092), request_timeout_ms=10_000,
                **{k: v for k, v in options.items() if k in keys},
            )  # fmt: skip
        except Exception as exc:
            problems.append(f"{server}: {type(exc).__name__}: {exc}")
        else:
            conn.close()
            problems.append(f"{server}: connects, but the cluster metadata could not be read")
    return "; ".join(problems) or f"no bootstrap servers in {bootstrap_servers!r}"
