"""The boot gate: serve one poll's batch of ``service.starting`` records.

* Bad records are rejected (answered when they have a ``ce_id``) and dead-lettered.
* Requests whose ``ce_id`` is already in the ledger are answered from it; no DDL runs again.
* The rest are grouped by database alias: databases are healed in parallel, each one's
  requests in order. Requests for the same (database, manifest hash) are coalesced: one heal,
  and every requester gets its own reply (and its own ledger row pointing at that heal).
* A request another worker served after this batch's lookup (a rebalance hands records over,
  in other batches) gets no second row: it is answered from its first finished row, as a
  redelivery would be, so all its replies carry one outcome.
* A retryable failure (database down, lock held too long) is retried in-process; if it persists,
  the batch is *not* acknowledged and Kafka redelivers it after a pause.

``handle`` returns True when every record was answered and the batch may be committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span

from contracts.events import SchemaHealed
from worker.engine import ledger
from worker.engine.connection import DATABASE_ERRORS
from worker.engine.heal import HealResult, Outcome
from worker.errors import RETRYABLE_CODES, RetryableError, SchemahealError
from worker.observability.metrics import make_instruments
from worker.service import replies
from worker.service.admission import Admission, refusal
from worker.service.boots import Boots, Checked
from worker.service.databases import open_checked
from worker.service.healing import heal_with_retries, record_metrics, served_first
from worker.service.requests import Rejection, Request, replayed, to_serve
from worker.service.routing import Route
from worker.service.series import counter_series
from worker.service.spans import process_span, start_process_span
from worker.settings import WorkerSettings

log = logging.getLogger("schemaheal.gate")
_Served = TypeVar("_Served", bool, list[Checked])


class Sink(Protocol):
    """Where replies and dead letters go (the Kafka producer, or a list in tests)."""

    async def reply(
        self, reply: SchemaHealed, request_headers: dict[str, str], key: bytes | None,
        route: Route,
    ) -> None: ...  # fmt: skip
    async def dead_letter(self, rejection: Rejection) -> None: ...


class Gate:
    def __init__(self, settings: WorkerSettings, sink: Sink) -> None:
        self.settings = settings
        self.sink = sink
        self.options = settings.heal_options()
        self._connections: dict[str, Any] = {}
        self.boots = Boots(settings)
        self.metrics = make_instruments(metrics.get_meter("schemaheal"), counter_series(settings))
        self.admission = Admission(settings)  # a broken policy file stops the worker here

    async def handle(self, records: Sequence[Any]) -> bool:
        """Serve a batch; True when every record got its answer (commit), False to redeliver.
        Never raises: one record's failure is that record's answer or dead letter."""
        aliases = frozenset(self.settings.databases)
        by_alias: dict[str, list[Request]] = {}
        delivered = True
        for record in records:
            parsed = self.admission.admit(record, aliases)
            if isinstance(parsed, Rejection):
                delivered &= await self._isolated([], "rejecting a record", self._reject(parsed))
            else:
                by_alias.setdefault(parsed.alias, []).append(parsed)
        outcomes = await asyncio.gather(
            *(self._serve_database(alias, requests) for alias, requests in by_alias.items()),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):  # a bug: the batch comes back, nothing lost
                log.error("serving a database failed", exc_info=outcome)
        return delivered and all(o is True for o in outcomes)

    async def _isolated(
        self, requests: list[Request], doing: str, work: Awaitable[_Served]
    ) -> _Served | bool:
        """Run ``work`` for ``requests``: a failure to publish means False (the batch comes
        back); any other exception answers those still unanswered with ``failed``."""
        try:
            return await work
        except NotDelivered as exc:
            log.error("publishing failed; the batch will be redelivered", extra={"error": str(exc)})
            return False
        except Exception as exc:
            log.exception("%s failed", doing, extra={"error": type(exc).__name__})
            message = f"{doing}: {type(exc).__name__}: {exc}"[:2000] + (
                "; an error in the worker, please report it; the request can be sent again"
            )
            unanswered = [r for r in requests if not r.answered]
            try:
                return await self._fail(unanswered, "internal", message)
            except NotDelivered:
                return False

    async def _fail(self, requests: list[Request], code: str, message: str) -> bool:
        for request in requests:
            await self._send(request, replies.from_failure(request, code, message))
        return True

    async def _reject(self, rejection: Rejection) -> bool:
        log.warning(
            "rejected record",
            extra={
                "code": rejection.code,
                "reason": rejection.message[:2000],
                "request_id": rejection.request_id,
            },
        )
        self.metrics.dead_letters.add(1, {"code": rejection.code})
        with process_span(self.settings, rejection) as span:
            span.set_attribute("schemaheal.outcome", "rejected")
            span.set_attribute("error.type", rejection.code)
            if rejection.request_id is not None:
                self.metrics.requests.add(1, {"outcome": "rejected"})
                reply = replies.from_rejection(rejection)
                route = self.admission.route(rejection.record, rejection.request_id)
                await _publish(
                    self.sink.reply(reply, rejection.headers, rejection.record.key, route)
                )
            await _publish(self.sink.dead_letter(rejection))
        return True

    async def _serve_database(self, alias: str, requests: list[Request]) -> bool:
        """Heal one database's requests in order, coalescing equal manifests; False when some
        could not be answered (the batch comes back)."""
        try:
            conn = await self._connection(alias)
        except RetryableError as exc:
            log.error("database unavailable", extra={"database": alias, "error": str(exc)})
            return False
        except Exception as exc:  # e.g. authentication failed: retrying will not help
            code = exc.code if isinstance(exc, SchemahealError) else "internal"
            return await self._isolated([], "answering", self._fail(requests, code, str(exc)))
        try:
            return await self._serve_on(alias, conn, requests)
        finally:
            kept = self._connections.get(alias)
            if kept is not None and kept.is_closed():
                self._connections.pop(alias, None)

    async def _serve_on(self, alias: str, conn: Any, requests: list[Request]) -> bool:
        ids = [r.request_id for r in requests]
        groups = to_serve(requests, {})
        if self.options.record and groups:
            # the usual batch: none of it served before. The boot check of all its groups looks
            # the batch's ids up in the ledger in the same round trip, and steps aside (writing
            # nothing) when one was: then the batch takes the ledger path below.
            checks = await self._check(alias, conn, groups, tuple(ids))
            if isinstance(checks, bool):  # failed (the batch comes back whole), or answered
                return checks
            if not checks[0][0].seen:
                answered = await self._refuse_replays(replayed(requests, {}))
                return answered & await self._heal_groups(alias, groups, *checks)
        try:
            done = await ledger.find_many(conn, ids, self.settings.ledger_schema)
        except DATABASE_ERRORS as exc:
            log.error("reading the ledger failed", extra={"database": alias, "error": str(exc)})
            return False
        replays = replayed(requests, done)
        answered = await self._refuse_replays(replays)
        for request in requests:
            if request.request_id in done and request not in replays:
                answered &= await self._isolated(
                    [request], "answering from the ledger",
                    self._answer_from_ledger(request, done[request.request_id]),
                )  # fmt: skip
        groups = to_serve(requests, done)
        if groups:
            checks = await self._check(alias, conn, groups)
            if isinstance(checks, bool):
                return answered & checks
            answered &= await self._heal_groups(alias, groups, *checks)
        return answered

    async def _check(
        self, alias: str, conn: Any, groups: list[list[Request]], lookup: tuple[str, ...] = ()
    ) -> tuple[list[Checked], Span | None] | bool:
        """The boot check of every group, and the first group's process span (None when the
        check saw a request served before): False when the database failed (nobody answered),
        True when an error in the worker answered them all ``internal``."""
        # the check's span is a child of the first group's process span (the boot that a
        # one-group batch is), started here and ended when that group is served; the other
        # groups' replies link to it as to a heal
        leader = groups[0][0]
        first = start_process_span(self.settings, leader)
        token = otel_context.attach(trace.set_span_in_context(first))
        try:
            checking = self.boots.check_all(alias, conn, groups, self.options, lookup)
            checks = await self._isolated([r for g in groups for r in g], "healing", checking)
        finally:
            otel_context.detach(token)
        if isinstance(checks, list) and not checks[0].leased and not checks[0].seen:
            checks = False
        if isinstance(checks, bool) or checks[0].seen:
            first.end()
            return checks if isinstance(checks, bool) else (checks, None)
        return checks, first

    async def _heal_groups(
        self, alias: str, groups: list[list[Request]], checks: list[Checked], first: Span | None
    ) -> bool:
        answered = True
        for group, checked in zip(groups, checks, strict=True):
            serving = self._serve_group(alias, group, checked, first)
            first = None
            answered &= await self._isolated(group, "healing", serving) is not False
        return answered

    async def _refuse_replays(self, replays: list[Request]) -> bool:
        answered = True
        for request in replays:
            message = "this signed request was served before, from another record"
            answered &= await self._isolated(
                [request], "refusing a replay",
                self._reject(refusal(request, "replayed-request", message)),
            )  # fmt: skip
        return answered

    async def _answer_from_ledger(self, request: Request, row: dict[str, Any]) -> bool:
        with process_span(self.settings, request):
            await self._send(request, replies.from_ledger(request, row))
        return True

    async def _serve_group(
        self, alias: str, group: list[Request], checked: Checked, started: Span | None = None
    ) -> bool:
        """Serve ``group``, whose boot check gave ``checked`` (True), or leave it to a
        redelivery (False). ``started``: its process span, when the check started it."""
        leader, followers = group[0], group[1:]
        span = started or start_process_span(self.settings, leader)
        try:
            conn = await self._connection(alias)  # the kept one, or a new one if it broke
        except RetryableError as exc:
            log.error("database unavailable", extra={"database": alias, "error": str(exc)})
            span.end()
            return False
        with trace.use_span(span, end_on_exit=True):
            result = checked.result
            if result is None:  # not answered by the boot check: heal (its followers recorded)
                conn, result = await heal_with_retries(
                    conn, group, self.options, attempts=self.settings.retry_attempts,
                    reconnect=lambda: self._reconnect(alias),
                )  # fmt: skip
            if result.error_code in RETRYABLE_CODES:
                span.set_attribute("error.type", result.error_code or "retryable")
                return False  # redelivered later; nobody in this group has been answered
            rows = await self._served_first(alias, conn, group, result)
            if rows is None:
                return False  # their rows are written: a redelivery answers from them
            record_metrics(self.metrics, alias, result)
            if result.outcome in (Outcome.BLOCKED, Outcome.FAILED):  # these will not start
                await self.boots.end(alias, conn, group)
            span.set_attributes({
                "schemaheal.outcome": result.outcome.value,
                "schemaheal.manifest.hash": leader.manifest_hash,
                "schemaheal.database.alias": alias,
                "schemaheal.statements.count": len(result.applied),
                "schemaheal.drift.count": len(result.drift),
                "schemaheal.coalesced.count": len(followers),
            })  # fmt: skip
            healed_by = result.span or span.get_span_context()  # the heal, else this request
            answer, answers = replies.of_group(leader, followers, result, rows)
            await self._send(leader, answer)
        self.metrics.coalesced.add(len(followers), {"database": alias})
        for follower, answer in zip(followers, answers, strict=True):
            # each keeps its own trace, linked to the heal that served it
            with process_span(self.settings, follower, [Link(healed_by)]) as span:
                span.set_attribute("schemaheal.outcome", answer.outcome)
                await self._send(follower, answer, logged=False)
        if followers:  # one line for the group: a storm's thousands of replies cost little
            log.info("replied to coalesced requests", extra={
                "request_ids": [f.request_id for f in followers], "outcome": result.outcome.value,
                "database": alias, "healed_by": leader.request_id,
                "from_ledger": sorted(rows),
            })  # fmt: skip
        return True

    async def _served_first(
        self, alias: str, conn: Any, group: list[Request], result: HealResult
    ) -> dict[str, dict[str, Any]] | None:
        """:func:`served_first`; None when reading the ledger failed."""
        try:
            return await served_first(conn, group, result, self.settings.ledger_schema)
        except DATABASE_ERRORS as exc:
            log.error("reading the ledger failed", extra={"database": alias, "error": str(exc)})
            return None

    async def _reconnect(self, alias: str) -> Any:
        self._connections.pop(alias, None)
        return await self._connection(alias)

    async def _connection(self, alias: str) -> Any:
        """The gate's connection to ``alias``, kept between batches (one per database: a
        database's requests are served in order). A closed one is replaced."""
        conn = self._connections.get(alias)
        if conn is not None and not conn.is_closed():
            return conn
        conn = await open_checked(self.settings, alias)
        self._connections[alias] = conn
        return conn

    async def close(self) -> None:
        """Close the kept connections (at shutdown)."""
        connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            if not conn.is_closed():
                await conn.close()

    async def _send(self, request: Request, reply: SchemaHealed, *, logged: bool = True) -> None:
        """Publish ``reply`` to ``request``; ``logged=False``: its caller logs it (a group)."""
        self.metrics.requests.add(1, {"outcome": reply.outcome, "database": request.alias})
        if logged:
            log.info(
                "replied",
                extra={
                    "request_id": request.request_id,
                    "outcome": reply.outcome,
                    "database": request.alias,
                    "coalesced": reply.coalesced,
                },
            )
        route = request.route or self.admission.route(request.record, request.request_id)
        await _publish(self.sink.reply(reply, request.headers, request.record.key, route))
        request.answered = True


class NotDelivered(Exception):
    """The sink could not publish a reply or dead letter: the batch must come back."""


async def _publish(sending: Awaitable[None]) -> None:
    try:
        await sending
    except Exception as exc:
        raise NotDelivered(f"{type(exc).__name__}: {exc}") from exc
