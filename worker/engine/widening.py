"""Type changes PostgreSQL makes in place, without rewriting the table or its indexes. Pure."""

from __future__ import annotations

import re

__all__ = ["is_metadata_only_widening"]


_VARCHAR = re.compile(r"character varying(?:\((\d+)\))?\Z")
_NUMERIC = re.compile(r"numeric(?:\((\d+),(\d+)\))?\Z")
_VARBIT = re.compile(r"bit varying(?:\((\d+)\))?\Z")


def is_metadata_only_widening(current: str, desired: str) -> bool:
    """True for type changes PostgreSQL makes without rewriting the table or its indexes."""
    if current == desired:
        return False
    if (vc := _VARCHAR.match(current)) and (desired == "text" or _VARCHAR.match(desired)):
        if desired == "text":
            return True
        vd = _VARCHAR.match(desired)
        assert vd is not None
        return vd.group(1) is None or (
            vc.group(1) is not None and int(vd.group(1)) >= int(vc.group(1))
        )
    if (nc := _NUMERIC.match(current)) and (nd := _NUMERIC.match(desired)):
        if nd.group(1) is None:
            return True
        return (
            nc.group(1) is not None
            and nc.group(2) == nd.group(2)
            and int(nd.group(1)) >= int(nc.group(1))
        )
    if (bc := _VARBIT.match(current)) and (bd := _VARBIT.match(desired)):
        return bd.group(1) is None or (
            bc.group(1) is not None and int(bd.group(1)) >= int(bc.group(1))
        )
    return False
