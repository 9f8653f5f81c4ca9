"""Hazards: what a planned statement may do to a live database. Typed, with stable strings.

The planner attaches hazards where it produces SQL; whether a hazard is acceptable is decided
separately by :mod:`worker.engine.policy`. ``heal --allow-hazard NAME`` uses these names.
"""

from __future__ import annotations

from enum import StrEnum


class Hazard(StrEnum):
    #: Rewrites every row under an ACCESS EXCLUSIVE lock (volatile default, identity or stored
    #: generated column added to an existing table). Blocks reads and writes for its duration.
    TABLE_REWRITE = "table-rewrite"
    #: Takes a lock that blocks writes, or reads and writes, for a moment (most ALTER TABLE
    #: forms). Waits behind long transactions; bounded by lock_timeout and retried.
    STRONG_LOCK = "strong-lock"
    #: Scans the table to validate a constraint, under a lock that lets reads and writes go on.
    VALIDATION_SCAN = "validation-scan"
    #: Builds an index concurrently: long on big tables, does not block writes, runs outside a
    #: transaction, and leaves an INVALID index behind if it fails (rebuilt on the next heal).
    INDEX_BUILD = "index-build"
    #: May fail on the data already there (duplicates for a unique key, NULLs for NOT NULL,
    #: orphans for a foreign key); nothing is changed when it does.
    MAY_FAIL_ON_EXISTING_DATA = "may-fail-on-existing-data"
    #: Adds a label to an enum type; cannot be undone without recreating the type.
    ENUM_LABEL_ADDED = "enum-label-added"
    #: Creates an extension, which runs the extension's own install script.
    EXTENSION_CREATED = "extension-created"
    #: Drops a column and the data in it (an online migration's contract retiring the old
    #: column). Always needs approval.
    COLUMN_DROP = "column-drop"
