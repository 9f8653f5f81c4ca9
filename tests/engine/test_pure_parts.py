"""Small pure parts: the lock key, literals, and building a realm from catalog rows."""

from __future__ import annotations

import pytest

from tests.engine.builders import column, realm, table
from worker.engine.apply import command_of
from worker.engine.defaults import adopt_defaults, default_questions
from worker.engine.inspect import FIELDS, build_realm
from worker.engine.lock import advisory_key
from worker.engine.normalize import qualify_extension_functions
from worker.engine.render import literal


def test_advisory_key_is_pinned() -> None:
    """The key must never change between releases: old and new workers share the lock."""
    # sha256(b"schemaheal\0nexus\0public")[:8] as a signed big-endian int64
    assert advisory_key("nexus", "public") == 2958453699966329822
    assert advisory_key("nexus", "app") != advisory_key("nexus", "public")
    assert advisory_key("other", "public") != advisory_key("nexus", "public")
    assert -(2**63) <= advisory_key("x" * 500, "y") < 2**63


def test_literals_double_quotes_and_nothing_else() -> None:
    assert literal("it's") == "'it''s'"
    assert literal("a\\b") == "'a\\b'"  # standard_conforming_strings is on


def rows(**extra: list[dict[str, object]]) -> dict[str, object]:
    """Catalog rows as fetch_catalog returns them: written as dicts, given as tuples in the
    order of FIELDS (asyncpg records are read by position); a missing field is a KeyError."""
    base: dict[str, list[dict[str, object]]] = {
        "server": [{"server_version": 180001, "block_size": 8192, "schemas": ["public"]}],
        "extensions": [{"name": "plpgsql", "schema": "pg_catalog"}],
        "enums": [{"schema": "public", "name": "mood", "labels": ["sad", "ok"]}],
        "sequences": [],
        "tables": [{"oid": 1, "schema": "public", "name": "t", "comment": "c", "pages": 2,
                    "partitioned": False, "part_schemas": [], "part_names": [], "parent": None}],
        "partitions": [],
        "columns": [
            {"rel": 1, "num": 1, "name": "id", "type": "integer", "not_null": True, "expr": None,
             "identity": "a", "generated": "", "comment": None},
            {"rel": 1, "num": 2, "name": "g", "type": "integer", "not_null": False,
             "expr": "(id + 1)", "identity": "", "generated": "s", "comment": None},
        ],
        "constraints": [
            {"rel": 1, "name": "t_pkey", "type": "p", "valid": True, "keys": "1", "ref_rel": 0,
             "ref_schema": None, "ref_table": None, "ref_keys": None, "on_delete": " ",
             "on_update": " ", "deferrable": False, "deferred": False, "expr": None,
             "index": "t_pkey", "nulls_not_distinct": False},
        ],
        "indexes": [
            {"rel": 1, "name": "t_pkey", "unique": True, "valid": True, "method": "btree",
             "key_count": 1, "keys": "1", "options": "0",
             "opclasses": "1978", "predicate": None, "key_texts": None, "storage": None},
            {"rel": 1, "name": "t_g_idx", "unique": False, "valid": False, "method": "btree",
             "key_count": 1, "keys": "2 1", "options": "3",
             "opclasses": "9999", "predicate": "(g > 0)", "key_texts": None,
             "storage": ["fillfactor=70", "deduplicate_items=false"]},
        ],
        "opclasses": [{"oid": 9999, "name": "int4_special_ops"}],
    }  # fmt: skip
    given = {**base, **extra}
    return {name: [tuple(row[f] for f in FIELDS[name]) for row in given[name]] for name in FIELDS}


def test_build_realm_from_catalog_rows() -> None:
    realm = build_realm(rows())
    assert realm.server_version == 180001
    [t] = realm.tables
    assert (t.qualified, t.comment, t.size_bytes) == ("public.t", "c", 2 * 8192)
    ident, gen = t.columns
    assert ident.identity is not None and ident.identity.always
    assert (gen.generated, gen.default) == ("(id + 1)", None)
    assert t.primary_key is not None and t.primary_key.columns == ("id",)
    g_idx, pkey = t.indexes  # sorted by name
    assert pkey.constraint == "t_pkey"
    assert (g_idx.valid, g_idx.where, g_idx.constraint) == (False, "(g > 0)", None)
    assert (g_idx.elements[0].descending, g_idx.elements[0].nulls_first) == (True, True)
    assert g_idx.elements[0].opclass == "int4_special_ops"  # named: not the type's default
    assert g_idx.storage == (("fillfactor", "70"), ("deduplicate_items", "false"))
    assert pkey.elements[0].opclass is None
    assert g_idx.include == ("id",)
    assert realm.enums[0].labels == ("sad", "ok")


@pytest.mark.parametrize(
    ("sql", "command"),
    [
        ("ALTER TABLE public.t ADD COLUMN IF NOT EXISTS c text", "ALTER TABLE"),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON public.t (a)",
         "CREATE UNIQUE INDEX CONCURRENTLY"),
        ("CREATE TABLE IF NOT EXISTS public.t (\n    id uuid\n)", "CREATE TABLE"),
        ("COMMENT ON COLUMN public.t.c IS 'WHY'", "COMMENT ON COLUMN"),
        ("DROP INDEX CONCURRENTLY IF EXISTS public.i", "DROP INDEX CONCURRENTLY"),
    ],
)  # fmt: skip
def test_the_command_of_a_statement_names_its_spans_and_log_events(sql: str, command: str) -> None:
    assert command_of(sql) == command


def test_only_constant_defaults_spelt_differently_are_asked_of_postgresql() -> None:
    """'0' vs false on a boolean is a question; now() vs a constant, or a default that is the
    same in comparison form, or one PostgreSQL would have to look up (a sequence) is not."""
    current = realm(
        table(
            "t",
            column("a", "boolean", default="false"),
            column("b", "boolean", default="false"),
            column("c", "timestamp with time zone", default="now()"),
            column("d", "integer", default="nextval('public.s'::regclass)"),
            column("e", "text", default="'x'::text"),
            column("f", "integer", default="0"),
        )
    )
    desired = realm(
        table(
            "t",
            column("a", "boolean", default="'0'"),
            column("b", "integer", default="'0'"),  # another type: type drift, not a question
            column("c", "timestamp with time zone", default="'2020-01-01'"),
            column("d", "integer", default="7"),
            column("e", "text", default="'x'"),
            column("f", "integer", default="'0'"),
        )
    )
    questions = default_questions(current, desired)
    assert [(q.column, q.current, q.desired) for q in questions] == [
        ("a", "FALSE", "'0'"),  # both re-written from their parse trees
        ("f", "0", "'0'"),
    ]
    assert questions[0].sql == "('0')::boolean IS NOT DISTINCT FROM (FALSE)::boolean"
    adopted = adopt_defaults(desired, frozenset(questions[:1]))
    [t] = adopted.tables
    assert [c.default for c in t.columns[:2]] == ["false", "'0'"]  # as the catalog prints it
    assert adopted.table("public", "t") is t


def test_extension_functions_are_written_with_their_schema() -> None:
    schemas = {"uuid-ossp": "ext"}
    assert qualify_extension_functions("uuid_generate_v4()", schemas) == "ext.uuid_generate_v4()"
    assert qualify_extension_functions("lower(uuid_generate_v4()::text)", {}) == (
        "lower(uuid_generate_v4()::text)"  # the extension is not listed: left as it is
    )
    assert qualify_extension_functions("now()", schemas) == "now()"
    assert qualify_extension_functions(None, schemas) is None
