"""``schemaheal manifest --from-sqlalchemy MODULE:ATTR``: a manifest from SQLAlchemy models.

ATTR is a ``MetaData``, a declarative base, SQLModel itself (``app.models:SQLModel``: its
``metadata`` holds every ``table=True`` model the module imported) or any mapped class."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from contracts import canonical_json
from contracts.from_sqlalchemy import manifest_from_metadata
from worker.errors import ConfigurationError


def load_metadata(target: str) -> object:
    """``package.module:Attr`` → the MetaData (or the declarative base's, SQLModel's metadata)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"--from-sqlalchemy wants MODULE:ATTR, got {target!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        value: object = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"importing {target}: {exc}") from exc
    return getattr(value, "metadata", value)


def manifest_command(
    target: str,
    service: str,
    database: str,
    out: str | None,
    *,
    extensions: tuple[str, ...] = (),
) -> int:
    """Write the manifest as indented canonical JSON to ``out`` (stdout when None)."""
    import sqlalchemy as sa

    metadata = load_metadata(target)
    if not isinstance(metadata, sa.MetaData):
        raise ConfigurationError(
            f"{target} is neither a MetaData nor a declarative base (nor SQLModel): name the "
            "one your models are declared on, e.g. app.models:Base or app.models:SQLModel"
        )
    manifest = manifest_from_metadata(
        metadata, service=service, database=database, extensions=extensions
    )
    text = json.dumps(json.loads(canonical_json(manifest)), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
    return 0
