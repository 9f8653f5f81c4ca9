"""SQLModel models as applications write them: ``Optional[...]`` columns, ``sa_column=``
overrides, JSON columns, a native enum, a UUID key, a foreign key with an action.

:func:`define` declares them on a base: :data:`Base` (a registry of its own, so the tests do not
add tables to the process-wide ``SQLModel.metadata``), or ``SQLModel`` itself in
:mod:`tests.contracts.sqlmodel_global`, which only a subprocess imports.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import registry
from sqlmodel import JSON, Column, Field, SQLModel


class Role(str, enum.Enum):  # noqa: UP042 (as applications write it)
    admin = "admin"
    member = "member"


def define(base: Any) -> None:
    """Declare the models on ``base`` (SQLModel or a subclass with its own registry)."""

    class Team(base, table=True):  # type: ignore[call-arg,misc,valid-type]
        id: Optional[int] = Field(default=None, primary_key=True)  # noqa: UP045 (as apps write it)
        name: str = Field(index=True, unique=True)
        headquarters: Optional[str] = None  # noqa: UP045

    class Hero(base, table=True):  # type: ignore[call-arg,misc,valid-type]
        id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
        name: str = Field(max_length=100)
        age: Optional[int] = Field(default=None, index=True)  # noqa: UP045
        role: Role = Role.member
        budget: Decimal = Field(default=0, max_digits=10, decimal_places=2)
        team_id: Optional[int] = Field(default=None, foreign_key="team.id", ondelete="CASCADE")  # noqa: UP045
        created: datetime = Field(
            sa_column=Column(
                sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
            )
        )
        powers: dict[str, Any] = Field(
            default_factory=dict,
            sa_column=Column(pg.JSONB, nullable=False, server_default="{}"),
        )
        notes: list[str] = Field(default_factory=list, sa_type=JSON)


class Base(SQLModel, registry=registry()):  # type: ignore[call-arg]
    """A SQLModel base with its own registry (and so its own metadata)."""


define(Base)
