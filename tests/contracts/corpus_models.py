"""Minimal models for the classes of model code the real-world corpus found beyond issue 12's list
(tests/corpus): one function each, a fresh ``MetaData``, used like :mod:`adapter_models`."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg


def schema_type_checks() -> sa.MetaData:
    """``Boolean``/``Enum(create_constraint=True)``: SQLAlchemy adds a CHECK that it emits only
    where the type is not native -- never for a boolean or a native enum on PostgreSQL, always
    for ``Enum(native_enum=False)`` (mlflow)."""
    md = sa.MetaData()
    sa.Table(
        "metrics",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("is_nan", sa.Boolean(create_constraint=True), nullable=False),
        sa.Column("kind", sa.Enum("a", "b", name="metric_kind", create_constraint=True)),
        sa.Column(
            "stage",
            sa.Enum("new", "old", name="stage", native_enum=False, create_constraint=True),
        ),
    )
    return md


def percent_in_check() -> sa.MetaData:
    """A ``%`` in a CHECK and an index predicate: PostgreSQL receives it once (langflow)."""
    md = sa.MetaData()
    sa.Table(
        "links",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text),
        sa.CheckConstraint("url LIKE 'https://%'", name="links_https"),
        sa.Index("ix_links_http", "url", postgresql_where=sa.text("url LIKE 'http://%'")),
    )
    return md


def normalised_generated() -> sa.MetaData:
    """A generated column and an expression index PostgreSQL stores in another spelling: an
    untyped ``text[]`` literal becomes ``'{a,b}'::text[]`` (phoenix)."""
    md = sa.MetaData()
    path = sa.column("message", pg.JSONB)[("session", "id")].astext
    sa.Table(
        "messages",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message", pg.JSONB),
        sa.Column(
            "flag",
            sa.Boolean,
            sa.Computed(
                "COALESCE(CAST(message #>> '{metadata, phoenix, flag}' AS BOOLEAN), FALSE)",
                persisted=True,
            ),
        ),
        sa.Index("ix_messages_session", path, postgresql_where=path.is_not(None)),
    )
    return md


def sql_syntax_functions() -> sa.MetaData:
    """``func.trim(x)`` is SQL-standard syntax, which PostgreSQL keeps: create_all's CHECK reads
    back ``TRIM(BOTH FROM x)``, and so must the heal's (langflow)."""
    md = sa.MetaData()
    users = sa.Table(
        "users",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(50)),
    )
    users.append_constraint(
        sa.CheckConstraint(sa.func.length(sa.func.trim(users.c.name)) > 0, name="users_named")
    )
    sa.Index("ix_users_trimmed", sa.func.trim(users.c.name))
    return md


def dialect_variants() -> sa.MetaData:
    """``Integer().with_variant(BigInteger(), "postgresql")``: create_all makes a bigint (a
    BIGSERIAL key), as the PostgreSQL variant says (phoenix)."""
    md = sa.MetaData()
    big = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
    sa.Table(
        "spans",
        md,
        sa.Column("id", big, primary_key=True),
        sa.Column("parent", big),
        sa.Column("flag", sa.Boolean().with_variant(sa.Boolean(create_constraint=True), "sqlite")),
    )
    return md


def moment_defaults() -> sa.MetaData:
    """``server_default="now()"`` is a *string*: create_all writes ``DEFAULT 'now()'``, which
    PostgreSQL turns into the moment of the CREATE (letta)."""
    md = sa.MetaData()
    sa.Table(
        "archives",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default="now()"),
        sa.Column("day", sa.Date, server_default="today"),
        sa.Column("forever", sa.DateTime, server_default="infinity"),
    )
    return md


CORPUS_CLASSES = [
    schema_type_checks,
    percent_in_check,
    normalised_generated,
    sql_syntax_functions,
    dialect_variants,
    moment_defaults,
]
