"""The meaning of a manifest: cross-references, and the canonical form.

:func:`resolve` takes a manifest whose shape is valid and returns ``(problems, canonical)``. It
checks what no single field can: that every schema is owned, types and sequences resolve, columns
named by keys, indexes and expressions exist, foreign keys point at a declared key of the same
types (the seed's rule: new references respect the legacy key type), and names are unique. It
fills unnamed constraints with PostgreSQL's own default names and sorts what has no order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.calls import calls, index_calls
from contracts.errors import Problem
from contracts.expressions import parse_expression
from contracts.identifiers import qualified, split_qualified
from contracts.intent import declares_intent, table_intent
from contracts.manifest import Column, ForeignKey, Manifest, Table
from contracts.naming import unique_name
from contracts.references import can_reference
from contracts.table_rules import (
    bare_columns,
    fold_into_primary_key,
    index_columns,
    index_extensions,
    index_name_parts,
    own_columns,
)
from contracts.types import BUILTIN_TYPES, EXTENSION_TYPES, parse_type

__all__ = ["resolve"]

_IDENTITY_TYPES = {"smallint", "integer", "bigint"}


@dataclass(slots=True)
class _Context:
    manifest: Manifest
    problems: list[Problem] = field(default_factory=list)
    enums: set[tuple[str, str]] = field(default_factory=set)
    sequences: set[tuple[str, str]] = field(default_factory=set)
    extension_schema: dict[str, str] = field(default_factory=dict)
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    relation_names: dict[str, set[str]] = field(default_factory=dict)

    def report(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))


def resolve(manifest: Manifest) -> tuple[list[Problem], Manifest]:
    """Check cross-references and return the problems and the canonical manifest."""
    ctx = _Context(manifest=manifest)
    owned = set(manifest.schemas)
    if len(owned) != len(manifest.schemas):
        ctx.report("$.schemas", "each schema may be listed once")
    extensions = tuple(_extension(ctx, i, owned) for i in range(len(manifest.extensions)))
    for i, enum in enumerate(manifest.enums):
        _register(ctx, f"$.enums[{i}]", owned, ctx.enums, (enum.schema_, enum.name), "enum")
    for i, seq in enumerate(manifest.sequences):
        key = (seq.schema_, seq.name)
        _register(ctx, f"$.sequences[{i}]", owned, ctx.sequences, key, "sequence")
        ctx.relation_names.setdefault(seq.schema_, set()).add(seq.name)
    for i, table in enumerate(manifest.tables):
        path = f"$.tables[{i}]"
        if table.schema_ not in owned:
            ctx.report(f"{path}.schema", _not_owned(table.schema_))
        if (table.schema_, table.name) in ctx.tables:
            ctx.report(f"{path}.name", f"table {table.schema_}.{table.name} is declared twice")
        elif table.name in ctx.relation_names.get(table.schema_, set()):
            ctx.report(f"{path}.name", f"{table.name} is already the name of a sequence")
        ctx.tables[(table.schema_, table.name)] = table
        ctx.relation_names.setdefault(table.schema_, set()).add(table.name)
    for i, seq in enumerate(manifest.sequences):
        owner = seq.owned_by
        owning = ctx.tables.get((seq.schema_, owner.table)) if owner else None
        if owner and (owning is None or owner.column not in {c.name for c in owning.columns}):
            where = f"{seq.schema_}.{owner.table}.{owner.column}"
            ctx.report(f"$.sequences[{i}].owned_by", f"{where} is not a declared column")
    typed = {key: _resolve_columns(ctx, i, t) for i, (key, t) in enumerate(ctx.tables.items())}
    ctx.tables = typed
    tables = [_resolve_table(ctx, i, t) for i, t in enumerate(typed.values())]
    canonical = manifest.model_copy(
        update={
            "schemas": tuple(sorted(owned)),
            "extensions": tuple(sorted(extensions, key=lambda e: e.name)),
            "enums": tuple(sorted(manifest.enums, key=lambda e: (e.schema_, e.name))),
            "sequences": tuple(sorted(manifest.sequences, key=lambda s: (s.schema_, s.name))),
            "tables": tuple(sorted(tables, key=lambda t: (t.schema_, t.name))),
        }
    )
    return ctx.problems, canonical


def _not_owned(schema: str) -> str:
    return f"schema {schema!r} is not in this manifest's 'schemas': add it there or change it"


def _register(
    ctx: _Context,
    path: str,
    owned: set[str],
    seen: set[tuple[str, str]],
    key: tuple[str, str],
    kind: str,
) -> None:
    if key[0] not in owned:
        ctx.report(f"{path}.schema", _not_owned(key[0]))
    if key in seen:
        ctx.report(f"{path}.name", f"{kind} {key[0]}.{key[1]} is declared twice")
    seen.add(key)


def _extension(ctx: _Context, i: int, owned: set[str]):  # type: ignore[no-untyped-def]
    ext = ctx.manifest.extensions[i]
    schema = ext.schema_ or ctx.manifest.schemas[0]
    if schema not in owned:
        ctx.report(f"$.extensions[{i}].schema", _not_owned(schema))
    if ext.name in ctx.extension_schema:
        ctx.report(f"$.extensions[{i}].name", f"extension {ext.name} is listed twice")
    ctx.extension_schema[ext.name] = schema
    return ext.model_copy(update={"schema_": schema})


# -- columns ------------------------------------------------------------------------------------


def _resolve_columns(ctx: _Context, i: int, table: Table) -> Table:
    path = f"$.tables[{i}]"
    names = [c.name for c in table.columns]
    for j, name in enumerate(names):
        if names.index(name) != j:
            ctx.report(f"{path}.columns[{j}].name", f"column {name} is declared twice")
    columns = tuple(
        _resolve_column(ctx, f"{path}.columns[{j}]", table, c) for j, c in enumerate(table.columns)
    )
    return table.model_copy(update={"columns": columns})


def _resolve_column(ctx: _Context, path: str, table: Table, column: Column) -> Column:
    updates: dict[str, object] = {"type": _resolve_type(ctx, f"{path}.type", table, column.type)}
    if column.identity is not None and updates["type"] not in _IDENTITY_TYPES:
        ctx.report(f"{path}.identity", "identity columns must be smallint, integer or bigint")
    if column.default is not None:
        expr = parse_expression(column.default, what="default")
        if expr.columns:
            ctx.report(f"{path}.default", "a default may not refer to columns; use 'generated'")
        ctx.problems.extend(
            calls(f"{path}.default", column.default, "default", ctx.extension_schema)
        )
        updates["default"] = _qualify_sequences(ctx, f"{path}.default", table, column.default)
    if column.generated is not None:
        text, problems = bare_columns(
            f"{path}.generated", column.generated, "generated expression", table
        )
        ctx.problems.extend(problems)
        updates["generated"] = text
        expr = parse_expression(text, what="generated expression")
        generated = {c.name for c in table.columns if c.generated is not None}
        for name in expr.columns:
            if name not in {c.name for c in table.columns}:
                ctx.report(f"{path}.generated", f"column {name} does not exist in {table.name}")
            elif name in generated:
                ctx.report(f"{path}.generated", f"{name} is itself generated; refer to its inputs")
        ctx.problems.extend(
            calls(f"{path}.generated", text, "generated expression", ctx.extension_schema)
        )
    if declares_intent(column):
        expressions, problems = table_intent(path, table, column, ctx.extension_schema)
        ctx.problems.extend(problems)
        updates.update(expressions)
    return column.model_copy(update=updates)


def _resolve_type(ctx: _Context, path: str, table: Table, text: str) -> str:
    parsed = parse_type(text)
    if parsed.schema is None and parsed.name in BUILTIN_TYPES:
        return text
    if parsed.schema is None:
        for schema in (table.schema_, *ctx.manifest.schemas):
            if (schema, parsed.name) in ctx.enums:
                return parsed.render(schema=schema)
        extension = EXTENSION_TYPES.get(parsed.name)
        if extension in ctx.extension_schema:
            return parsed.render(schema=ctx.extension_schema[extension])
    elif (parsed.schema, parsed.name) in ctx.enums or (
        EXTENSION_TYPES.get(parsed.name) in ctx.extension_schema
    ):
        return parsed.render()
    ctx.report(
        path,
        f"unknown type {text!r}: declare it under 'enums', list the extension that provides it "
        "under 'extensions', or use a built-in type",
    )
    return text


def _qualify_sequences(ctx: _Context, path: str, table: Table, default: str) -> str:
    expr = parse_expression(default, what="default")
    result = default
    for written in expr.sequences:
        *qualifier, name = split_qualified(written)
        schema = qualifier[0] if qualifier else ""
        candidates = [schema] if schema else [table.schema_, *ctx.manifest.schemas]
        found = next((s for s in candidates if (s, name) in ctx.sequences), None)
        if found is None:
            ctx.report(path, f"nextval({written!r}): declare the sequence under 'sequences'")
        elif not schema:
            result = result.replace(f"'{written}'", f"'{qualified(found, name)}'")
    return parse_expression(result, what="default").sql


# -- keys, constraints, indexes -----------------------------------------------------------------


def _resolve_table(ctx: _Context, i: int, table: Table) -> Table:
    path = f"$.tables[{i}]"
    table, problems = own_columns(path, table)
    ctx.problems.extend(problems)
    columns = {c.name: c for c in table.columns}
    taken = ctx.relation_names.setdefault(table.schema_, set())

    def need(where: str, names: tuple[str, ...] | list[str]) -> None:
        for name in names:
            if name not in columns:
                ctx.report(where, f"column {name} does not exist in table {table.name}")

    def named(where: str, given: str | None, cols: tuple[str, ...], label: str) -> str:
        if given is None:
            return unique_name(table.name, cols, label, taken)
        if given in taken:
            ctx.report(where, f"name {given} is already used in schema {table.schema_}")
        taken.add(given)
        return given

    table = fold_into_primary_key(table)
    updates: dict[str, object] = {"unique": table.unique}
    if table.primary_key is not None:
        pk = table.primary_key
        need(f"{path}.primary_key.columns", pk.columns)
        for name in pk.columns:
            if name in columns and columns[name].nullable:
                ctx.report(f"{path}.columns", f"primary key column {name} must be nullable false")
        pk_name = named(f"{path}.primary_key.name", pk.name, (), "pkey")
        updates["primary_key"] = pk.model_copy(update={"name": pk_name})
    uniques = []
    for j, uq in enumerate(table.unique):
        need(f"{path}.unique[{j}].columns", uq.columns)
        uq_name = named(f"{path}.unique[{j}].name", uq.name, uq.columns, "key")
        uniques.append(uq.model_copy(update={"name": uq_name}))
    fks = []
    for j, fk in enumerate(table.foreign_keys):
        need(f"{path}.foreign_keys[{j}].columns", fk.columns)
        _check_reference(ctx, f"{path}.foreign_keys[{j}]", table, fk)
        fk_name = named(f"{path}.foreign_keys[{j}].name", fk.name, fk.columns, "fkey")
        fks.append(fk.model_copy(update={"name": fk_name}))
    checks = []
    for j, ck in enumerate(table.checks):
        refs = parse_expression(ck.expression, what="check").columns
        need(f"{path}.checks[{j}].expression", refs)
        where = f"{path}.checks[{j}].expression"
        ctx.problems.extend(calls(where, ck.expression, "check", ctx.extension_schema))
        ck_name = named(
            f"{path}.checks[{j}].name", ck.name, refs if len(refs) == 1 else (), "check"
        )
        checks.append(ck.model_copy(update={"name": ck_name}))
    indexes = []
    for j, ix in enumerate(table.indexes):
        keys = index_columns(ix)
        need(f"{path}.indexes[{j}]", keys)
        ctx.problems.extend(index_calls(f"{path}.indexes[{j}]", ix, ctx.extension_schema))
        ix_name = named(f"{path}.indexes[{j}].name", ix.name, index_name_parts(ix), "idx")
        indexes.append(ix.model_copy(update={"name": ix_name}))
        for where, message in index_extensions(f"{path}.indexes[{j}]", ix, ctx.extension_schema):
            ctx.report(where, message)
    updates["unique"] = tuple(sorted(uniques, key=lambda c: c.name or ""))
    updates["foreign_keys"] = tuple(sorted(fks, key=lambda c: c.name or ""))
    updates["checks"] = tuple(sorted(checks, key=lambda c: c.name or ""))
    updates["indexes"] = tuple(sorted(indexes, key=lambda c: c.name or ""))
    return table.model_copy(update=updates)


def _check_reference(ctx: _Context, path: str, table: Table, fk: ForeignKey) -> None:
    ref = fk.references
    target = ctx.tables.get((ref.schema_, ref.table))
    if target is None:
        ctx.report(
            f"{path}.references",
            f"table {ref.schema_}.{ref.table} is not declared in this manifest: declare it "
            "(a legacy table too, with its key as it is) so the reference can be checked",
        )
        return
    target_columns = {c.name: c for c in target.columns}
    keys = [tuple(u.columns) for u in target.unique]
    keys += [tuple(e.column or "" for e in ix.elements) for ix in target.indexes if ix.unique]
    if target.primary_key is not None:
        keys.append(tuple(target.primary_key.columns))
    if not any(set(key) == set(ref.columns) for key in keys):
        ctx.report(
            f"{path}.references.columns",
            f"{ref.table}({', '.join(ref.columns)}) is not its primary key or a unique key",
        )
    own = {c.name: c for c in table.columns}
    for local, remote in zip(fk.columns, ref.columns, strict=True):
        if local not in own or remote not in target_columns:
            if remote not in target_columns:
                ctx.report(f"{path}.references.columns", f"{ref.table}.{remote} does not exist")
            continue
        local_type, remote_type = own[local].type, target_columns[remote].type
        if not can_reference(local_type, remote_type):
            ctx.report(
                f"{path}.columns",
                f"{table.name}.{local} is {local_type} but references {ref.table}.{remote} of "
                f"type {remote_type}, and PostgreSQL has no equality between the two: make "
                f"{local} {remote_type}",
            )
