"""Loading manifests: every problem reported with its JSON path; canonical form and hash."""

from __future__ import annotations

import json
import random

import pytest

from contracts import ManifestError, canonical_json, load_manifest, manifest_hash
from tests.contracts.builders import TENANTS, column, fk, manifest, pk, table


def problems_of(data: object) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(data)  # type: ignore[arg-type]
    return [str(p) for p in caught.value.problems]


def test_the_seeds_legacy_rule_uuid_reference_to_integer_key_is_refused() -> None:
    assets = table(
        "business_assets",
        column("id", "uuid", nullable=False, default="gen_random_uuid()"),
        column("tenant_id", "uuid"),
        primary_key=pk("id"),
        foreign_keys=[fk(["tenant_id"], "tenants", ["id"])],
    )
    [problem] = problems_of(manifest(TENANTS, assets))
    assert problem.startswith("$.tables[1].foreign_keys[0].columns:")
    assert "make tenant_id integer" in problem


@pytest.mark.parametrize(
    ("data", "path", "says"),
    [
        (manifest(table("T;", column("a"))), "$.tables[0].name", "SEMICOLON"),
        (manifest(table("t", column("a", "int; drop"))), "$.tables[0].columns[0].type", "type"),
        (manifest(table("t", column("a", bogus=1))), "$.tables[0].columns[0].bogus", "unknown"),
        (manifest(table("t", column("a", "mood"))), "$.tables[0].columns[0].type", "enums"),
        (manifest(table("t", column("a", default="pg_sleep(1)"))), "columns[0].default", "not allowed"),
        (manifest(table("t", column("a", default="b"))), "columns[0].default", "refer to columns"),
        (manifest(table("t", column("a"), primary_key=pk("b"))), "primary_key.columns", "b does not exist"),
        (manifest(table("t", column("a"), primary_key=pk("a"))), "$.tables[0].columns", "nullable false"),
        (manifest(table("t", column("a"), column("a"))), "columns[1].name", "twice"),
        (manifest(table("t", column("a")), table("t", column("b"))), "$.tables[1].name", "twice"),
        (manifest(table("t", column("a"), schema="other")), "$.tables[0].schema", "schemas"),
        (manifest(table("t", column("a", default="nextval('nope')"))), "default", "sequences"),
        # every expression is checked the same way (issue 15: nextval() of the ledger's own
        # sequence was accepted in a CHECK, and a table was created depending on it)
        (manifest(table("t", column("a", "bigint"), checks=[{"expression": "a < nextval('schemaheal.heals_id_seq')"}])), "checks[0].expression", "only in a column default"),
        (manifest(table("t", column("a", "uuid"), checks=[{"expression": "a <> gen_random_uuid()"}])), "checks[0].expression", "volatile"),
        (manifest(table("t", column("a", "float8"), indexes=[{"elements": [{"expression": "a * random()"}]}])), "indexes[0].elements[0].expression", "volatile"),
        (manifest(table("t", column("a", "bigint"), indexes=[{"elements": ["a"], "where": "a > nextval('s')"}])), "indexes[0].where", "only in a column default"),
        (manifest(table("t", column("a", "bigint"), column("b", "bigint", generated="a + nextval('s')"))), "columns[1].generated", "only in a column default"),
        (manifest(table("t", column("a", "uuid"), checks=[{"expression": "a <> uuid_generate_v4()"}])), "checks[0].expression", "uuid-ossp"),
        (manifest(table("t", column("a", "numeric(100000,2)"))), "columns[0].type", "between 1 and 1000"),
        (manifest(table("t", column("a"), foreign_keys=[fk(["a"], "ghost", ["id"])])), "references", "not declared"),
        (manifest(TENANTS, table("t", column("a", "integer"), foreign_keys=[fk(["a"], "tenants", ["name"])])), "references.columns", "unique key"),
        (manifest(table("t", column("a"), indexes=[{"elements": ["zz"]}])), "indexes[0]", "zz does not exist"),
        (manifest(table("t", column("a"), checks=[{"expression": "b > 0"}])), "checks[0].expression", "b does not exist"),
        (manifest(table("t", column("a", "int", identity={}, nullable=True))), "columns[0]", "nullable false"),
        (manifest(table("t", column("a", "text", identity={}, nullable=False))), "identity", "integer"),
        (manifest(table("t", column("a", "int"), column("b", "int", generated="a + 1"), column("c", "int", generated="b"))), "columns[2].generated", "itself generated"),
        (manifest(table("t", column("a", "timestamptz"), column("b", "timestamptz", generated="now()"))), "generated", "immutable"),
        (manifest(table("t", column("a"), indexes=[{"unique": True, "method": "gin", "elements": ["a"]}])), "indexes[0]", "only btree"),
        (manifest(enums=[{"name": "e", "labels": ["a", "a"]}]), "$.enums[0]", "unique"),
        (manifest(enums=[{"name": "e", "labels": ["it's"]}]), "labels[0]", "quotes"),
        (manifest(extensions=[{"name": "plpython3u"}]), "$.extensions[0].name", "pgcrypto"),
        ({"service": "x"}, "$.database", "missing"),
        ({**manifest(), "format_version": 2}, "$.format_version", "1"),
    ],
)  # fmt: skip
def test_each_problem_names_its_place_and_what_to_do(data: object, path: str, says: str) -> None:
    found = problems_of(data)
    assert any(path in p and says in p for p in found), found


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\xff\xfe", "UTF-8"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"service": NaN}', "not a JSON number"),
        ("[" * 100 + "]" * 100, "JSON object"),
        ('{"a":' * 40 + "1" + "}" * 40, "deeper"),
    ],
)
def test_undecodable_input_is_one_clear_problem(raw: bytes | str, says: str) -> None:
    [problem] = problems_of(raw)
    assert says in problem


