"""Declared intent (issue 19): renamed_from, using, reverse, backfill — validated like every
other expression, and read by the SQLAlchemy adapter from ``Column.info``."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from contracts import ManifestError, canonical_json, load_manifest, manifest_hash
from contracts.from_sqlalchemy import manifest_from_metadata
from tests.contracts.builders import column, manifest, pk, table

ID = column("id", "integer", nullable=False)


def users(*columns: dict[str, Any]) -> dict[str, Any]:
    return manifest(table("users", ID, *columns, primary_key=pk("id")))


def problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(data)
    return [(p.path, p.message) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("columns", "path", "says"),
    [
        # renamed_from
        ([column("name", renamed_from="name")], "$.tables[0].columns[1]", "names the column itself"),
        ([column("full_name", renamed_from="id")], "$.tables[0].columns[1].renamed_from", "still declared"),
        ([column("a", renamed_from="old"), column("b", renamed_from="old")], "$.tables[0].columns[2].renamed_from", "renamed to both a and b"),
        ([column("a", renamed_from="bad;name")], "$.tables[0].columns[1].renamed_from", ""),
        # expressions: pure, the row's own columns only
        ([column("a", "bigint", renamed_from="old", using="nosuch + 1")], "$.tables[0].columns[1].using", "not a column of this table"),
        ([column("a", "uuid", renamed_from="old", using="gen_random_uuid()")], "$.tables[0].columns[1].using", "volatile"),
        ([column("a", "bigint", renamed_from="old", using="nextval('s')")], "$.tables[0].columns[1].using", "only in a column default"),
        ([column("a", "bigint", renamed_from="old", using="(SELECT 1)")], "$.tables[0].columns[1].using", "not allowed"),
        ([column("a", "text", renamed_from="old", reverse="other.a")], "$.tables[0].columns[1].reverse", "other"),
        ([column("a", "integer", nullable=False, backfill="random()::int")], "$.tables[0].columns[1].backfill", "volatile"),
        ([column("a", "integer", nullable=False, backfill="a + 1")], "$.tables[0].columns[1].backfill", "cannot read a itself"),
        ([column("g", "integer", generated="id * 2"), column("a", "integer", backfill="g")], "$.tables[0].columns[2].backfill", "g is generated"),
        ([column("a", "text", backfill="pg_sleep(1)")], "$.tables[0].columns[1].backfill", "not allowed"),
        # combinations that contradict each other
        ([column("a", "integer", nullable=False, backfill="id", default="0")], "$.tables[0].columns[1]", "cannot be combined with default"),
        ([column("a", "integer", backfill="id", renamed_from="old")], "$.tables[0].columns[1]", "cannot be combined with renamed_from"),
        ([column("a", "text", reverse="a")], "$.tables[0].columns[1]", "name it with renamed_from"),
        ([column("a", "integer", generated="id * 2", renamed_from="old")], "$.tables[0].columns[1]", "generated column"),
        # unknown fields stay errors
        ([column("a", renamed_form="old")], "$.tables[0].columns[1].renamed_form", "unknown field"),
    ],
)  # fmt: skip
def test_bad_intent_is_refused_at_its_path(
    columns: list[dict[str, Any]], path: str, says: str
) -> None:
    found = problems(users(*columns))
    assert any(where == path and says in message for where, message in found), found


def test_intent_is_canonical_and_its_own_qualifiers_are_dropped() -> None:
    loaded = load_manifest(
        users(
            column("full_name", renamed_from="name", reverse="users.full_name"),
            column("big", "bigint", renamed_from="small", using="small::bigint"),
            column("name_length", "integer", nullable=False, backfill="length(full_name)"),
        )
    )
    by_name = {c.name: c for c in loaded.tables[0].columns}
    assert by_name["full_name"].reverse == "full_name"
    assert by_name["big"].using == "CAST(small AS bigint)"
    assert by_name["name_length"].backfill == "length(full_name)"


def test_a_change_in_place_may_read_its_own_column() -> None:
    loaded = load_manifest(manifest(table(
        "users", column("id", "bigint", nullable=False, using="id::bigint"), primary_key=pk("id")
    )))  # fmt: skip
    assert loaded.tables[0].columns[0].using == "CAST(id AS bigint)"


def test_manifests_without_intent_keep_their_canonical_json_and_hash() -> None:
    """The new fields are left out when unset, so no existing manifest's hash moves."""
    plain = load_manifest(users(column("name")))
    assert "renamed_from" not in canonical_json(plain)
    assert "backfill" not in canonical_json(plain)
    renamed = load_manifest(users(column("name", renamed_from="nick")))
    assert manifest_hash(renamed) != manifest_hash(plain)


def _metadata(**info: object) -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("full_name", sa.Text, info=info),
    )
    return metadata


def test_the_adapter_reads_the_intent_from_column_info() -> None:
    metadata = _metadata(schemaheal={"renamed_from": "name", "reverse": "full_name"})
    loaded = manifest_from_metadata(metadata, service="s", database="d")
    full_name = loaded.tables[0].columns[1]
    assert (full_name.renamed_from, full_name.reverse) == ("name", "full_name")
    assert full_name.using is None and full_name.backfill is None


def test_the_adapter_leaves_other_info_keys_alone() -> None:
    loaded = manifest_from_metadata(_metadata(doc="mine"), service="s", database="d")
    assert loaded.tables[0].columns[1].renamed_from is None


@pytest.mark.parametrize(
    ("info", "says"),
    [
        ({"renamed_form": "name"}, "unknown key(s) renamed_form; use renamed_from, using"),
        ({"renamed_from": 3}, '["renamed_from"] must be a string'),
        ("name", "must be a dict"),
        ({"using": "nosuch::text", "renamed_from": "name"}, "nosuch is not a column"),
    ],
)
def test_the_adapter_refuses_bad_intent_saying_where(info: object, says: str) -> None:
    with pytest.raises(ManifestError) as caught:
        manifest_from_metadata(_metadata(schemaheal=info), service="s", database="d")
    assert says in str(caught.value)


def test_sqlmodel_passes_the_intent_through_sa_column_kwargs() -> None:
    from sqlalchemy.orm import registry
    from sqlmodel import Field, SQLModel

    class Base(SQLModel, registry=registry()):  # type: ignore[call-arg]
        pass

    class Account(Base, table=True):  # type: ignore[call-arg]
        id: int = Field(primary_key=True)
        handle: str = Field(sa_column_kwargs={"info": {"schemaheal": {"renamed_from": "login"}}})

    loaded = manifest_from_metadata(Account.metadata, service="s", database="d")
    by_name = {c.name: c for c in loaded.tables[0].columns}
    assert by_name["handle"].renamed_from == "login"
    assert by_name["id"].renamed_from is None
