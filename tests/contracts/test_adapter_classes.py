"""One test per class of real model code the adapter once refused or got wrong (issue 12).

The manifests are checked here; tests/engine/test_equivalence.py heals each model on PostgreSQL
and compares the catalog with create_all()'s.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.schema import CreateIndex, CreateTable

from contracts import Manifest, ManifestError, Table, canonical_json
from contracts.from_sqlalchemy import manifest_from_metadata
from tests.contracts import adapter_models as models


def build(metadata: sa.MetaData, **kwargs: object) -> Manifest:
    return manifest_from_metadata(metadata, service="s", database="d", **kwargs)  # type: ignore[arg-type]


def table_of(manifest: Manifest, name: str) -> Table:
    return next(t for t in manifest.tables if t.name == name)


def test_expressions_lose_their_own_tables_qualifier() -> None:
    items = table_of(build(models.qualified_expressions()), "items")
    checks = {c.name: c.expression for c in items.checks}
    assert checks["items_qty_positive"] == "qty > 0"
    assert checks["items_status_check"] == "status IN ('new', 'done')"
    indexes = {i.name: i for i in items.indexes}
    assert indexes["ix_items_lower_name"].elements[0].expression == "lower(name)"
    assert indexes["ix_items_new"].where == "status = 'new'"
    assert indexes["ix_items_kind"].elements[0].expression == "data ->> 'kind'"


def test_a_column_of_another_table_is_refused_by_name() -> None:
    md = sa.MetaData()
    other = sa.Table("other", md, sa.Column("id", sa.Integer, primary_key=True))
    mine = sa.Table("mine", md, sa.Column("id", sa.Integer, primary_key=True))
    mine.append_constraint(sa.CheckConstraint(other.c.id > 0, name="mine_odd"))
    sa.Index("ix_mine_odd", mine.c.id, postgresql_where=other.c.id > 1)
    with pytest.raises(ManifestError) as caught:
        build(md)
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 2
    assert all("other.id, a column of another table" in p for p in problems)
    assert all("its own table public.mine" in p for p in problems)


def test_text_index_elements_keep_their_ordering_and_operator_class() -> None:
    events = table_of(build(models.text_index_elements()), "events")
    indexes = {i.name: i.elements for i in events.indexes}
    [created] = indexes["ix_events_created"]
    assert (created.column, created.order, created.nulls) == ("created", "desc", "first")
    [first] = indexes["ix_events_name_first"]
    assert (first.column, first.order, first.nulls) == ("name", "asc", "first")
    [pattern] = indexes["ix_events_name_pattern"]
    assert (pattern.column, pattern.opclass) == ("name", "text_pattern_ops")
    [lowered] = indexes["ix_events_lower"]
    assert (lowered.expression, lowered.order) == ("lower(name)", "desc")


def _names_create_all_sends(metadata: sa.MetaData) -> set[str]:
    dialect = pg.dialect()  # type: ignore[no-untyped-call]
    ddl = " ".join(str(CreateTable(t).compile(dialect=dialect)) for t in metadata.sorted_tables)
    ddl += " ".join(
        str(CreateIndex(i).compile(dialect=dialect))
        for t in metadata.sorted_tables
        for i in t.indexes
    )
    return set(re.findall(r"(?:CONSTRAINT|INDEX) (\w+)", ddl))


def test_convention_names_are_shortened_exactly_as_create_all_does() -> None:
    metadata = models.long_convention_names()
    manifest = build(metadata)
    names = set()
    for table in manifest.tables:
        for group in (table.unique, table.foreign_keys, table.checks, table.indexes):
            names.update(item.name or "" for item in group)
        names.add(table.primary_key.name if table.primary_key else "")
    assert names == _names_create_all_sends(metadata)
    shortened = [n for n in names if re.search(r"_[0-9a-f]{4}\Z", n)]
    assert len(shortened) == 4, names  # the unique, foreign key, check and index names
    assert all(len(n) <= 63 for n in names)


def test_a_long_name_written_by_hand_is_still_refused() -> None:
    md = sa.MetaData()
    sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True), sa.Index("i" * 64, "id"))
    with pytest.raises(ManifestError, match="create_all\\(\\) refuses it too"):
        build(md)


def test_a_refused_index_element_gives_one_error_and_no_empty_index() -> None:
    md = sa.MetaData()
    t = sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("x", sa.Text),
        sa.Index("ix_t_text", sa.text("x) WHERE (true")),
    )
    sa.Index("ix_t_sleepy", sa.func.pg_sleep(t.c.x))
    with pytest.raises(ManifestError) as caught:
        build(md)
    problems = sorted(str(p) for p in caught.value.problems)
    assert len(problems) == 2, problems
    assert "index ix_t_sleepy" in problems[0] and "'pg_sleep' is not allowed" in problems[0]
    assert "index ix_t_text" in problems[1] and "index elements only" in problems[1]


def test_a_ten_kilobyte_check_is_kept_whole() -> None:
    [check] = table_of(build(models.long_check()), "prices").checks
    assert len(check.expression) > 10_000
    assert check.expression.endswith("'currency_code_0499')")


def test_names_real_schemas_use_are_kept_as_they_are() -> None:
    manifest = build(models.unusual_names())
    parent, items = table_of(manifest, "Parent"), table_of(manifest, "order-items")
    assert [c.name for c in parent.columns] == ["parentId", "Display Name"]
    assert [i.name for i in parent.indexes] == ["ix_Parent_Display Name"]
    assert [fk.name for fk in items.foreign_keys] == ["parent.parent_id"]
    assert [c.expression for c in items.checks] == ['"Größe" > 0']
    assert manifest.sequences[0].name == "Parent_parentId_seq"
    assert parent.columns[0].default == "nextval('public.\"Parent_parentId_seq\"')"


def test_foreign_keys_between_types_postgresql_joins_are_accepted() -> None:
    wallets = table_of(build(models.compatible_foreign_keys()), "wallets")
    assert len(wallets.foreign_keys) == 2


def test_a_uuid_reference_to_an_integer_key_is_still_refused() -> None:
    md = sa.MetaData()
    sa.Table("legacy", md, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table(
        "new",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("legacy_id", sa.Uuid, sa.ForeignKey("legacy.id")),
    )
    with pytest.raises(ManifestError, match="no equality between the two: make legacy_id integer"):
        build(md)


def test_a_type_decorator_over_a_native_enum_declares_the_enum() -> None:
    manifest = build(models.decorated_enum())
    assert [(e.name, e.labels) for e in manifest.enums] == [("status_kind", ("active", "archived"))]
    assert table_of(manifest, "projects").columns[1].type == "public.status_kind"


def test_unique_on_the_primary_key_is_folded_into_it() -> None:
    manifest = build(models.unique_on_primary_key())
    tokens, memberships = table_of(manifest, "tokens"), table_of(manifest, "memberships")
    sessions = table_of(manifest, "sessions")
    assert (tokens.primary_key and tokens.primary_key.name, tokens.unique) == ("tokens_pkey", ())
    assert memberships.primary_key is not None
    assert memberships.primary_key.name == "memberships_org_member_uq"  # as CREATE TABLE names it
    assert [u.name for u in memberships.unique] == ["memberships_member_org_uq"]  # other order
    assert (sessions.primary_key and sessions.primary_key.name, sessions.unique) == (
        "pk_sessions",
        (),
    )


def test_fetched_value_means_no_default() -> None:
    audited = table_of(build(models.fetched_value()), "audited")
    assert audited.columns[1].default is None


def test_big_and_small_integer_keys_get_sequences_of_their_width() -> None:
    sequences = {s.name: s.data_type for s in build(models.wide_serials()).sequences}
    assert sequences == {"big_things_id_seq": "bigint", "small_things_id_seq": "smallint"}


def test_extension_types_bring_their_extension_and_more_can_be_named() -> None:
    manifest = build(models.vector_column(), extensions=["pgcrypto"])
    assert [e.name for e in manifest.extensions] == ["pg_trgm", "pgcrypto", "vector"]
    indexes = {i.method: i for i in table_of(manifest, "embeddings").indexes}
    assert set(indexes) == {"hnsw", "gin"}
    assert indexes["hnsw"].storage == {"ef_construction": "64", "m": "16"}
    assert table_of(manifest, "embeddings").columns[1].type == "public.vector(3)"


def test_sqlmodel_models_are_a_first_class_input() -> None:
    from tests.contracts.sqlmodel_app import Base

    manifest = build(Base.metadata)
    hero, team = table_of(manifest, "hero"), table_of(manifest, "team")
    columns = {c.name: c for c in hero.columns}
    assert (columns["age"].type, columns["age"].nullable) == ("integer", True)  # Optional[int]
    assert (columns["name"].type, columns["name"].nullable) == ("character varying(100)", False)
    assert (columns["created"].default, columns["created"].nullable) == ("now()", False)
    assert (columns["powers"].type, columns["powers"].default) == ("jsonb", "'{}'")  # sa_column=
    assert columns["notes"].type == "json"  # sa_type=JSON
    assert columns["role"].type == "public.role"
    assert [fk.on_delete for fk in hero.foreign_keys] == ["CASCADE"]
    assert [(i.name, i.unique) for i in team.indexes] == [("ix_team_name", True)]
    assert team.columns[0].default == "nextval('public.team_id_seq')"  # Optional[int] key


def test_manifest_command_takes_sqlmodel_itself_and_extensions() -> None:
    """``--from-sqlalchemy app.models:SQLModel``, run as a user runs it (in its own process)."""
    from tests.contracts.sqlmodel_app import Base

    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "manifest", "--service", "s", "--database", "d",
         "--from-sqlalchemy", "tests.contracts.sqlmodel_global:SQLModel",
         "--extension", "pg_trgm"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    written = json.loads(out.stdout)
    assert [e["name"] for e in written["extensions"]] == ["pg_trgm"]
    in_process = json.loads(canonical_json(build(Base.metadata)))
    assert written["tables"] == in_process["tables"]


def test_options_without_a_manifest_form_are_refused_not_dropped() -> None:
    md = sa.MetaData()
    sa.Table("p", md, sa.Column("a", sa.Integer, primary_key=True))
    sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, sa.Identity(start=1, cycle=True, cache=5), primary_key=True),
        sa.Column("a", sa.Integer, sa.ForeignKey("p.a", match="FULL")),
        sa.UniqueConstraint("a", name="t_a_key", deferrable=True),
    )
    with pytest.raises(ManifestError) as caught:
        build(md)
    text = str(caught.value)
    assert "Identity(cycle, cache=…) has no manifest form" in text
    assert "MATCH FULL has no manifest form" in text
    assert "t_a_key: DEFERRABLE has no manifest form" in text


def test_concurrently_built_indexes_and_more_builtin_types_are_accepted() -> None:
    md = sa.MetaData()
    sa.Table(
        "t",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("during", pg.TSRANGE),
        sa.Column("mac", pg.MACADDR8),
        sa.Index("ix_t_during", "during", postgresql_using="gist", postgresql_concurrently=True),
    )
    t = build(md).tables[0]
    assert [c.type for c in t.columns[1:]] == ["tsrange", "macaddr8"]
    assert [i.name for i in t.indexes] == ["ix_t_during"]


def test_sequences_declared_on_the_metadata_alone_are_declared() -> None:
    manifest = build(models.metadata_sequence())
    sequences = {(s.name, s.start) for s in manifest.sequences}
    assert sequences == {("order_numbers", 100), ("orders_id_seq", None)}
    columns = table_of(manifest, "orders").columns
    assert [c.default for c in columns[1:]] == ["nextval('public.order_numbers')"] * 2


def test_a_default_calling_an_extension_function_brings_the_extension() -> None:
    manifest = build(models.extension_function())
    assert [e.name for e in manifest.extensions] == ["uuid-ossp"]
    assert manifest.tables[0].columns[0].default == "uuid_generate_v4()"
