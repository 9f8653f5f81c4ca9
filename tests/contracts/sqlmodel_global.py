"""The models of :mod:`tests.contracts.sqlmodel_app` on ``SQLModel`` itself, as an application
declares them, for ``schemaheal manifest --from-sqlalchemy tests.contracts.sqlmodel_global:SQLModel``.
Imported only by that subprocess: it adds tables to the process-wide ``SQLModel.metadata``."""

from __future__ import annotations

from sqlmodel import SQLModel

from tests.contracts.sqlmodel_app import define

__all__ = ["SQLModel"]

define(SQLModel)
