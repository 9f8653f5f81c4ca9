"""Why some of squawk's rules do not apply to statements schemaheal generates.

Every generated statement is linted with squawk (the PostgreSQL migration linter) in the tests.
A warning is accepted only when it is listed here, for the kind of change that produced the
statement, with the reason. Anything else squawk says fails the tests.
"""

from __future__ import annotations

from worker.engine import changes as ch
from worker.engine.statements import Statement

_TYPE_CHOICE = (
    "the column types are the service's own choice in its manifest (the seed's legacy INTEGER "
    "keys among them); schemaheal renders them faithfully and never picks or changes them"
)

#: rule → (kinds of change it may fire on, why it does not apply there)
EXCEPTIONS: dict[str, tuple[tuple[type, ...], str]] = {
    "prefer-text-field": ((ch.AddTable, ch.AddColumn, ch.WidenType), _TYPE_CHOICE),
    "prefer-bigint-over-int": ((ch.AddTable, ch.AddColumn, ch.AddSequence), _TYPE_CHOICE),
    "prefer-bigint-over-smallint": ((ch.AddTable, ch.AddColumn, ch.AddSequence), _TYPE_CHOICE),
    "prefer-identity": ((ch.AddTable, ch.AddColumn), _TYPE_CHOICE),
    "changing-column-type": (
        (ch.WidenType,),
        "WidenType is planned only for widenings PostgreSQL makes without a rewrite or an index "
        "rebuild (diff.is_metadata_only_widening); squawk cannot tell them apart",
    ),
    "adding-field-with-default": (
        (ch.AddColumn,),
        "the rewrite is real: such statements carry the table-rewrite hazard, and the policy "
        "blocks them on tables above the size threshold until --allow-hazard table-rewrite",
    ),
    "ban-drop-constraint": (
        (ch.SetNotNull,),
        "drops only the helper CHECK (col IS NOT NULL) that the same change added and "
        "validated a moment before, once SET NOT NULL has used it",
    ),
    "ban-drop-not-null": (
        (ch.DropNotNull,),
        "the service's manifest declares the column nullable; relaxing NOT NULL loses no data",
    ),
}


def exception_for(rule: str, statement: Statement) -> str | None:
    """The reason ``rule`` does not apply to ``statement``, or None when it does."""
    kinds, reason = EXCEPTIONS.get(rule, ((), ""))
    return reason if isinstance(statement.change, kinds) else None
