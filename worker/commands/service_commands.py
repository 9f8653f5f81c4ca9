"""``schemaheal worker`` and ``schemaheal await-schema``."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from opentelemetry import metrics

import contracts
from contracts.client import request_schema
from contracts.signing import load_private_key
from worker.commands import output
from worker.commands.engine_commands import read_manifest
from worker.errors import ConfigurationError
from worker.observability.logs import configure_logging
from worker.observability.metrics import meter_provider
from worker.observability.tracing import (
    configure_tracing,
    environment_trace_headers,
    tracing_configured,
)
from worker.settings import WorkerSettings
from worker.settings_kafka import KafkaSettings


async def worker_command(settings: WorkerSettings) -> int:
    """Run the worker until SIGINT/SIGTERM; in-flight heals finish first."""
    from worker.service.app import build_app

    if not settings.databases:
        raise ConfigurationError(
            "no databases: give --database ALIAS=DSN (or SCHEMAHEAL_DATABASES)"
        )
    configure_logging(json_lines=True)
    configure_tracing()
    metrics.set_meter_provider(meter_provider())
    app, _ = build_app(settings)
    await app.run(log_level=logging.INFO)
    return 0


def _signing_key(path: str) -> Ed25519PrivateKey:
    try:
        return load_private_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"--signing-key {path}: {exc}") from None


async def await_schema_command(
    *,
    kafka: KafkaSettings,
    manifest_path: str,
    service: str | None,
    database: str | None,
    instance: str | None,
    timeout_s: float,
    fmt: str,
    signing_key: str | None = None,
    key_id: str | None = None,
) -> int:
    """For init containers and scripts: exit 0 only when the service may start."""
    manifest = read_manifest(manifest_path)
    key = _signing_key(signing_key) if signing_key is not None else None
    for flag, given, declared in (
        ("--service", service, manifest.service),
        ("--database", database, manifest.database),
    ):
        if given is not None and given != declared:
            raise ConfigurationError(f"{flag} {given!r} differs from the manifest's {declared!r}")
    try:
        with tracing_configured(default_service=manifest.service):  # the booting service's
            reply = await request_schema(
                manifest,
                bootstrap_servers=kafka.bootstrap_servers,
                kafka_auth=kafka.kafka_auth(),
                instance=instance,
                timeout_s=timeout_s,
                trace_headers=environment_trace_headers(),  # joins the pod's deploy trace
                signing_key=key,
                key_id=key_id,
            )
    except (contracts.BootGateTimeout, contracts.BrokerUnavailable) as exc:
        output.stderr.print(f"[red]not ready:[/] {exc}")
        return 1
    if fmt == "json":
        output.print_json(reply.model_dump(mode="json"))
    else:
        colour = "green" if reply.may_start else "red"
        error = f" — {reply.error.message}" if reply.error else ""
        output.stderr.print(
            f"[{colour}]{reply.outcome}[/] {reply.service}@{reply.database}: "
            f"{len(reply.statements)} statement(s), {len(reply.drift)} drift{error}"
        )
    return 0 if reply.may_start else 1
