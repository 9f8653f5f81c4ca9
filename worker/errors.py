"""Errors of the worker. One tree; the branch decides what the worker does with a request.

    SchemahealError                   base of everything the worker raises on purpose
    ├── PermanentError                answer with a failure reply; redelivery would not help
    │   ├── ConfigurationError        settings are wrong (bad DSN alias, bad flag value)
    │   ├── UnsafeConnectionError     the connection cannot hold session advisory locks
    │   ├── StatementFailed           a planned statement failed for a reason other than a lock
    │   └── MigrationRefused          an online migration cannot start; nothing ran
    │       ├── MigrationChanged      the manifest changes a running migration's expression
    │       ├── SwapRefused           the in-place swap could not carry what uses the column
    │       ├── AbandonRefused        a migration cannot be abandoned (contracted, swapped, in use)
    │       └── PartitionedTable      a partitioned table's indexed or key column cannot move
    │                                 online, or a unique key lacks its partition key
    └── RetryableError                try again later; the request is redelivered
        ├── DatabaseUnavailable       cannot connect or the connection broke
        ├── LockWaitTimeout           another heal held the advisory lock for too long
        ├── LockBudgetExhausted       a statement kept timing out on a table lock
        └── KafkaUnavailable          the broker cannot be reached or refuses our credentials

Foreign exceptions (asyncpg, OSError) are translated at the engine's boundary with
``raise … from exc``; messages say what happened in gerunds ("applying statement 3 of 7 (…)")
and what to do next.
"""

from __future__ import annotations


class SchemahealError(Exception):
    """Base of every error the worker raises on purpose."""

    code = "error"


class PermanentError(SchemahealError):
    """Retrying the same request would fail the same way."""

    code = "permanent"


class ConfigurationError(PermanentError):
    code = "configuration"


class UnsafeConnectionError(PermanentError):
    code = "unsafe-connection"


class StatementFailed(PermanentError):
    code = "statement-failed"


class MigrationRefused(PermanentError):
    code = "migration-refused"


class MigrationChanged(MigrationRefused):
    code = "migration-changed"


class SwapRefused(MigrationRefused):
    code = "swap-refused"


class AbandonRefused(MigrationRefused):
    code = "abandon-refused"


class PartitionedTable(MigrationRefused):
    code = "partitioned-table"


class RetryableError(SchemahealError):
    """A later attempt may succeed."""

    code = "retryable"


class DatabaseUnavailable(RetryableError):
    code = "database-unavailable"


class LockWaitTimeout(RetryableError):
    code = "lock-wait-timeout"


class LockBudgetExhausted(RetryableError):
    code = "lock-budget-exhausted"


class KafkaUnavailable(RetryableError):
    code = "kafka-unavailable"


#: the codes of a heal's result that leave its request to a later attempt (not answered)
RETRYABLE_CODES = frozenset(
    error.code for error in (DatabaseUnavailable, LockWaitTimeout, LockBudgetExhausted)
)
