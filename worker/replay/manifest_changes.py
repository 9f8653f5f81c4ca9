"""What changed between two manifests of one service, in words a reviewer reads. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from contracts.manifest import Manifest, Table


def manifest_changes(previous: Manifest | None, current: Manifest) -> tuple[str, ...]:
    """Lines like ``+ column public.agents.scope text``, ``- index …``, ``~ column …: type a → b``,
    sorted; empty when nothing changed. ``previous`` None: the first manifest seen."""
    if previous is None:
        return ()
    out: list[str] = []
    out += _named("schema", {s: s for s in previous.schemas}, {s: s for s in current.schemas})
    for kind, attr in (("extension", "extensions"), ("enum", "enums"), ("sequence", "sequences")):
        out += _named(kind, _by_name(getattr(previous, attr)), _by_name(getattr(current, attr)))
    old_tables = {_qualified(t): t for t in previous.tables}
    new_tables = {_qualified(t): t for t in current.tables}
    for name in sorted(new_tables.keys() - old_tables.keys()):
        out.append(f"+ table {name}")
    for name in sorted(old_tables.keys() - new_tables.keys()):
        out.append(f"- table {name}")
    for name in sorted(old_tables.keys() & new_tables.keys()):
        out += _table_changes(name, old_tables[name], new_tables[name])
    return tuple(out)


def _table_changes(name: str, old: Table, new: Table) -> list[str]:
    out: list[str] = []
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    for col in (c for c in new.columns if c.name not in old_cols):
        out.append(f"+ column {name}.{col.name} {col.type}")
    for col in (c for c in old.columns if c.name not in new_cols):
        out.append(f"- column {name}.{col.name}")
    for col_name in (c.name for c in new.columns if c.name in old_cols):
        before = old_cols[col_name].model_dump(exclude_none=True)
        after = new_cols[col_name].model_dump(exclude_none=True)
        changed = [
            f"{key} {before.get(key)!r} → {after.get(key)!r}"
            for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)
        ]
        if changed:
            out.append(f"~ column {name}.{col_name}: " + ", ".join(changed))
    if _dump(old.primary_key) != _dump(new.primary_key):
        out.append(f"~ primary key of {name}")
    for kind, attr in (("foreign key", "foreign_keys"), ("unique", "unique"),
                       ("check", "checks"), ("index", "indexes")):  # fmt: skip
        out += _named(
            kind,
            _by_key(getattr(old, attr)),
            _by_key(getattr(new, attr)),
            prefix=f"{name} ",
        )
    if old.comment != new.comment:
        out.append(f"~ comment on {name}")
    return out


def _named(
    kind: str, old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = ""
) -> list[str]:
    out = [f"+ {kind} {prefix}{key}" for key in sorted(new.keys() - old.keys())]
    out += [f"- {kind} {prefix}{key}" for key in sorted(old.keys() - new.keys())]
    out += [
        f"~ {kind} {prefix}{key}"
        for key in sorted(old.keys() & new.keys())
        if _dump(old[key]) != _dump(new[key])
    ]
    return out


def _qualified(table: Table) -> str:
    return f"{table.schema_}.{table.name}"


def _by_name(items: Iterable[Any]) -> dict[str, Any]:
    return {f"{getattr(i, 'schema_', None) or ''}.{i.name}".lstrip("."): i for i in items}


def _by_key(items: Iterable[Any]) -> dict[str, Any]:
    """Constraints and indexes by name (loaded manifests name every one of them)."""
    return {str(i.name or _dump(i)): i for i in items}


def _dump(item: Any) -> Any:
    if hasattr(item, "model_dump"):
        return item.model_dump(mode="json", exclude_none=True)
    return item
