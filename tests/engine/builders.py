"""Tiny builders for engine values: ``realm(table("users", column("id", "uuid")))``."""

from __future__ import annotations

from typing import Any

from worker.engine import model as m


def column(name: str, type_: str = "text", **extra: Any) -> m.Column:
    return m.Column(name=name, type=type_, **extra)


def table(name: str, *columns: m.Column, schema: str = "public", **extra: Any) -> m.Table:
    return m.Table(schema=schema, name=name, columns=columns, **extra)


def realm(*tables: m.Table, schemas: tuple[str, ...] = ("public",), **extra: Any) -> m.Realm:
    return m.Realm(schemas=frozenset(schemas), tables=tables, **extra)


def pk(name: str, *columns: str) -> m.PrimaryKey:
    return m.PrimaryKey(name=name, columns=columns)


def index(name: str, *columns: str, **extra: Any) -> m.Index:
    return m.Index(name=name, elements=tuple(m.IndexElement(column=c) for c in columns), **extra)


def fk(
    name: str, columns: tuple[str, ...], ref: str, refs: tuple[str, ...], **extra: Any
) -> m.ForeignKey:
    return m.ForeignKey(
        name=name, columns=columns, ref_schema="public", ref_table=ref, ref_columns=refs, **extra
    )


ID = column("id", "integer", nullable=False)
