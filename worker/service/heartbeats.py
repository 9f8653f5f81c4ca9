"""Serve one poll's batch of ``service.heartbeat`` records: renew or end instances' leases.

A record is checked like a request (CloudEvent of type ``service.heartbeat`` or
``service.stopped``, JSON body :class:`~contracts.events.ServiceHeartbeat`, a configured alias,
the access policy's signature, source and database rules); a bad one is dead-lettered with the
reason, never taken for a live instance, and never stops the batch. A heartbeat renews the
instance's lease for ``lease_ttl_s``; ``service.stopped`` ends it. A heartbeat of an instance
with no running lease (it never booted through the gate, or it stopped) changes nothing and is
logged: only a boot makes a lease. There is no reply.

``handle`` returns False when a database could not be reached: the batch comes back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.events import HEARTBEAT_TYPE, STOPPED_TYPE, ServiceHeartbeat
from worker.engine import lease_store
from worker.engine.connection import DATABASE_ERRORS
from worker.errors import SchemahealError
from worker.service.access import PolicyFile
from worker.service.databases import open_checked
from worker.service.requests import Rejection, invalid_body, parse_envelope, unknown_alias
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.heartbeats")
TYPES = frozenset({HEARTBEAT_TYPE, STOPPED_TYPE})
MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Beat:
    body: ServiceHeartbeat
    stopped: bool


def parse_beat(record: Any, *, aliases: frozenset[str], access: PolicyFile) -> Beat | Rejection:
    """One record as a heartbeat the policy allows, or the rejection that says why."""
    envelope = parse_envelope(record, max_bytes=MAX_BYTES, types=TYPES)
    if isinstance(envelope, Rejection):
        return envelope

    def reject(code: str, message: str) -> Rejection:
        return Rejection(code=code, message=message, record=record, headers=envelope.headers,
                         request_id=envelope.request_id, body=envelope.raw)  # fmt: skip

    try:
        body = ServiceHeartbeat.model_validate(envelope.raw)
    except ValidationError as exc:
        return reject("invalid-request", invalid_body(exc))
    if body.database not in aliases:
        return reject("unknown-database", unknown_alias(body.database))
    policy = access.current()
    refused = policy.check_signature(body.service, record.headers or (), record.key,
                                     record.value or b"")  # fmt: skip
    if refused is not None:
        return reject("bad-signature", refused)
    refused = policy.check_source(body.service, envelope.headers.get("ce_source"))
    decision = policy.decide(body.service, body.database, frozenset())
    if refused is None and isinstance(decision, str):
        refused = decision
    if refused is not None:
        return reject("not-allowed", refused)
    return Beat(body=body, stopped=envelope.event_type == STOPPED_TYPE)


class Heartbeats:
    def __init__(self, settings: WorkerSettings, dead_letter: Any) -> None:
        self.settings = settings
        self.dead_letter = dead_letter  # async (Rejection) -> None, the gate's sink
        self.access = PolicyFile(settings.access_policy)
        self._connections: dict[str, Any] = {}

    async def handle(self, records: Sequence[Any]) -> bool:
        """Serve a batch; True when every record was applied or dead-lettered."""
        aliases = frozenset(self.settings.databases)
        by_alias: dict[str, list[Beat]] = {}
        for record in records:
            try:
                beat = parse_beat(record, aliases=aliases, access=self.access)
            except Exception as exc:  # a bug in checking must not take the batch down
                log.exception("checking a heartbeat failed", extra={"error": type(exc).__name__})
                beat = Rejection(code="internal", message=f"checking the heartbeat failed "
                                 f"({type(exc).__name__}); please report it", record=record,
                                 headers={})  # fmt: skip
            if isinstance(beat, Rejection):
                reason = beat.message[:2000]
                log.warning("rejected heartbeat", extra={"code": beat.code, "reason": reason})
                await self.dead_letter(beat)
            else:
                by_alias.setdefault(beat.body.database, []).append(beat)
        served = True
        for alias, beats in sorted(by_alias.items()):
            served &= await self._apply(alias, beats)
        return served

    async def _apply(self, alias: str, beats: list[Beat]) -> bool:
        try:
            conn = await self._connection(alias)
        except (SchemahealError, *DATABASE_ERRORS) as exc:
            log.error("heartbeats: database unavailable", extra={"database": alias,
                                                                 "error": str(exc)})  # fmt: skip
            return False
        schema = self.settings.ledger_schema
        try:
            for beat in beats:
                who = {"service": beat.body.service, "instance": beat.body.instance}
                if beat.stopped:
                    kept = await lease_store.stop(conn, **who, schema=schema)
                else:
                    kept = await lease_store.heartbeat(
                        conn, **who, ttl_s=self.settings.lease_ttl_s, schema=schema
                    )
                if not kept:
                    log.info("no running lease for %s/%s: only a boot through the gate makes "
                             "one", beat.body.service, beat.body.instance,
                             extra={"database": alias, **who})  # fmt: skip
        except DATABASE_ERRORS as exc:
            log.error("heartbeats: %s", exc, extra={"database": alias, "error": str(exc)})
            self._connections.pop(alias, None)
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.close(timeout=5)
            return False
        return True

    async def _connection(self, alias: str) -> Any:
        """A connection to ``alias`` kept between batches; a closed one is opened again."""
        conn = self._connections.get(alias)
        if conn is None or conn.is_closed():
            conn = self._connections[alias] = await open_checked(self.settings, alias)
        return conn

    async def close(self) -> None:
        """Close the kept connections (at shutdown)."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            with contextlib.suppress(*DATABASE_ERRORS):
                await conn.close(timeout=5)
