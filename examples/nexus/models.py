"""The seed's platform (Nexus v4.4) as SQLAlchemy models: the running example of schemaheal.

Legacy tables keep INTEGER keys (``tenants``, ``tools``, ``credentials``); new tables use
``UUID PRIMARY KEY DEFAULT gen_random_uuid()``; every new reference to a legacy table uses the
legacy key's type, as the seed's guide demands. ``chat_conversations`` and ``chat_messages`` are
exactly the seed's DDL, plus ``customer_id`` on conversations.

Turn these models into a manifest with::

    schemaheal manifest --from-sqlalchemy examples.nexus.models:Base -o manifest.json
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TIMESTAMPTZ = TIMESTAMP(timezone=True)


class Base(DeclarativeBase):
    """Declarative base of the Nexus platform's models."""


class Tenant(Base):
    """Config and credentials of one customer (legacy: INTEGER key)."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    openai_api_key: Mapped[str | None] = mapped_column(Text)  # healed in by the seed
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))


class Tool(Base):
    """A tool a tenant enabled (legacy: INTEGER key)."""

    __tablename__ = "tools"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class Credential(Base):
    """A secret of a tenant for a provider (legacy: INTEGER key; scope and category are new)."""

    __tablename__ = "credentials"
    __table_args__ = (Index("ix_credentials_tenant_category", "tenant_id", "category"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(64))
    secret: Mapped[str] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(String(64))  # healed in by the seed
    category: Mapped[str | None] = mapped_column(String(64))  # healed in by the seed


class BusinessAsset(Base):
    """Generated content, cached as JSONB (new table: UUID key)."""

    __tablename__ = "business_assets"
    __table_args__ = (
        Index(
            "ix_business_assets_content",
            "content",
            postgresql_using="gin",
            postgresql_ops={"content": "jsonb_path_ops"},
        ),
    )
    id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(32))
    content: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))


class ChatMedia(Base):
    """Media attached to chat messages (new table: UUID key)."""

    __tablename__ = "chat_media"
    id: Mapped[UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    url: Mapped[str] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))


class ChatConversation(Base):
    """The seed's ``chat_conversations`` (Nexus v4.4), plus ``customer_id``."""

    __tablename__ = "chat_conversations"
    __table_args__ = (UniqueConstraint("tenant_id", "customer_id", "channel"),)
    id: Mapped[UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    channel: Mapped[str] = mapped_column(String(32))
    channel_source: Mapped[str] = mapped_column(String(32), server_default="whatsapp")
    display_name: Mapped[str | None] = mapped_column(String(255))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=text("'{}'"))
    last_message_preview: Mapped[str | None] = mapped_column(Text)
    last_message_at: Mapped[datetime | None] = mapped_column(TIMESTAMPTZ)
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
    customer_id: Mapped[str | None] = mapped_column(String(128), index=True)  # healed in


class ChatMessage(Base):
    """The seed's ``chat_messages`` (Nexus v4.4)."""

    __tablename__ = "chat_messages"
    id: Mapped[UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    conversation_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("chat_conversations.id", ondelete="CASCADE")
    )
    role: Mapped[str] = mapped_column(String(32))
    message_type: Mapped[str] = mapped_column(String(32), server_default="text")
    content: Mapped[str | None] = mapped_column(Text)
    media_id: Mapped[UUID | None] = mapped_column(ForeignKey("chat_media.id"))
    channel_source: Mapped[str | None] = mapped_column(String(32), server_default="whatsapp")
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB, server_default=text("'{}'"))
    created_at: Mapped[datetime] = mapped_column(TIMESTAMPTZ, server_default=text("now()"))
