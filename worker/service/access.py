"""Who may change which database: the worker's access policy. Pure, apart from reading the file.

A JSON file (``--access-policy FILE``), re-read when it changes, so rules can be edited without
a restart::

    {"services": {
        "orchestrator": {"databases": {"nexus": {"schemas": ["public"],
                                                 "hazards": ["table-rewrite"]}}},
        "billing":      {"databases": {"billing": {"schemas": ["billing"]}}}}}

A service with ``"keys": {"key-id": "<base64 Ed25519 public key>", …}`` must sign every request
(see :mod:`contracts.signing`); several keys allow rotation. Its signatures must be of a version
in ``"signature_versions"`` (default ``[2]``; ``[1, 2]`` accepts the retired version 1 while its
clients are upgraded), and its requests' ``ce_source`` must name it (``/services/NAME/…``).
A request is served only when its service is listed, its database alias is listed for that
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

from contracts.events import first_values, source_service
from contracts.signing import VERSION, VERSION_HEADER, RawHeaders, load_public_key, verify
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
    #: service → the signature versions accepted from it (default: the current one only)
    versions: dict[str, frozenset[int]] = field(default_factory=dict)

    def check_signature(
        self, service: str, headers: RawHeaders, key: bytes | None, value: bytes
    ) -> str | None:
        """None when the service needs no signature or the record is correctly signed."""
        keys = self.keys.get(service)
        if not keys:
            return None
        headers = list(headers)
        versions = self.versions.get(service, frozenset({VERSION}))
        refused = verify(keys, headers, key, value, versions=versions)
        if refused is None and VERSION_HEADER not in first_values(headers):
            log.warning("accepted a version 1 signature: upgrade the service's boot client",
                        extra={"service": service})  # fmt: skip
        return refused

    def check_source(self, service: str, source: str | None) -> str | None:
        """None when ``service`` need not sign or its request's ``ce_source`` names it."""
        if not self.keys.get(service) or source_service(source) == service:
            return None
        shown = (source or "")[:200]
        return (f"the request's ce_source {shown!r} does not name its body's service {service!r}:"
                f" a signed request's ce_source must be /services/{service}/INSTANCE")  # fmt: skip

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
    versions: dict[str, frozenset[int]] = {}
    for service, rules in data["services"].items():
        if isinstance(rules, dict) and "signature_versions" in rules:
            versions[service] = _versions(service, rules["signature_versions"])
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
    return AccessPolicy(grants=grants, keys=keys, versions=versions)


def _versions(service: str, given: Any) -> frozenset[int]:
    """The signature versions a service's rules accept: a non-empty list of 1 and 2."""
    if (
        not isinstance(given, list)
        or not given
        or any(v not in (1, 2) or type(v) is not int for v in given)
    ):
        raise ConfigurationError(
            f"access policy: services.{service}.signature_versions must be a non-empty list "
            f"of 1 and {VERSION} (1 only while that service's clients are upgraded)"
        )
    return frozenset(given)


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
