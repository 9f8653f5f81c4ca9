"""Who may change which database: the worker's access policy. Pure, apart from reading the file.

A JSON file (``--access-policy FILE``), re-read when it changes, so rules can be edited without
a restart::

    {"services": {
        "orchestrator": {"databases": {"nexus": {"schemas": ["public"],
                                                 "hazards": ["table-rewrite"]}}},
        "billing":      {"databases": {"billing": {"schemas": ["billing"]}}}}}

A service with ``"keys": {"key-id": "<base64 Ed25519 public key>", …}`` must sign every request
(see :mod:`contracts.signing`); several keys allow rotation. A request is served only when its
service is listed, its database alias is listed for that
service, and every schema its manifest owns is listed for that alias. Anything else is
``rejected`` with the reason, and the database is not touched. ``hazards`` are approved for that
service on that database — the way a service gets a table rewrite on a large table without a
person running ``heal --allow-hazard``. Without a policy file every request is served (the
README says why that is only for development).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.signing import load_public_key, verify
from worker.engine.hazards import Hazard
from worker.errors import ConfigurationError

log = logging.getLogger("schemaheal.access")


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    schemas: frozenset[str]
    hazards: frozenset[Hazard] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessPolicy:
    """service → database alias → what it may touch. ``None`` grants mean "no policy"."""

    grants: dict[str, dict[str, Grant]] | None = None
    #: service → key id → Ed25519 public key; a service listed here must sign its requests
    keys: dict[str, dict[str, Ed25519PublicKey]] = field(default_factory=dict)

    def check_signature(self, service: str, headers: dict[str, str], request_id: str,
                        value: bytes) -> str | None:  # fmt: skip
        """None when the service needs no signature or the request is correctly signed."""
        keys = self.keys.get(service)
        if not keys:
            return None
        return verify(keys, headers, request_id, value)

    def requires_signature(self, service: str) -> bool:
        return bool(self.keys.get(service))

    def decide(self, service: str, alias: str, schemas: frozenset[str]) -> Grant | str:
        """The grant that allows this request, or the reason it is refused."""
        if self.grants is None:
            return Grant(schemas=schemas)
        databases = self.grants.get(service)
        if databases is None:
            return f"service {service!r} is not in the worker's access policy"
        grant = databases.get(alias)
        if grant is None:
            return f"service {service!r} may not change database {alias!r}"
        outside = sorted(schemas - grant.schemas)
        if outside:
            return f"service {service!r} may not change schema(s) {', '.join(outside)} of {alias!r}"
        return grant


def parse_policy(data: Any) -> AccessPolicy:
    """Check and load a policy document; ConfigurationError says what is wrong and where."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise ConfigurationError('access policy: expected {"services": {NAME: {...}}}')
    grants: dict[str, dict[str, Grant]] = {}
    keys: dict[str, dict[str, Ed25519PublicKey]] = {}
    for service, rules in data["services"].items():
        if isinstance(rules, dict) and rules.get("keys"):
            try:
                keys[service] = {k: load_public_key(v) for k, v in rules["keys"].items()}
            except (ValueError, TypeError, AttributeError) as exc:
                raise ConfigurationError(
                    f"access policy: services.{service}.keys: base64 Ed25519 public keys ({exc})"
                ) from None
        databases = rules.get("databases") if isinstance(rules, dict) else None
        if not isinstance(databases, dict):
            raise ConfigurationError(
                f"access policy: services.{service}.databases must be an object"
            )
        grants[service] = {}
        for alias, grant in databases.items():
            where = f"services.{service}.databases.{alias}"
            schemas = grant.get("schemas") if isinstance(grant, dict) else None
            if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
                raise ConfigurationError(f"access policy: {where}.schemas must be a list of names")
            try:
                hazards = frozenset(Hazard(h) for h in grant.get("hazards", []))
            except ValueError as exc:
                known = ", ".join(h.value for h in Hazard)
                raise ConfigurationError(
                    f"access policy: {where}.hazards: {exc}; known: {known}"
                ) from None
            grants[service][alias] = Grant(schemas=frozenset(schemas), hazards=hazards)
    return AccessPolicy(grants=grants, keys=keys)


@dataclass(slots=True)
class PolicyFile:
    """The policy from a file, re-read whenever the file changes (no restart needed)."""

    path: Path | None
    _mtime: float = -1.0
    _policy: AccessPolicy = field(default_factory=AccessPolicy)

    def current(self) -> AccessPolicy:
        """The policy now. A file that became unreadable or invalid keeps the last good policy
        in force (and says so in the log); at start-up there is none, so the worker stops."""
        if self.path is None:
            return self._policy
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._policy = parse_policy(json.loads(self.path.read_text()))
                self._mtime = mtime
        except (OSError, json.JSONDecodeError, ConfigurationError) as exc:
            if self._mtime < 0:
                raise ConfigurationError(f"access policy {self.path}: {exc}") from None
            log.error("access policy %s is invalid; keeping the previous one: %s", self.path, exc)
        return self._policy
