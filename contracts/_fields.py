"""Small value types of the manifest: enum labels, increments, index storage parameters."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

__all__ = ["EnumLabel", "Increment", "StorageName", "StorageValue"]


def _label(text: str) -> str:
    if len(text.encode("utf-8")) > 63:
        raise ValueError(f"enum label {text[:20]!r}… is longer than 63 bytes")
    if any(ch in text for ch in "'\\") or not text.isprintable():
        raise ValueError(
            f"enum label {text!r} may not contain quotes, backslashes or control characters"
        )
    return text


def _nonzero(value: int) -> int:
    if value == 0:
        raise ValueError("an increment may not be 0")
    return value


Increment = Annotated[int, AfterValidator(_nonzero)]


def _storage_value(value: object) -> str:
    """Spell a storage parameter's value as PostgreSQL stores it (``True`` → ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]{1,64}", text):
        raise ValueError(f"storage parameter value {text[:20]!r} must be a number or a word")
    return text if re.fullmatch(r"[0-9.+-]+", text) else text.lower()


StorageName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
StorageValue = Annotated[
    str,
    BeforeValidator(lambda v: _storage_value(v) if isinstance(v, (bool, int, float)) else v),
    AfterValidator(_storage_value),
]
EnumLabel = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_label)]
