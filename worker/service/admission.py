"""Which records the gate serves: valid requests the access policy allows, naming a reply
destination the worker may use; every other record becomes a :class:`Rejection` (answered when
it has a ``ce_id``, and dead-lettered), before any database is touched."""

from __future__ import annotations

import logging
from typing import Any

from worker.service import routing
from worker.service.access import PolicyFile
from worker.service.requests import Rejection, Request, crashed, parse_record
from worker.service.routing import Route
from worker.settings import WorkerSettings

__all__ = ["Admission", "refusal"]

log = logging.getLogger("schemaheal.gate")


class Admission:
    """The gate's checks of a record, with the access policy file (re-read when it changes)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.access = PolicyFile(settings.access_policy)
        self.access.current()  # a broken policy file stops the worker at start-up

    def admit(self, record: Any, aliases: frozenset[str]) -> Request | Rejection:
        """The record as a request the policy allows, or a rejection; never raises."""
        try:
            parsed = parse_record(
                record, max_bytes=self.settings.max_request_bytes, aliases=aliases
            )
            if isinstance(parsed, Request):
                parsed = self._check_route(parsed)
            return self._authorize(parsed) if isinstance(parsed, Request) else parsed
        except Exception as exc:  # a bug in validation must not take the batch down
            log.exception("checking a record failed", extra={"error": type(exc).__name__})
            return crashed(record, exc)

    def route(self, record: Any, request_id: str) -> Route:
        """Where the reply to ``record`` goes, and how its requester recognises it."""
        return routing.route(
            record.headers or (),
            request_id=request_id,
            reply_topic=self.settings.reply_topic,
            allowed=self.settings.allowed_reply_topics,
        )

    def _check_route(self, request: Request) -> Request | Rejection:
        """A request naming a reply destination the worker may not use is refused (answered
        on the standard reply topic), before any database is touched."""
        request.route = self.route(request.record, request.request_id)
        refused = request.route.refused
        return request if refused is None else refusal(request, "reply-refused", refused)

    def _authorize(self, request: Request) -> Request | Rejection:
        """The access policy's word on a valid request, before any database is touched."""
        policy = self.access.current()
        service, record = request.body.service, request.record
        refused = policy.check_signature(service, record.headers or (), record.key,
                                         record.value or b"")  # fmt: skip
        if refused is not None:
            return refusal(request, "bad-signature", refused)
        refused = policy.check_source(service, request.headers.get("ce_source"))
        if refused is not None:
            return refusal(request, "not-allowed", refused)
        decision = policy.decide(request.body.service, request.alias, request.desired.realm.schemas)
        if isinstance(decision, str):
            return refusal(request, "not-allowed", decision)
        request.hazards = decision.hazards
        request.signed = policy.requires_signature(request.body.service)
        return request


def refusal(request: Request, code: str, message: str) -> Rejection:
    """A valid request that may not be served, as a rejection (answered and dead-lettered)."""
    return Rejection(code=code, message=message, record=request.record, headers=request.headers,
                     request_id=request.request_id, body=request.body.model_dump())  # fmt: skip
