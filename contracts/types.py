"""Column types: parsed with PostgreSQL's own grammar into one canonical spelling.

The canonical spelling is exactly what PostgreSQL's ``format_type()`` prints for the type when
``search_path`` is ``pg_catalog``: ``integer``, ``character varying(255)``, ``timestamp with time
zone``, ``numeric(10,2)``, ``text[]``, ``public.role``. The inspector reads the live catalog with
the same function, so desired and current types compare as plain strings, and the canonical text
is valid SQL that we render ourselves from parsed parts — never the manifest's text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pglast import ast

from contracts._select import select_target
from contracts.identifiers import check_identifier, qualified

__all__ = [
    "BUILTIN_TYPES",
    "EXTENSION_FUNCTIONS",
    "EXTENSION_METHODS",
    "EXTENSION_OPCLASSES",
    "EXTENSION_TYPES",
    "TypeName",
    "parse_type",
]

# internal name -> (format_type name, how many typmods it takes, template with typmods)
_BUILTINS: dict[str, tuple[str, int]] = {
    "int2": ("smallint", 0),
    "int4": ("integer", 0),
    "int8": ("bigint", 0),
    "float4": ("real", 0),
    "float8": ("double precision", 0),
    "numeric": ("numeric", 2),
    "bool": ("boolean", 0),
    "text": ("text", 0),
    "varchar": ("character varying", 1),
    "bpchar": ("character", 1),
    "bytea": ("bytea", 0),
    "uuid": ("uuid", 0),
    "json": ("json", 0),
    "jsonb": ("jsonb", 0),
    "date": ("date", 0),
    "timestamp": ("timestamp without time zone", 1),
    "timestamptz": ("timestamp with time zone", 1),
    "time": ("time without time zone", 1),
    "timetz": ("time with time zone", 1),
    "interval": ("interval", 0),
    "inet": ("inet", 0),
    "cidr": ("cidr", 0),
    "macaddr": ("macaddr", 0),
    "money": ("money", 0),
    "bit": ("bit", 1),
    "varbit": ("bit varying", 1),
    "tsvector": ("tsvector", 0),
    "tsquery": ("tsquery", 0),
    "xml": ("xml", 0),
    "oid": ("oid", 0),
    "int4range": ("int4range", 0),
    "int8range": ("int8range", 0),
    "numrange": ("numrange", 0),
    "tstzrange": ("tstzrange", 0),
    "daterange": ("daterange", 0),
    "point": ("point", 0),
    "tsrange": ("tsrange", 0),
    "macaddr8": ("macaddr8", 0),
    "jsonpath": ("jsonpath", 0),
    "box": ("box", 0),
    "circle": ("circle", 0),
    "line": ("line", 0),
    "lseg": ("lseg", 0),
    "path": ("path", 0),
    "polygon": ("polygon", 0),
}
# Names a user may also write for the same types (pglast already maps the SQL-standard spellings
# like "character varying" to their internal names).
_ALIASES = {
    "integer": "int4",
    "int": "int4",
    "smallint": "int2",
    "bigint": "int8",
    "real": "float4",
    "boolean": "bool",
    "decimal": "numeric",
    "character": "bpchar",
    "char": "bpchar",
}
BUILTIN_TYPES = frozenset(name for name, _ in _BUILTINS.values())
#: Types that an extension provides, and which extension. A column may use one when the manifest
#: lists that extension; the type is then qualified with the extension's schema.
EXTENSION_TYPES: dict[str, str] = {
    "citext": "citext",
    "hstore": "hstore",
    "ltree": "ltree",
    "cube": "cube",
    "vector": "vector",
}
#: Functions (of the allowlist) that an extension provides, and which extension.
EXTENSION_FUNCTIONS: dict[str, str] = {"uuid_generate_v4": "uuid-ossp"}
#: Index access methods and operator classes that an extension provides, and which extension.
EXTENSION_METHODS: dict[str, str] = {"hnsw": "vector", "ivfflat": "vector"}
EXTENSION_OPCLASSES: dict[str, str] = {
    "gin_trgm_ops": "pg_trgm",
    "gist_trgm_ops": "pg_trgm",
    "gin__int_ops": "intarray",
    "gist__int_ops": "intarray",
    "gist__intbig_ops": "intarray",
    "gist_ltree_ops": "ltree",
    "gist_hstore_ops": "hstore",
    "gin_hstore_ops": "hstore",
    **{
        f"{kind}_{distance}_ops": "vector"
        for kind in ("vector", "halfvec", "sparsevec")
        for distance in ("l2", "ip", "cosine", "l1")
    },
    "bit_hamming_ops": "vector",
    "bit_jaccard_ops": "vector",
}
_SERIALS = {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TypeName:
    """A parsed type: builtin (``schema`` None) or user-defined (enum, extension type)."""

    schema: str | None
    name: str
    modifiers: tuple[int, ...] = ()
    array: bool = False

    def render(self, *, schema: str | None = None) -> str:
        """The canonical text; ``schema`` qualifies a user type written without one."""
        if self.schema is None and self.name in BUILTIN_TYPES:
            base = _render_builtin(self.name, self.modifiers)
        else:
            where = self.schema or schema
            base = qualified(where, self.name) if where else self.name
            if self.modifiers:
                base += "(" + ",".join(str(m) for m in self.modifiers) + ")"
        return base + ("[]" if self.array else "")


def _render_builtin(name: str, modifiers: tuple[int, ...]) -> str:
    if not modifiers:
        return name
    mods = "(" + ",".join(str(m) for m in modifiers) + ")"
    for zone in (" with time zone", " without time zone"):
        if name.endswith(zone):  # timestamp(3) with time zone
            return name.removesuffix(zone) + mods + zone
    return name + mods


@lru_cache(maxsize=8192)  # pure and immutable: the same few types recur in every manifest
def parse_type(text: str) -> TypeName:
    """Parse a type written in SQL into a :class:`TypeName`; raise ValueError with advice."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a column type may not be empty")
    if len(text) > 200:
        raise ValueError("a column type must be a short type name such as 'integer' or 'text'")
    try:
        node = select_target(f"NULL::{text}", what="column type")
    except ValueError:
        raise ValueError(f"{text!r} is not a PostgreSQL type name") from None
    if not (isinstance(node, ast.TypeCast) and isinstance(node.arg, ast.A_Const)):
        raise ValueError(f"{text!r} is not a single PostgreSQL type name")
    if not node.arg.isnull or node.typeName is None:
        raise ValueError(f"{text!r} is not a single PostgreSQL type name")
    return _from_ast(node.typeName, text)


