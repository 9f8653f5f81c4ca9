"""Minimal models, one per class of model code that real applications use (issue 12).

Each function returns a fresh ``MetaData``; tests/contracts check the manifest built from it and
tests/engine/test_equivalence.py heals an empty database from it and compares with create_all.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg


def qualified_expressions() -> sa.MetaData:
    """CHECK, index key and predicate built from column objects: compiled ``items.status``."""
    md = sa.MetaData()
    items = sa.Table(
        "items",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("qty", sa.Integer),
        sa.Column("data", pg.JSONB),
    )
    items.append_constraint(sa.CheckConstraint(items.c.qty > 0, name="items_qty_positive"))
    items.append_constraint(sa.CheckConstraint(items.c.status.in_(["new", "done"])))
    sa.Index("ix_items_lower_name", sa.func.lower(items.c.name))
    sa.Index("ix_items_new", items.c.name, postgresql_where=items.c.status == "new")
    sa.Index("ix_items_kind", items.c.data["kind"].astext)
    return md


def text_index_elements() -> sa.MetaData:
    """Index elements written as text with their ordering, NULLS order and operator class (and
    an index with a storage parameter)."""
    md = sa.MetaData()
    sa.Table(
        "events",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True)),
        sa.Column("name", sa.Text),
        sa.Index("ix_events_created", sa.text("created DESC")),
        sa.Index("ix_events_name_first", sa.text("name ASC NULLS FIRST")),
        sa.Index("ix_events_name_pattern", sa.text("name text_pattern_ops")),
        sa.Index("ix_events_lower", sa.text("lower(name) DESC")),
        sa.Index("ix_events_dense", "created", postgresql_with={"fillfactor": 70}),
    )
    return md


CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def long_convention_names() -> sa.MetaData:
    """A naming convention whose names pass 63 characters: SQLAlchemy shortens them."""
    md = sa.MetaData(naming_convention=CONVENTION)
    sa.Table(
        "subscription_plan_catalogue_entries",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("marketplace_listing_identifier", sa.String(40), nullable=False),
        sa.Column("regional_availability_zone_code", sa.String(8), nullable=False),
        sa.UniqueConstraint("marketplace_listing_identifier", "regional_availability_zone_code"),
    )
    sa.Table(
        "subscription_entitlement_grant_records",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "subscription_plan_catalogue_entry_id",
            sa.ForeignKey("subscription_plan_catalogue_entries.id"),
            index=True,
        ),
        sa.Column("quantity", sa.Integer),
        sa.CheckConstraint("quantity >= 0", name="quantity_is_never_negative_for_any_grant"),
    )
    return md


def long_check() -> sa.MetaData:
    """A CHECK of about 10 kB, as models that list every allowed value generate."""
    md = sa.MetaData()
    values = ", ".join(f"'currency_code_{i:04d}'" for i in range(500))
    sa.Table(
        "prices",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("currency", sa.String(20)),
        sa.CheckConstraint(f"currency IN ({values})", name="prices_currency_known"),
    )
    return md


def unusual_names() -> sa.MetaData:
    """Names PostgreSQL stores as quoted identifiers: mixed case, dots, dashes, spaces."""
    md = sa.MetaData()
    sa.Table(
        "Parent",
        md,
        sa.Column("parentId", sa.Integer, primary_key=True),
        sa.Column("Display Name", sa.Text, index=True),
    )
    sa.Table(
        "order-items",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer),
        sa.Column("Größe", sa.Integer, sa.CheckConstraint('"Größe" > 0')),
        sa.ForeignKeyConstraint(["parent_id"], ["Parent.parentId"], name="parent.parent_id"),
        sa.Index("IX Mixed-Case", "parent_id"),
    )
    return md


def compatible_foreign_keys() -> sa.MetaData:
    """References between types PostgreSQL accepts: text to varchar, integer to bigint."""
    md = sa.MetaData()
    sa.Table(
        "currencies",
        md,
        sa.Column("code", sa.String(3), primary_key=True),
        sa.Column("number", sa.BigInteger, unique=True),
    )
    sa.Table(
        "wallets",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("currency", sa.Text, sa.ForeignKey("currencies.code")),
        sa.Column("currency_number", sa.Integer, sa.ForeignKey("currencies.number")),
    )
    return md


class Status(sa.TypeDecorator[Any]):
    """A TypeDecorator over a native enum, as applications wrap their enums."""

    impl = sa.Enum("active", "archived", name="status_kind")
    cache_ok = True


def decorated_enum() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "projects",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("status", Status(), nullable=False, server_default="active"),
    )
    return md


def unique_on_primary_key() -> sa.MetaData:
    """UNIQUE on exactly the primary key's columns: PostgreSQL folds it into the key."""
    md = sa.MetaData()
    sa.Table("tokens", md, sa.Column("id", sa.Integer, primary_key=True, unique=True))
    sa.Table(
        "memberships",
        md,
        sa.Column("org", sa.Integer, primary_key=True),
        sa.Column("member", sa.Integer, primary_key=True),
        sa.UniqueConstraint("org", "member", name="memberships_org_member_uq"),
        sa.UniqueConstraint("member", "org", name="memberships_member_org_uq"),
    )
    named = sa.MetaData(naming_convention=CONVENTION)
    sa.Table("sessions", named, sa.Column("id", sa.Integer, primary_key=True, unique=True))
    for table in named.tables.values():
        table.to_metadata(md)
    return md


