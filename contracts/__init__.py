"""schemaheal contracts: what services import to talk to the schemaheal worker.

The manifest models, their validation and canonical form. Everything public is listed in
``__all__``; anything else is internal and may change without notice (see CHANGELOG.md).
"""

from contracts.client import ensure_schema, request_schema
from contracts.errors import (
    BootGateError,
    BootGateTimeout,
    BrokerUnavailable,
    ContractError,
    EventError,
    ManifestError,
    Problem,
    SchemaBlocked,
    SchemaFailed,
    SchemaNotReady,
    SchemaRejected,
)
from contracts.events import SchemaHealed, ServiceHeartbeat, ServiceStarting
from contracts.heartbeat import keep_alive
from contracts.kafka_auth import KafkaAuth
from contracts.manifest import (
    CheckConstraint,
    Column,
    EnumType,
    Extension,
    ForeignKey,
    Identity,
    Index,
    IndexElement,
    Manifest,
    PrimaryKey,
    Reference,
    Sequence,
    Table,
    UniqueConstraint,
)
from contracts.validation import Limits, canonical_json, load_manifest, manifest_hash

__all__ = [
    "BootGateError",
    "BootGateTimeout",
    "BrokerUnavailable",
    "CheckConstraint",
    "Column",
    "ContractError",
    "EnumType",
    "EventError",
    "Extension",
    "ForeignKey",
    "Identity",
    "Index",
    "IndexElement",
    "KafkaAuth",
    "Limits",
    "Manifest",
    "ManifestError",
    "PrimaryKey",
    "Problem",
    "Reference",
    "SchemaBlocked",
    "SchemaFailed",
    "SchemaHealed",
    "SchemaNotReady",
    "SchemaRejected",
    "Sequence",
    "ServiceHeartbeat",
    "ServiceStarting",
    "Table",
    "UniqueConstraint",
    "canonical_json",
    "ensure_schema",
    "keep_alive",
    "load_manifest",
    "manifest_hash",
    "request_schema",
]
