"""A sink that records what the gate answers and dead-letters (the gate's Sink protocol)."""

from __future__ import annotations

from contracts.events import SchemaHealed
from worker.service.requests import Rejection
from worker.service.routing import Route


class RecordingSink:
    def __init__(self) -> None:
        self.replies: list[SchemaHealed] = []
        self.dead: list[Rejection] = []

    async def reply(
        self, reply: SchemaHealed, headers: dict[str, str], key: bytes | None, route: Route
    ) -> None:
        self.replies.append(reply)

    async def dead_letter(self, rejection: Rejection) -> None:
        self.dead.append(rejection)

    def outcomes(self) -> dict[str, list[str]]:
        """request id → the outcomes it was answered with, in order."""
        out: dict[str, list[str]] = {}
        for reply in self.replies:
            code = f" {reply.error.code}" if reply.error else ""
            out.setdefault(reply.request_id, []).append(reply.outcome + code)
        return out