def normalised_defaults() -> sa.MetaData:
    """Server defaults PostgreSQL stores in another spelling."""
    md = sa.MetaData()
    sa.Table(
        "flags",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("enabled", sa.Boolean, server_default="0", nullable=False),
        sa.Column("visible", sa.Boolean, server_default="1"),
        sa.Column("hidden", sa.Boolean, server_default=sa.text("'f'")),
        sa.Column("count", sa.Integer, server_default="0"),
        sa.Column("ratio", sa.Numeric(5, 2), server_default="0"),
        sa.Column("since", sa.DateTime, server_default="2020-01-01"),
        sa.Column("note", sa.String(20), server_default=""),
    )
    return md


def fetched_value() -> sa.MetaData:
    """``server_default=FetchedValue()``: the server fills it by other means (a trigger)."""
    md = sa.MetaData()
    sa.Table(
        "audited",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("changed_at", sa.DateTime, server_default=sa.FetchedValue()),
    )
    return md


def metadata_sequence() -> sa.MetaData:
    """A sequence declared on the MetaData alone, used by a ``nextval`` server default."""
    md = sa.MetaData()
    numbers = sa.Sequence("order_numbers", start=100, metadata=md)
    sa.Table(
        "orders",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("number", sa.BigInteger, server_default=numbers.next_value(), nullable=False),
        sa.Column("other", sa.BigInteger, server_default=sa.text("nextval('order_numbers')")),
    )
    return md


def wide_serials() -> sa.MetaData:
    """Autoincrement keys of BigInteger and SmallInteger: BIGSERIAL and SMALLSERIAL."""
    md = sa.MetaData()
    sa.Table("big_things", md, sa.Column("id", sa.BigInteger, primary_key=True))
    sa.Table("small_things", md, sa.Column("id", sa.SmallInteger, primary_key=True))
    return md


def vector_column() -> sa.MetaData:
    """pgvector's ``Vector`` with an HNSW index, and a trigram index: the manifest lists the
    extensions the type, the access method and the operator classes come from."""
    from pgvector.sqlalchemy import Vector

    md = sa.MetaData()
    sa.Table(
        "embeddings",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("embedding", Vector(3)),
        sa.Column("title", sa.Text),
        sa.Index(
            "ix_embeddings_embedding",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
            postgresql_with={"m": 16, "ef_construction": 64},
        ),
        sa.Index(
            "ix_embeddings_title_trgm",
            "title",
            postgresql_using="gin",
            postgresql_ops={"title": "gin_trgm_ops"},
        ),
    )
    return md


def extension_function() -> sa.MetaData:
    """A server default calling an extension's function: ``uuid_generate_v4()`` (uuid-ossp)."""
    md = sa.MetaData()
    sa.Table(
        "tickets",
        md,
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("uuid_generate_v4()")),
    )
    return md


CLASSES = [
    qualified_expressions,
    text_index_elements,
    long_convention_names,
    long_check,
    unusual_names,
    compatible_foreign_keys,
    decorated_enum,
    unique_on_primary_key,
    normalised_defaults,
    fetched_value,
    metadata_sequence,
    wide_serials,
    vector_column,
    extension_function,
]
