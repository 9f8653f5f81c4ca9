"""The SQLAlchemy adapter: every feature real applications use, and loud refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from contracts import ManifestError, canonical_json
from contracts.from_sqlalchemy import manifest_from_metadata

NEXUS_MANIFEST = Path(__file__).parents[2] / "examples" / "nexus" / "manifest.json"


def nexus_manifest_dict() -> dict[str, Any]:
    """The committed manifest of the seed's platform."""
    return json.loads(NEXUS_MANIFEST.read_text())  # type: ignore[no-any-return]


def test_committed_nexus_manifest_is_what_the_models_give() -> None:
    from examples.nexus.models import Base

    built = manifest_from_metadata(Base.metadata, service="orchestrator", database="nexus")
    assert json.loads(canonical_json(built)) == nexus_manifest_dict(), (
        "examples/nexus/manifest.json is stale: run `make examples`"
    )


def rich_metadata() -> sa.MetaData:
    """A schema with the features the issue lists: keys, enums, identity, sequences, …"""
    md = sa.MetaData()
    mood = sa.Enum("sad", "ok", "happy", name="mood")
    sa.Table(
        "accounts",
        md,
        sa.Column("region", sa.String(8), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("mood", mood, server_default="ok", nullable=False),
        sa.Column("balance", sa.Numeric(12, 2), server_default=sa.text("0"), nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("tags", pg.ARRAY(sa.Text), server_default=sa.text("'{}'")),
        sa.Column("doc", pg.JSONB),
        sa.Column("email_lower", sa.Text, sa.Computed("lower(email)", persisted=True)),
        sa.CheckConstraint("balance >= 0", name="accounts_balance_nonneg"),
        sa.Index("ix_accounts_email_lower", sa.func.lower(sa.text("email")), unique=True),
        sa.Index("ix_accounts_doc", "doc", postgresql_using="gin",
                 postgresql_ops={"doc": "jsonb_path_ops"}),
        sa.Index("ix_accounts_happy", "number", postgresql_where=sa.text("mood = 'happy'")),
        sa.Index("ix_accounts_number_desc", sa.desc("number"), postgresql_include=["email"]),
        sa.Index("ix_mysql_only", "email").ddl_if(dialect="mysql"),
        comment="customer accounts",
    )  # fmt: skip
    invoice_seq = sa.Sequence("invoice_numbers", start=1000, increment=1, metadata=md)
    sa.Table(
        "invoices",
        md,
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("number", sa.BigInteger, invoice_seq, nullable=False, unique=True),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("account_number", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["region", "account_number"],
            ["accounts.region", "accounts.number"],
            ondelete="CASCADE",
            onupdate="RESTRICT",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    return md


def test_rich_models_become_a_faithful_manifest() -> None:
    m = manifest_from_metadata(rich_metadata(), service="billing", database="main")
    assert [(e.name, e.labels) for e in m.enums] == [("mood", ("sad", "ok", "happy"))]
    [seq] = m.sequences
    assert (seq.name, seq.start) == ("invoice_numbers", 1000)
    accounts, invoices = m.tables
    cols = {c.name: c for c in accounts.columns}
    assert cols["mood"].type == "public.mood"
    assert cols["mood"].default == "'ok'"
    assert cols["balance"].type == "numeric(12,2)"
    assert cols["tags"].type == "text[]"
    assert cols["email_lower"].generated == "lower(email)"
    assert accounts.primary_key is not None
    assert accounts.primary_key.columns == ("region", "number")
    assert accounts.comment == "customer accounts"
    indexes = {i.name: i for i in accounts.indexes}
    assert "ix_mysql_only" not in indexes
    assert indexes["ix_accounts_doc"].method == "gin"
    assert indexes["ix_accounts_doc"].elements[0].opclass == "jsonb_path_ops"
    assert indexes["ix_accounts_happy"].where == "mood = 'happy'"
    assert indexes["ix_accounts_email_lower"].unique
    assert indexes["ix_accounts_email_lower"].elements[0].expression == "lower(email)"
    desc = indexes["ix_accounts_number_desc"]
    assert (desc.elements[0].column, desc.elements[0].order, desc.elements[0].nulls, desc.include) == (
        "number",
        "desc", "first", ("email",),
    )  # fmt: skip
    assert [c.expression for c in accounts.checks] == ["balance >= 0"]
    icols = {c.name: c for c in invoices.columns}
    assert icols["id"].identity is not None and icols["id"].identity.always
    assert icols["number"].default is None  # client-side in SQLAlchemy, as create_all() does
    assert icols["created_at"].default == "now()"
    [fkey] = invoices.foreign_keys
    assert (fkey.on_delete, fkey.on_update, fkey.deferrable, fkey.initially_deferred) == (
        "CASCADE", "RESTRICT", True, True,
    )  # fmt: skip
    assert [u.name for u in invoices.unique] == ["invoices_number_key"]


def test_serial_keys_become_their_owned_sequence() -> None:
    md = sa.MetaData()
    sa.Table("tenants", md, sa.Column("id", sa.Integer, primary_key=True))
    m = manifest_from_metadata(md, service="s", database="d")
    [seq] = m.sequences
    assert (seq.name, seq.data_type) == ("tenants_id_seq", "integer")
    assert seq.owned_by is not None and seq.owned_by.column == "id"
    assert m.tables[0].columns[0].default == "nextval('public.tenants_id_seq')"


def test_what_has_no_manifest_form_is_refused_loudly() -> None:
    md = sa.MetaData()
    sa.Table(
        "bookings",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("room", sa.Integer),
        pg.ExcludeConstraint(("room", "=")),
        postgresql_partition_by="RANGE (id)",
    )
    with pytest.raises(ManifestError) as caught:
        manifest_from_metadata(md, service="s", database="d")
    text = str(caught.value)
    assert "ExcludeConstraint" in text
    assert "partition_by" in text


def test_unsafe_sql_in_models_is_refused_like_any_manifest() -> None:
    md = sa.MetaData()
    sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("x", sa.Text, server_default=sa.text("pg_read_file('/etc/passwd')")),
    )
    with pytest.raises(ManifestError, match="not allowed"):
        manifest_from_metadata(md, service="s", database="d")


@pytest.mark.parametrize("persisted", [None, False])
def test_computed_columns_must_be_explicitly_stored(persisted: bool | None) -> None:
    """Unset, SQLAlchemy makes a VIRTUAL column on PostgreSQL 18 and a STORED one before."""
    md = sa.MetaData()
    sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.Integer, sa.Computed("a + 1", persisted=persisted)),
    )
    with pytest.raises(ManifestError, match="persisted=True"):
        manifest_from_metadata(md, service="s", database="d")
