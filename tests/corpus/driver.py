"""Runs inside the corpus venv (``python -m tests.corpus.driver COMMAND APP [DSN...]``): imports one
application's model modules and prints one JSON line, prefixed ``CORPUS-JSON:`` (applications
print their own banners), that the tests in our venv read.

Commands: ``manifest`` (the adapter's manifest, canonical JSON), ``changed CHANGES`` (the manifest
of the models changed as a user would for a new version: ``changed``), ``create-all DSN
[CHANGES]``,
``compare DSN...`` (Alembic's compare_metadata against each database), ``migrate DSN`` (the
application's own Alembic migrations to head). Errors are reported in the JSON, never as a traceback only.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import re
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.corpus.apps import BY_NAME, App

MARK = "CORPUS-JSON:"


def _enter_bare(package: str) -> None:
    """Make ``package`` importable without running its ``__init__``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None, package
    module = types.ModuleType(package)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    sys.modules[package] = module


def _resolve(ref: str) -> sa.MetaData:
    module_name, path = ref.split(":")
    value: Any = importlib.import_module(module_name)
    for attr in path.split("."):
        value = getattr(value, attr)
    return value if isinstance(value, sa.MetaData) else value.metadata


_LOADED: dict[str, sa.MetaData] = {}


def load(app: App) -> sa.MetaData:
    """The application's metadata (repaired where create_all cannot build it on PostgreSQL at
    all: ``REPAIRS``); several storages sharing one database are merged."""
    if app.name not in _LOADED:
        _LOADED[app.name] = _load(app)
        REPAIRS.get(app.name, lambda _: None)(_LOADED[app.name])
    return _LOADED[app.name]


def _load(app: App) -> sa.MetaData:
    os.environ.update(app.env)
    for package in app.bare:
        _enter_bare(package)
    for module in app.modules:
        importlib.import_module(module)
    parts = [_resolve(ref) for ref in app.metadata]
    if len(parts) == 1:
        return parts[0]
    merged = sa.MetaData(naming_convention=dict(parts[0].naming_convention))
    for part in parts:
        for table in part.tables.values():
            if table.key not in merged.tables:
                table.to_metadata(merged)
    return merged


def _repair_mlflow(metadata: sa.MetaData) -> None:
    """input_tags.input_uuid references inputs.input_uuid, which has no unique key, so PostgreSQL
    refuses the foreign key; mlflow's own migration (7f2a7d5fae7d) creates input_tags without
    it. The repair drops that one foreign key, as the migration does."""
    table = metadata.tables["input_tags"]
    for fk in [c for c in table.constraints if isinstance(c, sa.ForeignKeyConstraint)]:
        if fk.referred_table.name == "inputs":
            table.constraints.discard(fk)
            for column in fk.columns:
                column.foreign_keys.clear()
            table.foreign_keys.difference_update(fk.elements)
    # Index("index_trace_tags_request_id") and its trace_request_metadata twin name no column:
    # create_all emits "ON trace_tags ()". Migration 867495a8f9d4 creates them on request_id.
    for table in metadata.tables.values():
        for index in [i for i in table.indexes if not i.expressions]:
            table.indexes.discard(index)
            sa.Index(index.name, table.c.request_id)


def _repair_prefect(metadata: sa.MetaData) -> None:
    """Two things create_all cannot build on PostgreSQL. (1) The trigram indexes are declared
    ``USING gin`` without an operator class, which PostgreSQL refuses for varchar; prefect's
    migration d60c18774a5d creates them ``(name gin_trgm_ops)`` after CREATE EXTENSION pg_trgm:
    the repair adds that operator class. (2) ``artifact.key`` has ``index=True`` (named
    ``ix_artifact__key`` by the convention) and an explicit ``Index("ix_artifact__key", key)``:
    the same index twice, which the second CREATE INDEX refuses; the repair keeps one."""
    for table in metadata.tables.values():
        seen: set[str | None] = set()
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name in seen:
                table.indexes.discard(index)
            seen.add(index.name)
        for index in table.indexes:
            if index.name and index.name.startswith("trgm_ix_"):
                columns = [c.name for c in index.columns]
                index.dialect_options["postgresql"]["ops"] = dict.fromkeys(columns, "gin_trgm_ops")


def _repair_zenml(metadata: sa.MetaData) -> None:
    """zenml supports MySQL and SQLite, not PostgreSQL: its long text columns are
    VARCHAR(16777215) (MySQL's MEDIUMTEXT size), over PostgreSQL's varchar limit of 10485760.
    The repair makes exactly those columns TEXT, what a PostgreSQL port would write."""
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, sa.String) and (column.type.length or 0) > 10485760:
                column.type = sa.Text()
    _repair_zenml_names(metadata)


def _repair_zenml_names(metadata: sa.MetaData) -> None:
    """zenml names a foreign key and an index in 64 characters (MySQL's limit); SQLAlchemy
    refuses an explicit name over PostgreSQL's 63. The repair cuts them to the 63 bytes
    PostgreSQL keeps."""
    for table in metadata.tables.values():
        for constraint in [*table.constraints, *table.indexes]:
            name = constraint.name
            if isinstance(name, str) and len(name.encode()) > 63:
                constraint.name = name.encode()[:63].decode(errors="ignore")


REPAIRS: dict[str, Callable[[sa.MetaData], None]] = {
    "mlflow": _repair_mlflow,
    "prefect": _repair_prefect,
    "zenml": _repair_zenml,
}


