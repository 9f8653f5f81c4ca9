"""The gate's boots of one manifest: their leases, and the answer the boot check can give.

Every request of a coalesced group is a booting instance: each one's lease is written before the
heal takes the schemas' locks (a contract decides under the same locks). For a manifest the
database already satisfies, :func:`worker.engine.boot_check.check_many` writes the leases,
answers and records the answer; otherwise it writes the leases and the heal runs. All the
groups of a database's batch are checked in one round trip, which also carries the batch's
ledger lookup (``lookup``): when a request was served before, nothing is written and the gate
takes its ledger path.
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
    result: HealResult | None = None  # None: the heal must run; else recorded, followers too
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

    async def check_all(
        self, alias: str, conn: Any, groups: list[list[Request]], options: HealOptions,
        lookup: tuple[str, ...] = (),
    ) -> list[Checked]:  # fmt: skip
        """Lease every group's instances and answer each group the boot check can, in one round
        trip; first, when ``lookup`` names request ids, look them up in the ledger in the same
        round trip (any served before: nothing is written, every group ``seen``). A failure of
        the database fails every group (nothing is answered)."""
        try:
            if not options.record:  # no ledger: nothing verified to answer from
                for group in groups:
                    leader = group[0]
                    await lease_store.record_boot(
                        conn, instances=instances_of(group), manifest_hash=leader.manifest_hash,
                        shape=self.shape(leader), ttl_s=self.settings.lease_ttl_s,
                        schema=options.ledger_schema,
                    )  # fmt: skip
                return [Checked(leased=True)] * len(groups)
            ttl_s = self.settings.lease_ttl_s
            boots = [boot_check.Boot(desired=g[0].desired, request=request_info(g[0]),
                                     instances=instances_of(g), shape=self.shape(g[0]),
                                     ttl_s=ttl_s, followers=tuple(coalesced(g[1:])))
                     for g in groups]  # fmt: skip
            results = await boot_check.check_many(conn, boots, options, lookup=lookup)
        except DATABASE_ERRORS as exc:
            boot_check.forget(conn)  # e.g. the ledger schema was dropped: set it up again
            log.error("recording leases failed", extra={"database": alias, "error": str(exc)})
            return [Checked(leased=False)] * len(groups)
        if isinstance(results, boot_check.Seen):
            return [Checked(leased=False, seen=True)] * len(groups)
        return [Checked(leased=True, result=result) for result in results]

    async def end(self, alias: str, conn: Any, group: list[Request]) -> None:
        """End the group's leases: its instances will not start (blocked or failed)."""
        try:
            for request in group:
                await lease_store.stop(conn, service=request.body.service,
                                       instance=request.body.instance,
                                       schema=self.settings.ledger_schema)  # fmt: skip
        except DATABASE_ERRORS as exc:  # the lease expires by itself; the replies matter more
            log.error("ending leases failed", extra={"database": alias, "error": str(exc)})


def instances_of(group: list[Request]) -> tuple[tuple[str, str], ...]:
    """The (service, instance) of each request of ``group``: what the boot leases."""
    return tuple((r.body.service, r.body.instance) for r in group)


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