def test_limits_refuse_oversized_manifests() -> None:
    from contracts import Limits

    big = manifest(*[table(f"t{i}", column("a")) for i in range(11)])
    with pytest.raises(ManifestError, match="the limit is 10"):
        load_manifest(big, limits=Limits(max_tables=10))
    with pytest.raises(ManifestError, match="bytes; the limit"):
        load_manifest(json.dumps(big), limits=Limits(max_bytes=100))


def test_unnamed_constraints_get_postgresqls_default_names() -> None:
    conv = table(
        "chat_conversations",
        column("id", "uuid", nullable=False),
        column("tenant_id", "integer"),
        column("channel", "varchar(32)"),
        primary_key=pk("id"),
        foreign_keys=[fk(["tenant_id"], "tenants", ["id"])],
        unique=[{"columns": ["tenant_id", "channel"]}],
        checks=[
            {"expression": "channel <> ''"},
            {"expression": "tenant_id > 0 OR channel IS NULL"},
        ],
        indexes=[{"elements": ["channel"]}, {"elements": [{"expression": "lower(channel)"}]}],
    )
    loaded = load_manifest(manifest(TENANTS, conv))
    t = next(t for t in loaded.tables if t.name == "chat_conversations")
    assert t.primary_key is not None and t.primary_key.name == "chat_conversations_pkey"
    assert [c.name for c in t.foreign_keys] == ["chat_conversations_tenant_id_fkey"]
    assert [c.name for c in t.unique] == ["chat_conversations_tenant_id_channel_key"]
    assert [c.name for c in t.checks] == [
        "chat_conversations_channel_check",
        "chat_conversations_check",
    ]
    assert [i.name for i in t.indexes] == [
        "chat_conversations_channel_idx",
        "chat_conversations_lower_idx",
    ]


def test_enum_types_resolve_to_qualified_names() -> None:
    data = manifest(
        table("t", column("r", "role"), column("rs", "role[]")),
        enums=[{"name": "role", "labels": ["user", "assistant"]}],
    )
    t = load_manifest(data).tables[0]
    assert [c.type for c in t.columns] == ["public.role", "public.role[]"]


def test_extension_types_need_their_extension() -> None:
    data = manifest(table("t", column("email", "citext")))
    assert problems_of(data)
    loaded = load_manifest({**data, "extensions": [{"name": "citext"}]})
    assert loaded.tables[0].columns[0].type == "public.citext"


def shuffled(data: dict, seed: int) -> dict:  # type: ignore[type-arg]
    """The same schema with tables, constraints and keys in another order."""
    rng = random.Random(seed)
    out = json.loads(json.dumps(data))
    rng.shuffle(out["tables"])
    for t in out["tables"]:
        for key in ("indexes", "checks", "foreign_keys", "unique"):
            rng.shuffle(t.get(key, []))
    return {k: out[k] for k in rng.sample(list(out), len(out))}