def sync_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def manifest(app: App, metadata: sa.MetaData) -> dict[str, Any]:
    from contracts import canonical_json
    from contracts.from_sqlalchemy import manifest_from_metadata

    started = time.perf_counter()
    built = manifest_from_metadata(metadata, service=app.name, database="corpus")
    took = time.perf_counter() - started
    return {"manifest": canonical_json(built), "tables": len(metadata.tables), "seconds": took}


#: the types a change may give a column, as a user writes them in a model
TYPES: dict[str, Callable[[], Any]] = {
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "text": sa.Text,
}


def changed(metadata: sa.MetaData, changes: list[dict[str, Any]]) -> sa.MetaData:
    """A copy of ``metadata`` changed the way a user edits the models for the next version, the
    intent in ``Column.info["schemaheal"]``. Each change names a ``table`` and either an existing
    ``column`` (optionally given a new ``name`` and ``type``) or a column to ``add`` (NOT NULL, of
    ``type``), with its ``intent``. The loaded metadata is left as it is."""
    copy = sa.MetaData(naming_convention=dict(metadata.naming_convention))
    for table in metadata.sorted_tables:
        table.to_metadata(copy)
    for change in changes:
        table = copy.tables[change["table"]]
        info = {"schemaheal": dict(change["intent"])}
        if "add" in change:
            table.append_column(
                sa.Column(change["add"], TYPES[change["type"]](), nullable=False, info=info)
            )
            continue
        column = table.c[change["column"]]
        column.info = {**column.info, **info}
        if "type" in change:
            column.type = TYPES[change["type"]]()
        if "name" in change:
            column.name = change["name"]
            if not change.get("keep_index_names"):
                _rename_column_indexes(table, column)
    return copy


def _rename_column_indexes(table: sa.Table, column: sa.Column[Any]) -> None:
    """The index of a renamed ``Column(index=True)`` is named by the naming convention when the
    column is written, as it is for the new version's model; an explicit ``Index`` keeps its
    name (``keep_index_names`` keeps those of ``index=True`` too, as if written explicitly)."""
    for index in [i for i in table.indexes if i._column_flag and column in i.columns.values()]:
        table.indexes.discard(index)
        sa.Index(None, *index.columns, unique=index.unique, _column_flag=True)._set_parent(table)


def create_all(app: App, metadata: sa.MetaData, dsn: str) -> dict[str, Any]:
    started = time.perf_counter()
    engine = sa.create_engine(sync_url(dsn))
    with engine.begin() as conn:
        for extension in app.extensions:
            conn.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{extension}"'))
        metadata.create_all(conn)
    engine.dispose()
    return {"seconds": time.perf_counter() - started}


def compare(metadata: sa.MetaData, *dsns: str) -> dict[str, Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    diffs = []
    for dsn in dsns:
        engine = sa.create_engine(sync_url(dsn))
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
        # reprs of callables carry their addresses, which differ from call to call
        diffs.append(sorted(re.sub(r" at 0x[0-9a-f]+", "", str(d)) for d in found))
    return {"diffs": diffs}


def _migrate_optuna(dsn: str) -> None:
    from alembic import command
    from alembic.config import Config
    from optuna.storages._rdb import models

    config = Config()
    config.set_main_option("script_location", str(Path(models.__file__).parent / "alembic"))
    config.set_main_option("sqlalchemy.url", sync_url(dsn))
    command.upgrade(config, "head")


def _migrate_mlflow(dsn: str) -> None:
    """What ``mlflow server`` does on a new database: its initial tables, then every migration."""
    from mlflow.store.db.utils import _initialize_tables

    engine = sa.create_engine(sync_url(dsn))
    _initialize_tables(engine)
    engine.dispose()


def _migrate_phoenix(dsn: str) -> None:
    from phoenix.db.migrate import migrate
    from sqlalchemy.ext.asyncio import create_async_engine

    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    migrate(create_async_engine(url, poolclass=sa.pool.NullPool), log_migrations=False)


MIGRATORS: dict[str, Callable[[str], None]] = {
    "optuna": _migrate_optuna,
    "mlflow": _migrate_mlflow,
    "phoenix": _migrate_phoenix,
}


def run(command: str, app: App, args: list[str]) -> dict[str, Any]:
    if command == "migrate":
        assert app.migrations is not None, f"{app.name} has no migrations in the corpus"
        load(app)
        MIGRATORS[app.migrations](args[0])
        return {}
    metadata = load(app)
    if command == "manifest":
        return manifest(app, metadata)
    if command == "changed":
        return manifest(app, changed(metadata, json.loads(args[0])))
    if command == "create-all":  # DSN [CHANGES]: the new version's models, changed
        changes = json.loads(args[1]) if len(args) > 1 else []
        return create_all(app, changed(metadata, changes) if changes else metadata, args[0])
    if command == "compare":
        return compare(metadata, *args)
    raise SystemExit(f"unknown command {command!r}")


def answer(command: str, app: App, args: list[str]) -> None:
    try:
        result = {"ok": True, **run(command, app, args)}
    except Exception as exc:  # reported to the test, which shows it
        lines = traceback.format_exception_only(exc)
        result = {"ok": False, "error": "".join(lines).strip(), "trace": traceback.format_exc()}
    print(MARK + json.dumps(result), flush=True)


def serve(app: App) -> None:
    """One command per stdin line (JSON list: command, args...): the import is paid once."""
    for line in sys.stdin:
        command, *args = json.loads(line)
        answer(command, app, args)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # Alembic env.py files skip fileConfig() then
    command, name, *args = sys.argv[1:]
    if command == "serve":
        serve(BY_NAME[name])
    else:
        answer(command, BY_NAME[name], args)


if __name__ == "__main__":
    main()
