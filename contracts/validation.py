"""Loading a manifest: parse, check every part against the others, and return its canonical form.

``load_manifest`` is the one way in. It runs three stages and reports every problem it finds,
each with its JSON path:

1. **decode** — size limit, JSON syntax (no NaN, no absurd nesting);
2. **shape** — the pydantic models (names, types, expressions, allowed values);
3. **meaning** — :mod:`contracts.semantics`: references resolve, foreign-key types match, names
   are unique, defaults and generated expressions use only what they may.

The result is the canonical manifest: unnamed constraints named as PostgreSQL would name them,
user types qualified, and every list whose order carries no meaning sorted. Its canonical JSON
and sha256 therefore do not depend on how the author ordered or spelled things.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from contracts.errors import ManifestError, Problem
from contracts.manifest import Manifest
from contracts.semantics import resolve

__all__ = ["Limits", "canonical_json", "load_manifest", "manifest_hash"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Size limits for untrusted manifests. The defaults fit a 2,000-table application."""

    max_bytes: int = 8 * 1024 * 1024
    max_tables: int = 5000
    max_columns_total: int = 100_000
    max_depth: int = 32


DEFAULT_LIMITS = Limits()


def load_manifest(
    data: bytes | str | Mapping[str, Any], *, limits: Limits = DEFAULT_LIMITS
) -> Manifest:
    """Parse and fully validate a manifest; raise :class:`ManifestError` listing every problem."""
    raw = _decode(data, limits) if isinstance(data, (bytes, str)) else dict(data)
    _check_size(raw, limits)
    try:
        parsed = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError([_problem(error) for error in exc.errors()]) from None
    problems, canonical = resolve(parsed)
    if problems:
        raise ManifestError(problems)
    return canonical


def canonical_json(manifest: Manifest) -> str:
    """The manifest as compact JSON with sorted keys: equal schemas give equal text."""
    data = manifest.model_dump(mode="json", by_alias=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def manifest_hash(manifest: Manifest) -> str:
    """sha256 of the canonical schema (the service and database names are not part of it)."""
    data = manifest.model_dump(mode="json", by_alias=True, exclude={"service", "database"})
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decode(data: bytes | str, limits: Limits) -> Any:
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > limits.max_bytes:
        raise ManifestError(
            [Problem("$", f"manifest is {size} bytes; the limit is {limits.max_bytes}: split it")]
        )
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise ManifestError([Problem("$", f"manifest is not UTF-8: {exc.reason}")]) from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ManifestError([Problem("$", f"manifest is not valid JSON: {exc}")]) from None
    except RecursionError:
        raise ManifestError([Problem("$", "manifest is nested too deeply")]) from None
    if not isinstance(value, dict):
        raise ManifestError([Problem("$", "a manifest is a JSON object")])
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_size(raw: Any, limits: Limits) -> None:
    depth = _depth(raw, limits.max_depth + 1)
    if depth > limits.max_depth:
        raise ManifestError([Problem("$", f"manifest nests deeper than {limits.max_depth} levels")])
    tables = raw.get("tables") if isinstance(raw, dict) else None
    if isinstance(tables, list):
        if len(tables) > limits.max_tables:
            raise ManifestError(
                [Problem("$.tables", f"{len(tables)} tables; the limit is {limits.max_tables}")]
            )
        columns = sum(  # columns that are not a list are the validation's to report
            len(t["columns"])
            for t in tables
            if isinstance(t, dict) and isinstance(t.get("columns"), list)
        )
        if columns > limits.max_columns_total:
            message = f"{columns} columns in all; the limit is {limits.max_columns_total}"
            raise ManifestError([Problem("$.tables", message)])


def _depth(value: Any, cap: int) -> int:
    if cap <= 0:
        return 0
    if isinstance(value, dict):
        return 1 + max((_depth(v, cap - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, cap - 1) for v in value), default=0)
    return 0


def _problem(error: Any) -> Problem:
    path = json_path(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown field: remove it or check its spelling"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return Problem(path, message)


def json_path(loc: tuple[Any, ...]) -> str:
    """``('tables', 2, 'name')`` → ``$.tables[2].name``; model-level validator tags are dropped."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "tagged-union")):
            out += f".{part}"
    return out