def test_same_schema_gives_same_canonical_json_and_hash_whatever_the_order() -> None:
    from tests.contracts.test_from_sqlalchemy import nexus_manifest_dict

    data = nexus_manifest_dict()
    first = load_manifest(data)
    for seed in range(5):
        again = load_manifest(shuffled(data, seed))
        assert canonical_json(again) == canonical_json(first)
        assert manifest_hash(again) == manifest_hash(first)


def test_hash_changes_with_the_schema_not_with_the_service() -> None:
    base = load_manifest(manifest(TENANTS))
    other_service = load_manifest({**manifest(TENANTS), "service": "billing"})
    assert manifest_hash(base) == manifest_hash(other_service)
    changed = load_manifest(manifest(TENANTS, table("x", column("a"))))
    assert manifest_hash(changed) != manifest_hash(base)
    # spelling of a type or expression does not matter; its meaning does
    spelled = load_manifest(manifest(table("t", column("a", "int4", default="1+  1"))))
    same = load_manifest(manifest(table("t", column("a", "integer", default="1 + 1"))))
    assert manifest_hash(spelled) == manifest_hash(same)


def test_index_methods_and_operator_classes_of_extensions_need_them_listed() -> None:
    index = {"method": "hnsw", "elements": [{"column": "v", "opclass": "vector_l2_ops"}]}
    trigram = {"method": "gin", "elements": [{"column": "t", "opclass": "gin_trgm_ops"}]}
    data = manifest(table("t", column("v"), column("t"), indexes=[index, trigram]))
    assert sorted(problems_of(data)) == [
        "$.tables[0].indexes[0].elements[0].opclass: operator class vector_l2_ops needs the "
        "vector extension: list it under 'extensions'",
        "$.tables[0].indexes[0].method: hnsw indexes need the vector extension: list it under "
        "'extensions'",
        "$.tables[0].indexes[1].elements[0].opclass: operator class gin_trgm_ops needs the "
        "pg_trgm extension: list it under 'extensions'",
    ]
    listed = {**data, "extensions": [{"name": "vector"}, {"name": "pg_trgm"}]}
    assert len(load_manifest(listed).tables[0].indexes) == 2


def test_index_storage_parameters_are_spelt_as_postgresql_stores_them() -> None:
    storage = {"fillfactor": 70, "deduplicate_items": False, "buffering": "On"}
    data = manifest(table("t", column("a"), indexes=[{"elements": ["a"], "storage": storage}]))
    [index] = load_manifest(data).tables[0].indexes
    assert index.storage == {"fillfactor": "70", "deduplicate_items": "false", "buffering": "on"}


@pytest.mark.parametrize(
    ("storage", "says"),
    [({"fillfactor": "70); DROP TABLE t; --"}, "a number or a word"), ({"Fill": 1}, "pattern")],
)
def test_hostile_storage_parameters_are_refused(storage: dict[str, object], says: str) -> None:
    data = manifest(table("t", column("a"), indexes=[{"elements": ["a"], "storage": storage}]))
    [problem] = problems_of(data)
    assert problem.startswith("$.tables[0].indexes[0].storage") and says in problem


def test_a_qualifier_naming_the_own_table_is_dropped_as_postgresql_drops_it() -> None:
    data = manifest(
        table(
            "t",
            column("a", "int"),
            column("b"),
            column("c", "int", generated="t.a + 1"),
            checks=[{"expression": "t.a > 0"}],
            indexes=[{"elements": [{"expression": "lower(t.b)"}], "where": "public.t.a > 0"}],
        )
    )
    [t] = load_manifest(data).tables
    assert t.columns[2].generated == "a + 1"
    assert [(c.name, c.expression) for c in t.checks] == [("t_a_check", "a > 0")]
    [index] = t.indexes
    assert (index.elements[0].expression, index.where) == ("lower(b)", "a > 0")


def test_a_column_of_another_table_is_an_error_at_its_path() -> None:
    data = manifest(table("t", column("a", "int"), checks=[{"expression": "u.a > 0"}]))
    [problem] = problems_of(data)
    assert problem.startswith("$.tables[0].checks[0].expression: check 'u.a > 0' refers to u.a")
    assert "a column of another table" in problem
