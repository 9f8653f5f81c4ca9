"""What the ledger says of each planned statement, and how the catalog settles a doubtful one. Pure.

Every statement of a heal is written to the ledger as ``planned`` before the first one runs, and
becomes ``applied`` as it commits: in its own transaction for a transactional statement (so a
``planned`` one after a crash certainly did not run), right after it for one that cannot run in
a transaction (``CREATE``/``DROP INDEX CONCURRENTLY``), which leaves a gap: killed between the
two, the statement committed and its row still says ``planned``. The heal that closes such a
row asks the catalog (:func:`catalog_check`, stored with the row; :func:`verdict`), and records
``confirmed`` (applied, seen in the catalog after the interruption) or ``not-applied``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.engine import changes as ch
from worker.engine.statements import Statement


class StatementState(StrEnum):
    """A statement row's state. Stable strings: they are stored in the ledger."""

    PLANNED = "planned"  # written with the heal's intent, before anything ran
    APPLIED = "applied"  # committed, recorded as it committed
    CONFIRMED = "confirmed"  # committed: found in the catalog after the heal was interrupted
    NOT_APPLIED = "not-applied"  # never committed (the heal failed or stopped before it)
    #: the heal stopped and the catalog cannot tell whether this statement ran: check by hand
    UNCONFIRMED = "unconfirmed"


#: The states of a statement that ran: what "the ledger lists" means.
RAN = frozenset({StatementState.APPLIED, StatementState.CONFIRMED})


class CheckKind(StrEnum):
    INDEX_VALID = "index-valid"  # CREATE INDEX CONCURRENTLY: the index exists and is valid
    INDEX_ABSENT = "index-absent"  # DROP INDEX CONCURRENTLY: the index is gone
    ENUM_LABEL = "enum-label"  # ALTER TYPE … ADD VALUE: the label exists
    NONE = "none"  # no catalog fact tells (a kind of statement this module does not know)


class Found(StrEnum):
    """What the catalog holds of a check's object."""

    MISSING = "missing"
    INVALID = "invalid"  # an index left by a build that did not finish
    PRESENT = "present"


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogCheck:
    """The catalog fact that shows a non-transactional statement committed."""

    kind: CheckKind
    schema: str = ""
    name: str = ""  # the index, or the enum type
    label: str | None = None  # the enum label

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "schema": self.schema, "name": self.name,
                "label": self.label}  # fmt: skip

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> CatalogCheck:
        kind = CheckKind(value["kind"]) if value.get("kind") in set(CheckKind) else CheckKind.NONE
        return cls(kind=kind, schema=value.get("schema", ""), name=value.get("name", ""),
                   label=value.get("label"))  # fmt: skip


def catalog_check(statement: Statement) -> CatalogCheck | None:
    """What the catalog shows once ``statement`` committed; None for a transactional statement,
    whose ledger row commits with it (still ``planned`` after a crash: it did not run)."""
    if statement.transactional:
        return None
    match statement.change:
        case ch.AddIndex(table=table, index=index):
            return CatalogCheck(kind=CheckKind.INDEX_VALID, schema=table.schema, name=index.name)
        case ch.RebuildInvalidIndex(table=table, index=index):
            # two statements: DROP INDEX CONCURRENTLY of the invalid one, then the build
            dropping = statement.sql.startswith("DROP INDEX")
            kind = CheckKind.INDEX_ABSENT if dropping else CheckKind.INDEX_VALID
            return CatalogCheck(kind=kind, schema=table.schema, name=index.name)
        case ch.AddKeyConstraint(table=table, constraint=key):
            return CatalogCheck(kind=CheckKind.INDEX_VALID, schema=table.schema, name=key.name)
        case ch.AddEnumLabel(enum=enum, label=label):
            return CatalogCheck(
                kind=CheckKind.ENUM_LABEL, schema=enum.schema, name=enum.name, label=label
            )
        case _:
            return CatalogCheck(kind=CheckKind.NONE)


def verdict(check: CatalogCheck | None, found: Found | None) -> StatementState:
    """The state of a statement found ``planned`` after its heal stopped, from its check and
    what the catalog holds now (``found``: None when there was nothing to look up)."""
    if check is None:
        return StatementState.NOT_APPLIED
    match check.kind:
        case CheckKind.INDEX_VALID | CheckKind.ENUM_LABEL:
            done = found is Found.PRESENT  # an INVALID index is a build that did not finish
        case CheckKind.INDEX_ABSENT:
            done = found is Found.MISSING
        case CheckKind.NONE:
            return StatementState.UNCONFIRMED
    return StatementState.CONFIRMED if done else StatementState.NOT_APPLIED
