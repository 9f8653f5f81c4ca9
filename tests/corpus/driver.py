"""Runs inside the corpus venv (``python -m tests.corpus.driver COMMAND APP [DSN...]``): imports one
application's model modules and prints one JSON line, prefixed ``CORPUS-JSON:`` (applications
print their own banners), that the tests in our venv read.

Commands: ``manifest`` (the adapter's manifest, canonical JSON), ``create-all DSN``, ``compare
DSN...`` (Alembic's compare_metadata against each database), ``migrate DSN`` (the application's
own Alembic migrations to head). Errors are reported in the JSON, never as a traceback only.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import sys
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
    """The application's metadata; several storages sharing one database are merged."""
    if app.name not in _LOADED:
        _LOADED[app.name] = _load(app)
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


def sync_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+psycopg2://", 1)


def manifest(app: App, metadata: sa.MetaData) -> dict[str, Any]:
    from contracts import canonical_json
    from contracts.from_sqlalchemy import manifest_from_metadata

    built = manifest_from_metadata(metadata, service=app.name, database="corpus")
    return {"manifest": canonical_json(built), "tables": len(metadata.tables)}


def create_all(app: App, metadata: sa.MetaData, dsn: str) -> dict[str, Any]:
    engine = sa.create_engine(sync_url(dsn))
    with engine.begin() as conn:
        for extension in app.extensions:
            conn.execute(sa.text(f'CREATE EXTENSION IF NOT EXISTS "{extension}"'))
        metadata.create_all(conn)
    engine.dispose()
    return {}


def compare(metadata: sa.MetaData, *dsns: str) -> dict[str, Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    diffs = []
    for dsn in dsns:
        engine = sa.create_engine(sync_url(dsn))
        with engine.connect() as conn:
            found = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
        diffs.append(sorted(str(d) for d in found))
    return {"diffs": diffs}


def _migrate_optuna(dsn: str) -> None:
    from alembic import command
    from alembic.config import Config

    import optuna.storages._rdb.models as models

    config = Config()
    config.set_main_option("script_location", str(Path(models.__file__).parent / "alembic"))
    config.set_main_option("sqlalchemy.url", sync_url(dsn))
    command.upgrade(config, "head")


def _migrate_mlflow(dsn: str) -> None:
    from mlflow.store.db.utils import _upgrade_db

    engine = sa.create_engine(sync_url(dsn))
    _upgrade_db(engine)
    engine.dispose()


def _migrate_phoenix(dsn: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from phoenix.db.migrate import migrate

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
    if command == "create-all":
        return create_all(app, metadata, args[0])
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
