"""Property-based: thousands of random and hostile manifests thrown at the validator.

Two properties. Nothing raises anything but :class:`ManifestError`. And nothing hostile passes:
every manifest that *is* accepted contains only safe names (no quote, ``;``, backslash, control,
invisible or look-alike character; quoted, each reads back as exactly itself), canonical types
and expressions that re-parse to themselves — so no quote, semicolon, comment or subquery can
reach the database.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import parse_sql

from contracts import Manifest, ManifestError, load_manifest
from contracts.expressions import parse_expression
from contracts.identifiers import quote_ident
from contracts.types import parse_type

HOSTILE = [
    "'", '"', ";", "--", "/*", "*/", "$$", "$tag$", "\x00", "\\", "\n", "DROP TABLE tenants",
    "); DROP TABLE tenants; --", "' OR '1'='1", "(SELECT 1)", "pg_sleep(10)", "x FROM pg_authid",
    "current_setting('x')", "lo_import('/etc/passwd')", "tаble", "ｔａｂｌｅ", "\u202e", "\ufeff",
    "a" * 64, "É", "🙂", "1e999", "NaN", "::regclass", "COPY", "$1", "E'\\x00'", "\r\n",
]  # fmt: skip
PLAIN_NAMES = ["id", "tenants", "a", "_x", "name", "user", "select"]
TYPES = ["int", "text", "varchar(10)", "uuid", "jsonb", "timestamptz", "numeric(5,2)", "bool"]
EXPRS = ["now()", "0", "'x'", "a > 0", "lower(a)", "gen_random_uuid()", "a IS NOT NULL"]

pieces = st.sampled_from(HOSTILE) | st.text(max_size=12)
names = st.sampled_from(PLAIN_NAMES) | st.builds(
    lambda a, b: a + b, st.sampled_from(PLAIN_NAMES), pieces
)
types = st.sampled_from(TYPES) | st.builds(lambda a, b: a + b, st.sampled_from(TYPES), pieces)
exprs = (
    st.sampled_from(EXPRS) | st.builds(lambda a, b: a + b, st.sampled_from(EXPRS), pieces) | pieces
)
maybe = lambda s: st.none() | s  # noqa: E731

columns = st.fixed_dictionaries(
    {"name": names, "type": types},
    optional={"nullable": st.booleans(), "default": maybe(exprs), "comment": maybe(pieces)},
)
indexes = st.fixed_dictionaries(
    {
        "elements": st.lists(
            names | st.fixed_dictionaries({"expression": exprs}), min_size=1, max_size=2
        )
    },
    optional={"name": names, "where": exprs, "method": st.sampled_from(["btree", "gin", "evil"])},
)
tables = st.fixed_dictionaries(
    {"name": names, "columns": st.lists(columns, min_size=1, max_size=4)},
    optional={
        "schema": names,
        "checks": st.lists(st.fixed_dictionaries({"expression": exprs}), max_size=2),
        "indexes": st.lists(indexes, max_size=2),
        "comment": pieces,
    },
)
manifests = st.fixed_dictionaries(
    {"service": st.sampled_from(["svc", "x;y", ""]) | pieces, "database": st.just("db"),
     "tables": st.lists(tables, max_size=3)},
    optional={
        "schemas": st.lists(names, min_size=1, max_size=2),
        "enums": st.lists(st.fixed_dictionaries({"name": names, "labels": st.lists(pieces, min_size=1, max_size=3)}), max_size=2),
        "extensions": st.lists(st.fixed_dictionaries({"name": pieces | st.just("citext")}), max_size=1),
    },
)  # fmt: skip
# Whole documents of arbitrary JSON, too: the validator must not assume any shape.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | pieces,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(pieces, children, max_size=4),
    max_leaves=20,
)
_LOOK_ALIKES = frozenset("аｔａｂｌ\u202e\ufeff")


class _Name:
    """``_NAME.match(name)``: true only for a name that is safe however it is written in SQL."""

    @staticmethod
    def match(name: str) -> bool:
        if not name or len(name.encode()) > 63 or set(name) & (set("\"';\\") | _LOOK_ALIKES):
            return False
        if not name.isprintable() or unicodedata.normalize("NFKC", name) != name:
            return False
        [statement] = parse_sql(f"SELECT 1 AS {quote_ident(name)}")
        return bool(statement.stmt.targetList[0].name == name)  # type: ignore[attr-defined]


_NAME = _Name()


def assert_safe(manifest: Manifest) -> None:
    """Every name is plain, every type and expression is canonical (re-parses to itself)."""
    for schema in manifest.schemas:
        assert _NAME.match(schema)
    for table in manifest.tables:
        assert _NAME.match(table.name) and _NAME.match(table.schema_)
        for col in table.columns:
            assert _NAME.match(col.name)
            assert parse_type(col.type).render() == col.type
            for expr in (col.default, col.generated):
                if expr is not None:
                    assert parse_expression(expr).sql == expr
            assert col.comment is None or "\x00" not in col.comment
        for check in table.checks:
            assert parse_expression(check.expression).sql == check.expression
        for index in table.indexes:
            assert index.name is not None and _NAME.match(index.name)
            if index.where is not None:
                assert parse_expression(index.where).sql == index.where
    for enum in manifest.enums:
        for label in enum.labels:
            assert "'" not in label and "\\" not in label and label.isprintable()


def judge(data: Any) -> None:
    try:
        accepted = load_manifest(data)
    except ManifestError as exc:
        assert exc.problems, "a ManifestError always lists its problems"
        for problem in exc.problems:
            assert problem.path.startswith("$")
        return
    assert_safe(accepted)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifests)
def test_hostile_manifests_fail_only_with_validation_errors(data: dict[str, Any]) -> None:
    judge(data)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_arbitrary_json_fails_only_with_validation_errors(data: Any) -> None:
    judge(data if isinstance(data, dict) else {"service": "s", "database": "d", "tables": data})


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_fail_only_with_validation_errors(raw: bytes | str) -> None:
    judge(raw)


@settings(max_examples=1000, deadline=None)
@given(exprs)
def test_accepted_expressions_are_canonical_and_safe(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ValueError:
        return
    assert parse_expression(expr.sql).sql == expr.sql
    assert ";" not in expr.sql.replace("';'", "")


@pytest.mark.parametrize("columns", [True, 3, 2.5, None, "id", {"name": "id"}])
def test_columns_that_are_not_a_list_are_a_validation_error(columns: Any) -> None:
    """Found by tests/faults/test_fuzzed_records.py: the size check counted ``len(True)``."""
    table = {"name": "tenants", "columns": columns, "primary_key": {"columns": ["id"]}}
    with pytest.raises(ManifestError):
        load_manifest({"service": "s", "database": "d", "tables": [table]})
