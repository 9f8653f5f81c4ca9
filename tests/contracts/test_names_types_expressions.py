"""Table-driven tests of the three parsers under the manifest: identifiers, types, expressions."""

from __future__ import annotations

import re

import pytest

from contracts.expressions import parse_expression
from contracts.identifiers import check_identifier, quote_ident, split_qualified
from contracts.naming import default_name, unique_name
from contracts.types import parse_type


@pytest.mark.parametrize(
    "name",
    [
        "a", "tenants", "_x", "col$1", "a" * 63, "user",
        # names real schemas use, written quoted in SQL (issue 12)
        "Tenants", "parent.parent_id", "order-items", "1abc", "a b", "Größe", "Σίσυφος", "x%y",
    ],
)  # fmt: skip
def test_identifiers_real_schemas_use_pass(name: str) -> None:
    assert check_identifier(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "empty"),
        ("a" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),
        ("tenants; drop table x", "SEMICOLON"),
        ('a"b', "QUOTATION MARK"),
        ("it's", "APOSTROPHE"),
        ("a\\b", "REVERSE SOLIDUS"),
        ("tаble", "cyrillic and latin"),  # Cyrillic а: a look-alike
        ("ｔａｂｌｅ", "folds to 'table'"),
        ("a\x00b", "control or invisible"),
        ("a\nb", "control or invisible"),
        ("a\u200db", "ZERO WIDTH JOINER"),
        ("a\u202eb", "RIGHT-TO-LEFT OVERRIDE"),
        ("\ufeffa", "invisible"),
        ("a\u2212b", "MINUS SIGN"),
        ("🙂", "symbols beyond ASCII"),
        (" a", "space"),
        ("a ", "space"),
    ],
)
def test_bad_identifiers_are_refused_with_advice(name: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_identifier(name)


def test_split_qualified_reads_names_as_postgresql_does() -> None:
    assert split_qualified('public."Parent.id_seq"') == ["public", "Parent.id_seq"]
    assert split_qualified("Public.Seq") == ["public", "seq"]
    assert split_qualified('"a""b"') == ['a"b']
    with pytest.raises(ValueError, match="well-formed"):
        split_qualified('a."b')


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("tenants", "tenants"),
        ("user", '"user"'),
        ("select", '"select"'),
        ("name", "name"),
        ("Tenants", '"Tenants"'),
        ("parent.parent_id", '"parent.parent_id"'),
        ("a b", '"a b"'),
    ],
)
def test_quote_ident_matches_postgresql(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("int", "integer"),
        ("int4", "integer"),
        ("INTEGER", "integer"),
        ("bigint", "bigint"),
        ("int8", "bigint"),
        ("varchar(32)", "character varying(32)"),
        ("character varying(32)", "character varying(32)"),
        ("varchar", "character varying"),
        ("text", "text"),
        ("timestamptz", "timestamp with time zone"),
        ("timestamp with time zone", "timestamp with time zone"),
        ("timestamp(3)", "timestamp(3) without time zone"),
        ("numeric(10, 2)", "numeric(10,2)"),
        ("decimal", "numeric"),
        ("text[]", "text[]"),
        ("int[][]", "integer[]"),
        ("char", "character(1)"),
        ("double precision", "double precision"),
        ("float8", "double precision"),
        ("bool", "boolean"),
        ("uuid", "uuid"),
        ("jsonb", "jsonb"),
        ("public.role", "public.role"),
        ("time(2) with time zone", "time(2) with time zone"),
    ],
)
def test_types_have_one_canonical_spelling(written: str, canonical: str) -> None:
    assert parse_type(written).render() == canonical


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("serial", "identity"),
        ("bigserial", "identity"),
        ("int); drop table x; --", "not a PostgreSQL type"),
        ("int FROM pg_authid", "not a PostgreSQL type"),
        ("int -- comment", "not a PostgreSQL type"),
        ("varchar(1,2)", "not a PostgreSQL type"),
        ("int4(5)", "at most 0"),
        ("SETOF int", "not a column type"),
        ('"Evil;".x', "SEMICOLON"),
        ("a.b.c", "schema.name"),
        ("x" * 300, "short type name"),
        ("", "empty"),
        # modifiers bounded per type as PostgreSQL bounds them (issue 15: numeric(100000,2)
        # passed validation and failed only at heal time)
        ("numeric(100000,2)", "precision 100000 must be between 1 and 1000"),
        ("numeric(0)", "precision 0 must be between 1 and 1000"),
        ("numeric(10,1001)", "scale 1001 must be between 0 and 1000"),
        ("varchar(0)", "length 0 must be between 1 and 10485760"),
        ("char(10485761)", "length 10485761 must be between 1 and 10485760"),
        ("timestamptz(7)", "precision 7 must be between 0 and 6"),
        ("time(9)", "precision 9 must be between 0 and 6"),
        ("bit(0)", "length 0 must be between 1 and 83886080"),
    ],
)
def test_bad_types_are_refused(written: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_type(written)


@pytest.mark.parametrize(
    "written",
    ["numeric(1000,1000)", "numeric(1)", "varchar(10485760)", "char(1)", "timestamp(0)",
     "timestamptz(6)", "timetz(6)", "bit(83886080)", "varbit(1)"],
)  # fmt: skip
def test_modifiers_at_postgresqls_bounds_pass(written: str) -> None:
    assert parse_type(written).modifiers


@pytest.mark.parametrize(
    ("written", "canonical", "volatile"),
    [
        ("now()", "now()", False),
        ("CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP", False),
        ("gen_random_uuid()", "gen_random_uuid()", True),
        ("'{}'::jsonb", "CAST('{}' AS jsonb)", False),
        ("'whatsapp'", "'whatsapp'", False),
        ("$$it's$$", "'it''s'", False),
        ("amount > 0 AND amount <   10", "amount > 0 AND amount < 10", False),
        ("lower(email)", "lower(email)", False),
        ("status IN ('a', 'b')", "status IN ('a', 'b')", False),
        ("coalesce(a, 0)", "COALESCE(a, 0)", False),
        ("nextval('public.s')", "nextval('public.s')", True),
        ("a IS NOT NULL", "a IS NOT NULL", False),
        ("'--'", "'--'", False),
    ],
)
def test_allowed_expressions_are_rewritten_from_their_parse_tree(
    written: str, canonical: str, volatile: bool
) -> None:
    expr = parse_expression(written)
    assert expr.sql == canonical
    assert expr.volatile is volatile


@pytest.mark.parametrize(
    ("written", "says"),
    [
        ("(SELECT 1)", "SubLink"),
        ("EXISTS (SELECT 1 FROM pg_authid)", "SubLink"),
        ("pg_sleep(10)", "not allowed"),
        ("pg_catalog.pg_read_file('/etc/passwd')", "not allowed"),
        ("1; DROP TABLE tenants", "not statements"),
        ("1 FROM tenants", "not a query"),
        ("tenants.*", "no '\\*'"),
        ("a.b.c.d", "no '\\*'"),
        ("count(*)", "not allowed"),
        ("lower(a) OVER ()", "window"),
        ("$1", "ParamRef"),
        ("OPERATOR(pg_catalog.=)(a, b)", "operator"),
        ("'x'::regclass", "regclass"),
        ("ROW(1, 2)", "RowExpr"),
        ("a[1]", "A_Indirection"),
        ("1 /* hidden */", "comments"),
        ("1 -- hidden", "comments"),
        ("nextval('a.b.c')", "schema.sequence"),
        ("nextval(x)", "in quotes"),
        ('a COLLATE "evil"', "collations"),
        ("1, 2", "exactly one"),
        ("1 AS x", "exactly one"),
        ("x" * (64 * 1024 + 1), "longer than 65536"),
        ("1\x00", "NUL"),
    ],
)
def test_unsafe_expressions_are_refused(written: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_expression(written)


@pytest.mark.parametrize(
    ("table", "columns", "label", "expected"),
    [
        ("tenants", (), "pkey", "tenants_pkey"),
        ("tenants", ("slug",), "key", "tenants_slug_key"),
        ("chat", ("tenant_id", "customer_id"), "fkey", "chat_tenant_id_customer_id_fkey"),
        # PostgreSQL trims the longer part first, so the result fits in 63 bytes
        ("t" * 40, ("c" * 40,), "key", "t" * 29 + "_" + "c" * 29 + "_key"),
    ],
)
def test_default_names_follow_postgresql(
    table: str, columns: tuple[str, ...], label: str, expected: str
) -> None:
    assert default_name(table, columns, label) == expected
    assert len(expected) <= 63


def test_unique_name_counts_like_postgresql() -> None:
    taken: set[str] = set()
    assert unique_name("t", (), "check", taken) == "t_check"
    assert unique_name("t", (), "check", taken) == "t_check1"
    assert unique_name("t", (), "check", taken) == "t_check2"
