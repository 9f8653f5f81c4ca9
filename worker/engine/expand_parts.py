"""Names and small pieces shared by the SQL of online column migrations. Pure.

The objects a migration creates are named from its id (``schemaheal_sync_<hash>`` …), derived
column names stay within PostgreSQL's 63 bytes, and :class:`Step` is one unit the runner applies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from contracts.identifiers import qualified, quote_ident
from worker.engine.expand import ColumnMigration

__all__ = [
    "Carry",
    "Step",
    "derived_name",
    "dollar_quoted",
    "drop_sync",
    "handover_index",
    "literal",
    "object_name",
    "physical_column",
    "retired_column",
    "table_name",
]

_MAX_NAME = 63  # bytes PostgreSQL keeps of an identifier


class Carry(StrEnum):
    """A step that also carries what uses the old column of an in-place swap: what it runs
    besides ``sql`` is read from the catalog when it runs
    (:mod:`worker.engine.expand_dependents`)."""

    #: build, CONCURRENTLY, an equivalent on the shadow column of each index on the old one
    PREPARE = "prepare"
    #: ``sql`` (the swap) between dropping and re-creating the dependents, in one transaction
    SWAP = "swap"
    #: ``sql`` (the new key's unique index, built CONCURRENTLY) in the tablespace of the primary
    #: key it replaces, when that is not the default one
    KEY = "key"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One transaction (``sql`` may hold several ';'-separated commands) or one command that
    cannot run in a transaction (``transactional=False``)."""

    sql: str
    transactional: bool = True
    #: runs under the long statement timeout (scans: VALIDATE, CREATE INDEX CONCURRENTLY)
    long: bool = False
    #: run before every attempt of the step: clears what an interrupted attempt left (a killed
    #: CREATE INDEX CONCURRENTLY leaves an INVALID index that IF NOT EXISTS would keep)
    reset: str | None = None
    #: drops a column that holds data: a hazard needing approval
    drops_column: bool = False
    carry: Carry | None = None
    #: this step's VALIDATE proves every row converted (it is the NOT NULL check's), so the
    #: runner counts no rows before it; when a row fails it, this undoes the steps before it
    #: (the check added NOT VALID would refuse writers' NULLs while the migration is stopped)
    #: and the runner counts the rows then, for its message
    proves_converted: str | None = None


def literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on for every engine connection)."""
    return "'" + text.replace("'", "''") + "'"


def derived_name(base: str, suffix: str) -> str:
    """``base + suffix`` within PostgreSQL's 63 bytes: a long base is cut and given a hash so
    that two long names never derive the same one."""
    if len((base + suffix).encode()) <= _MAX_NAME:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:8]
    room = _MAX_NAME - len(suffix.encode()) - len(digest) - 1
    cut = base.encode()[:room].decode(errors="ignore")
    return f"{cut}_{digest}{suffix}"


def handover_index(name: str) -> str:
    """``<name>__sh_rn`` within 63 bytes: the name, until contract, of the new column's index
    that keeps the name of the old column's index (a rename's; contract renames it back)."""
    return derived_name(name, "__sh_rn")


def physical_column(m: ColumnMigration) -> str:
    """Where the new values are written during expand: a shadow column for an in-place change
    (the new column takes the old one's name at the swap)."""
    if m.in_place and m.old_column is not None:
        return derived_name(m.old_column, "__sh_new")
    return m.new_column


def retired_column(m: ColumnMigration) -> str | None:
    """The old column's name once contract may drop it (renamed by an in-place swap)."""
    if m.in_place and m.old_column is not None:
        return derived_name(m.old_column, "__sh_old")
    return m.old_column


def object_name(m: ColumnMigration, prefix: str) -> str:
    """``schemaheal_<prefix>_<16 hex digits of the migration's id>``: 33 bytes at most."""
    return f"schemaheal_{prefix}_{m.id.rsplit(':', 1)[1]}"


def table_name(m: ColumnMigration) -> str:
    return qualified(m.schema, m.table)


def dollar_quoted(body: str) -> str:
    """``body`` between a dollar-quote tag it does not contain."""
    tag, n = "$sh$", 0
    while tag in body:
        n += 1
        tag = f"$sh{n}$"
    return f"{tag}\n{body}\n{tag}"


def drop_sync(m: ColumnMigration) -> list[str]:
    """The commands that drop the migration's trigger and its function."""
    function = qualified(m.schema, object_name(m, "sync"))
    return [
        f"DROP TRIGGER IF EXISTS {quote_ident(object_name(m, 'sync'))} ON {table_name(m)}",
        f"DROP FUNCTION IF EXISTS {function}()",
    ]
