"""The gate's boots of one manifest: their leases, and the answer the boot check can give.

Every request of a coalesced group is a booting instance: each one's lease is written before the
heal takes the schemas' locks (a contract decides under the same locks). For a manifest the
database already satisfies, :func:`worker.engine.boot_check.check` writes the leases, answers and
records the answer in two round trips; otherwise it writes the leases and the heal runs. The
first group of a database's batch also carries the batch's ledger lookup (``lookup``): when a
request was served before, nothing is written and the gate takes its ledger path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from worker.engine import boot_check, lease_store
from worker.engine.cache import BoundedCache
from worker.engine.connection import DATABASE_ERRORS
from worker.engine.desired import CACHED_MANIFESTS, CACHED_TABLES
from worker.engine.heal import HealOptions, HealResult, RequestInfo
from worker.engine.liveness import Shape, shape_of
from worker.service.requests import Request, position
from worker.settings import WorkerSettings

__all__ = ["Boots", "Checked", "coalesced", "request_info"]

log = logging.getLogger("schemaheal.gate")


@dataclass(frozen=True, slots=True)
class Checked:
    """What checking a group's boot gave."""

    leased: bool  # False: the database failed; the group is redelivered, nobody was answered
    result: HealResult | None = None  # None: the heal must run
    seen: bool = False  # a request of the lookup was served before; nothing was written


class Boots:
    """Leases of the gate's boots; the shapes of recent manifests are kept (bounded like the
    realms they are made from)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._shapes: BoundedCache[str, Shape] = BoundedCache(
            entries=CACHED_MANIFESTS, weight=CACHED_TABLES
        )

    def shape(self, request: Request) -> Shape:
        """The columns of ``request``'s manifest: what its instances lease."""
        shape = self._shapes.get(request.manifest_hash)
        if shape is None:
            realm = request.desired.realm
            shape = shape_of(realm)
            self._shapes.put(request.manifest_hash, shape, weight=len(realm.tables))
        return shape

    async def check(
        self, alias: str, conn: Any, group: list[Request], options: HealOptions,
        lookup: tuple[str, ...] = (),
    ) -> Checked:  # fmt: skip
        """Lease the group's instances and answer its leader when the boot check can; first,
        when ``lookup`` names request ids, look them up in the ledger in the same round trip
        (any served before: nothing is written, ``seen``)."""
        leader = group[0]
        instances = tuple((r.body.service, r.body.instance) for r in group)
        try:
            if not options.record:  # no ledger: nothing verified to answer from
                await lease_store.record_boot(
                    conn, instances=instances, manifest_hash=leader.manifest_hash,
                    shape=self.shape(leader), ttl_s=self.settings.lease_ttl_s,
                    schema=options.ledger_schema,
                )  # fmt: skip
                return Checked(leased=True)
            boot = boot_check.Boot(desired=leader.desired, request=request_info(leader),
                                   instances=instances, shape=self.shape(leader),
                                   ttl_s=self.settings.lease_ttl_s, lookup=lookup)  # fmt: skip
            result = await boot_check.check(conn, boot, options)
        except DATABASE_ERRORS as exc:
            boot_check.forget(conn)  # e.g. the ledger schema was dropped: set it up again
            log.error("recording leases failed", extra={"database": alias, "error": str(exc)})
            return Checked(leased=False)
        if isinstance(result, boot_check.Seen):
            return Checked(leased=False, seen=True)
        return Checked(leased=True, result=result)

    async def end(self, alias: str, conn: Any, group: list[Request]) -> None:
        """End the group's leases: its instances will not start (blocked or failed)."""
        try:
            for request in group:
                await lease_store.stop(conn, service=request.body.service,
                                       instance=request.body.instance,
                                       schema=self.settings.ledger_schema)  # fmt: skip
        except DATABASE_ERRORS as exc:  # the lease expires by itself; the replies matter more
            log.error("ending leases failed", extra={"database": alias, "error": str(exc)})


def coalesced(followers: list[Request]) -> list[tuple[str, str, str, str | None, str]]:
    """The ledger rows of a group's followers: request id, service, instance, trace, position."""
    return [(f.request_id, f.body.service, f.body.instance, request_info(f).trace_id,
             position(f)) for f in followers]  # fmt: skip


def request_info(request: Request) -> RequestInfo:
    """Who asked, for the ledger and the reply."""
    traceparent = request.headers.get("traceparent", "")
    parts = traceparent.split("-")
    return RequestInfo(
        request_id=request.request_id,
        service=request.body.service,
        instance=request.body.instance,
        database_alias=request.alias,
        trace_id=parts[1] if len(parts) == 4 else None,
        record_position=position(request),
    )
