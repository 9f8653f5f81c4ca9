"""One test per class of model code the real-world corpus found beyond issue 12's list; the
models are healed and compared with create_all() in tests/engine/test_equivalence.py."""

from __future__ import annotations

import sqlalchemy as sa

from contracts import Manifest, Table
from contracts.from_sqlalchemy import manifest_from_metadata
from tests.contracts import corpus_models as models


def build(metadata: sa.MetaData) -> Manifest:
    return manifest_from_metadata(metadata, service="s", database="d")


def only_table(metadata: sa.MetaData) -> Table:
    (table,) = build(metadata).tables
    return table


def test_a_types_own_check_is_kept_only_where_postgresql_gets_it() -> None:
    metrics = only_table(models.schema_type_checks())
    assert [c.expression for c in metrics.checks] == ["stage IN ('new', 'old')"]
    assert {c.name: c.type for c in metrics.columns}["stage"] == "character varying(3)"


def test_a_percent_sign_is_written_once() -> None:
    links = only_table(models.percent_in_check())
    assert [c.expression for c in links.checks] == ["url LIKE 'https://%'"]
    assert [i.where for i in links.indexes] == ["url LIKE 'http://%'"]


def test_the_postgresql_variant_of_a_type_is_the_type() -> None:
    manifest = build(models.dialect_variants())
    types = {c.name: c.type for c in manifest.tables[0].columns}
    assert (types["id"], types["parent"]) == ("bigint", "bigint")
    assert [(s.name, s.data_type) for s in manifest.sequences] == [("spans_id_seq", "bigint")]
    assert manifest.tables[0].checks == ()  # the sqlite variant's CHECK is not PostgreSQL's


def test_a_moment_default_is_kept_as_create_all_writes_it() -> None:
    archives = only_table(models.moment_defaults())
    defaults = {c.name: c.default for c in archives.columns}
    assert defaults == {"id": "nextval('public.archives_id_seq')", "created_at": "'now()'",
                        "day": "'today'", "forever": "'infinity'"}  # fmt: skip


def test_sql_syntax_functions_keep_their_syntax() -> None:
    users = only_table(models.sql_syntax_functions())
    assert [c.expression for c in users.checks] == ["length(trim(BOTH FROM name)) > 0"]
    assert users.indexes[0].elements[0].expression == "trim(BOTH FROM name)"
