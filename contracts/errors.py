"""Errors of the contracts package.

    ContractError                  base of every error this package raises
    ├── ManifestError              a manifest is invalid; ``problems`` lists each, with its place
    ├── EventError                 an event on the wire is malformed (see contracts.events)
    └── BootGateError              ensure_schema(): the service must not start
        ├── SchemaNotReady         the worker answered, and not with healed/unchanged
        │   ├── SchemaBlocked      needs a person: approve hazards or resolve drift
        │   ├── SchemaRejected     the request was invalid or not allowed
        │   └── SchemaFailed       the heal failed
        └── BootGateTimeout        no answer within the timeout

Every problem names its place as a JSON path (``$.tables[2].columns[0].type``) and says what to
change, because the reader is the author of the manifest, often far from the worker's logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contracts.events import SchemaHealed

__all__ = [
    "BootGateError",
    "BootGateTimeout",
    "ContractError",
    "EventError",
    "ManifestError",
    "Problem",
    "SchemaBlocked",
    "SchemaFailed",
    "SchemaNotReady",
    "SchemaRejected",
]


class ContractError(Exception):
    """Base class of every error raised by :mod:`contracts`."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest: where, and what to change."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ManifestError(ContractError, ValueError):
    """The manifest is invalid. ``problems`` holds every problem found, in document order."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = len(self.problems) - 50
        tail = f"\n  … and {more} more" if more > 0 else ""
        count = len(self.problems)
        super().__init__(f"invalid manifest ({count} problem{'s' * (count != 1)}):\n{shown}{tail}")


class EventError(ContractError, ValueError):
    """An event's headers or body do not follow the wire contract."""


class BootGateError(ContractError):
    """The boot gate says the service must not start (yet)."""


class SchemaNotReady(BootGateError):
    """The worker answered, and the answer is not healed/unchanged. ``reply`` has everything."""

    def __init__(self, reply: SchemaHealed) -> None:
        self.reply = reply
        error = f": {reply.error.message}" if reply.error else ""
        super().__init__(
            f"schema of {reply.service}@{reply.database} is {reply.outcome}{error} "
            f"(request {reply.request_id}); {self.advice}"
        )

    advice = "see the worker's ledger"


class SchemaBlocked(SchemaNotReady):
    advice = "a person must approve the listed hazards or resolve the listed drift"


class SchemaRejected(SchemaNotReady):
    advice = "fix the request (manifest, database alias, permissions) and restart"


class SchemaFailed(SchemaNotReady):
    advice = "the heal failed; check the worker's logs and the ledger, then restart"


class BootGateTimeout(BootGateError):
    """No reply arrived in time: is the worker running, and reading service.starting?"""


class BrokerUnavailable(BootGateError):
    """Kafka cannot be reached, or refuses the credentials: check the bootstrap servers and
    :class:`~contracts.KafkaAuth`."""
