"""Which types a foreign key may join: what PostgreSQL's ``ADD FOREIGN KEY`` accepts."""

from __future__ import annotations

from contracts.types import parse_type

__all__ = ["can_reference"]


# What PostgreSQL accepts as a foreign key from another type: the referenced key's btree operator
# family has an equality operator taking the referencing type, or that type casts implicitly to
# the key's. Measured on PostgreSQL 15 and 18 over every built-in type a key can have (the lists
# agree); a new uuid reference to an integer key stays refused, as the seed requires.
_INTEGERS = ("smallint", "integer", "bigint")
_FK_FROM: dict[str, tuple[str, ...]] = {
    "smallint": _INTEGERS,
    "integer": _INTEGERS,
    "bigint": _INTEGERS,
    "oid": _INTEGERS,
    "numeric": _INTEGERS,
    "real": (*_INTEGERS, "numeric", "double precision"),
    "double precision": (*_INTEGERS, "numeric", "real"),
    "text": ("character varying", "character"),
    "character varying": ("text", "character"),
    "character": ("text", "character varying"),
    "date": ("timestamp without time zone", "timestamp with time zone"),
    "timestamp without time zone": ("date", "timestamp with time zone"),
    "timestamp with time zone": ("date", "timestamp without time zone"),
    "time with time zone": ("time without time zone",),
    "interval": ("time without time zone",),
    "inet": ("cidr",),
    "cidr": ("inet",),
    "bit": ("bit varying",),
    "bit varying": ("bit",),
}


def can_reference(local: str, remote: str) -> bool:
    """True when a column of type ``local`` may reference a key of type ``remote``."""
    if local == remote:
        return True
    here, there = parse_type(local), parse_type(remote)
    if (here.schema, here.name, here.array) == (there.schema, there.name, there.array):
        return True  # the same type with other modifiers: varchar(3) and varchar(8)
    plain = not (here.array or there.array or here.schema or there.schema)
    return plain and here.name in _FK_FROM.get(there.name, ())