def _from_ast(node: ast.TypeName, text: str) -> TypeName:
    if node.setof or node.pct_type:
        raise ValueError(f"{text!r} is not a column type")
    names = [str(n.sval) for n in node.names or ()]
    if names[0] == "pg_catalog":
        names = names[1:]
    if len(names) not in (1, 2):
        raise ValueError(f"{text!r}: write a type as name or schema.name")
    modifiers = tuple(_modifier(m, text) for m in node.typmods or ())
    array = bool(node.arrayBounds)
    if len(names) == 2:
        schema, name = (check_identifier(n) for n in names)
        return TypeName(schema=schema, name=name, modifiers=modifiers, array=array)
    raw = names[0]
    if raw in _SERIALS:
        raise ValueError(
            f"{raw!r} is not a real type: use an identity column "
            '("identity": {"always": false}) or a sequence default (nextval) instead'
        )
    internal = _ALIASES.get(raw, raw)
    if internal in _BUILTINS:
        canonical, max_mods = _BUILTINS[internal]
        if len(modifiers) > max_mods:
            raise ValueError(f"type {canonical} takes at most {max_mods} modifier(s)")
        _check_bounds(canonical, modifiers)
        return TypeName(schema=None, name=canonical, modifiers=modifiers, array=array)
    return TypeName(schema=None, name=check_identifier(raw), modifiers=modifiers, array=array)


_MAX_LENGTH = 10_485_760  # characters of varchar/char; bits are 8 times that (MaxAttrSize)
_PRECISION = ("precision", 0, 6)
#: Type -> (what, lowest, highest) of each modifier, as PostgreSQL's typmodin functions bound
#: them (numeric's scale may be negative since 15, which the manifest does not accept).
_BOUNDS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "numeric": (("precision", 1, 1000), ("scale", 0, 1000)),
    "character varying": (("length", 1, _MAX_LENGTH),),
    "character": (("length", 1, _MAX_LENGTH),),
    "bit": (("length", 1, 8 * _MAX_LENGTH),),
    "bit varying": (("length", 1, 8 * _MAX_LENGTH),),
    "timestamp without time zone": (_PRECISION,),
    "timestamp with time zone": (_PRECISION,),
    "time without time zone": (_PRECISION,),
    "time with time zone": (_PRECISION,),
}


def _check_bounds(canonical: str, modifiers: tuple[int, ...]) -> None:
    """Refuse here what PostgreSQL would refuse (or silently reduce) when the column is made."""
    for value, (what, low, high) in zip(modifiers, _BOUNDS.get(canonical, ()), strict=False):
        if not low <= value <= high:
            raise ValueError(f"type {canonical}: {what} {value} must be between {low} and {high}")


def _modifier(node: object, text: str) -> int:
    value = getattr(getattr(node, "val", None), "ival", None)
    if not isinstance(value, int) or not 0 <= value <= 8 * _MAX_LENGTH:
        raise ValueError(f"{text!r}: type modifiers must be small non-negative integers")
    return value
