"""Errors of the contracts package.

    ContractError                  base of every error this package raises
    ├── ManifestError              a manifest is invalid; ``problems`` lists each, with its place
    └── EventError                 an event on the wire is malformed (see contracts.events)

Every problem names its place as a JSON path (``$.tables[2].columns[0].type``) and says what to
change, because the reader is the author of the manifest, often far from the worker's logs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ContractError", "EventError", "ManifestError", "Problem"]


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
