"""The desired realm: a validated manifest (pydantic, contracts) as the engine's frozen values.

Building it from a 1000-table manifest takes tens of milliseconds, and hashing the manifest as
much again; thousands of replicas send the same few manifests. :func:`prepare` keeps the realms
of the most recently used manifest hashes (:data:`REALMS`): a realm is a function of what the
hash covers (everything but the service and database names), so equal hashes share one frozen
realm, and a changed manifest, having another hash, can never be answered with an old one.
"""

from __future__ import annotations

from dataclasses import dataclass

import contracts as c
from contracts.types import EXTENSION_OPCLASSES
from worker.engine import model as m
from worker.engine.cache import BoundedCache
from worker.engine.normalize import qualify_extension_functions

#: Realms kept: 64 manifests and 20,000 tables at most (about 1.4 KB a table: ~28 MB).
CACHED_MANIFESTS, CACHED_TABLES = 64, 20_000
REALMS: BoundedCache[str, m.Realm] = BoundedCache(entries=CACHED_MANIFESTS, weight=CACHED_TABLES)


@dataclass(frozen=True, slots=True, kw_only=True)
class Desired:
    """What a manifest asks of the database, as the engine uses it: its hash and its realm."""

    manifest_hash: str
    realm: m.Realm


def prepare(manifest: c.Manifest) -> Desired:
    """The manifest's hash and desired realm, the realm from :data:`REALMS` when kept there."""
    manifest_hash = c.manifest_hash(manifest)
    realm = REALMS.get(manifest_hash)
    if realm is None:
        realm = desired_state(manifest)
        REALMS.put(manifest_hash, realm, weight(realm))
    return Desired(manifest_hash=manifest_hash, realm=realm)


def weight(realm: m.Realm) -> int:
    """What a realm counts for in a cache: its tables (at least 1)."""
    return max(1, len(realm.tables))


def desired_state(manifest: c.Manifest) -> m.Realm:
    """Translate a canonical manifest (from ``contracts.load_manifest``) into a :class:`Realm`."""
    extension_schemas: dict[str, str] = {
        e.name: e.schema_ or manifest.schemas[0] for e in manifest.extensions
    }
    return m.Realm(
        schemas=frozenset(manifest.schemas),
        extensions=tuple(
            m.Extension(name=e.name, schema=e.schema_ or manifest.schemas[0])
            for e in manifest.extensions
        ),
        enums=tuple(
            m.EnumType(schema=e.schema_, name=e.name, labels=e.labels) for e in manifest.enums
        ),
        sequences=tuple(_sequence(s) for s in manifest.sequences),
        tables=tuple(_table(t, extension_schemas) for t in manifest.tables),
    )


def _sequence(seq: c.Sequence) -> m.Sequence:
    owner = (seq.owned_by.table, seq.owned_by.column) if seq.owned_by else None
    return m.Sequence(
        schema=seq.schema_,
        name=seq.name,
        data_type=seq.data_type,
        start=seq.start,
        increment=seq.increment,
        min_value=seq.min_value,
        max_value=seq.max_value,
        cycle=seq.cycle,
        cache=seq.cache,
        owned_by=owner,
    )


def _table(table: c.Table, extension_schemas: dict[str, str]) -> m.Table:
    pk = table.primary_key
    return m.Table(
        schema=table.schema_,
        name=table.name,
        columns=tuple(_column(col, extension_schemas) for col in table.columns),
        primary_key=m.PrimaryKey(name=pk.name or "", columns=pk.columns) if pk else None,
        unique=tuple(
            m.UniqueConstraint(
                name=u.name or "", columns=u.columns, nulls_not_distinct=u.nulls_not_distinct
            )
            for u in table.unique
        ),
        foreign_keys=tuple(_foreign_key(fk) for fk in table.foreign_keys),
        checks=tuple(
            m.CheckConstraint(name=k.name or "", expression=k.expression) for k in table.checks
        ),
        indexes=tuple(_index(ix, extension_schemas) for ix in table.indexes),
        comment=table.comment or None,  # PostgreSQL stores an empty comment as none at all
    )


def _column(col: c.Column, extension_schemas: dict[str, str]) -> m.Column:
    identity = None
    if col.identity is not None:
        identity = m.Identity(
            always=col.identity.always, start=col.identity.start, increment=col.identity.increment
        )
    column = m.Column(
        name=col.name,
        type=col.type,
        nullable=col.nullable,
        default=qualify_extension_functions(col.default, extension_schemas),
        identity=identity,
        generated=col.generated,
        comment=col.comment or None,  # as for tables: '' is no comment
        intent=_intent(col),
    )
    return m.interned(column)


def _intent(col: c.Column) -> m.Intent | None:
    intent = m.Intent(
        renamed_from=col.renamed_from, using=col.using, reverse=col.reverse, backfill=col.backfill
    )
    return None if intent == m.Intent() else intent


def _foreign_key(fk: c.ForeignKey) -> m.ForeignKey:
    return m.ForeignKey(
        name=fk.name or "",
        columns=fk.columns,
        ref_schema=fk.references.schema_,
        ref_table=fk.references.table,
        ref_columns=fk.references.columns,
        on_delete=fk.on_delete,
        on_update=fk.on_update,
        deferrable=fk.deferrable,
        initially_deferred=fk.initially_deferred,
    )


def _index(ix: c.Index, extension_schemas: dict[str, str]) -> m.Index:
    return m.Index(
        name=ix.name or "",
        unique=ix.unique,
        method=ix.method,
        elements=tuple(
            m.interned(
                m.IndexElement(
                    column=e.column,
                    expression=e.expression,
                    opclass=e.opclass,
                    opclass_schema=extension_schemas.get(
                        EXTENSION_OPCLASSES.get(e.opclass or "", "")
                    ),
                    descending=e.order == "desc",
                    nulls_first=e.nulls == "first",
                )
            )
            for e in ix.elements
        ),
        include=ix.include,
        storage=tuple(ix.storage.items()),
        where=ix.where,
    )
