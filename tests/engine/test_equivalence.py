"""The adapter and the engine together: healing an empty database from a manifest built from
SQLAlchemy models gives the catalog ``metadata.create_all()`` gives — compared as ``pg_dump
--schema-only`` text — and Alembic's autogenerate then finds nothing to do."""

from __future__ import annotations

import re
import subprocess
import warnings
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from contracts import Manifest
from contracts.from_sqlalchemy import manifest_from_metadata
from contracts.identifiers import quote_ident
from tests.conftest import FreshDatabase
from tests.contracts.adapter_models import CLASSES
from tests.contracts.corpus_models import CORPUS_CLASSES
from tests.contracts.test_from_sqlalchemy import rich_metadata
from tests.moments import without_moments
from worker.engine.connection import connect
from worker.engine.heal import HealOptions, HealResult, Outcome, heal


def nexus_metadata() -> sa.MetaData:
    from examples.nexus.models import Base

    return Base.metadata


def schema_dump(db: FreshDatabase) -> str:
    """pg_dump --schema-only of the public schema, without comments, blank lines and moments
    (tests/moments.py)."""
    pg_dump = db.server.binaries.bindir / "pg_dump"
    out = subprocess.run(
        [str(pg_dump), "--schema-only", "--no-owner", "--schema=public", db.dsn],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [
        line for line in out.stdout.splitlines()
        if line.strip() and not line.startswith("--") and not line.startswith("\\")
    ]  # fmt: skip
    return without_moments("\n".join(lines))


async def create_all(db: FreshDatabase, metadata: sa.MetaData) -> None:
    engine = create_async_engine(db.dsn.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await engine.dispose()


async def alembic_differences(db: FreshDatabase, metadata: sa.MetaData) -> list[str]:
    engine = create_async_engine(db.dsn.replace("postgresql://", "postgresql+asyncpg://"))
    async with engine.connect() as conn:
        with warnings.catch_warnings():
            # Alembic warns that it cannot compare some index expressions (an operator class
            # written in text); it says so for both databases alike, and the dumps compare them.
            warnings.simplefilter("ignore", UserWarning)
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    await engine.dispose()
    # reprs of Alembic's textual index elements carry their addresses, different on each call
    return [re.sub(r" at 0x[0-9a-f]+", "", str(d)) for d in diffs]


def sqlmodel_metadata() -> sa.MetaData:
    from tests.contracts.sqlmodel_app import Base

    return Base.metadata  # type: ignore[no-any-return]


# The embedded PostgreSQL 18 is built without uuid-ossp (Debian's 15 has it in contrib).
NOT_IN_THE_WHEEL = {18: {"uuid-ossp"}}
MODELS = [nexus_metadata, rich_metadata, *CLASSES, *CORPUS_CLASSES, sqlmodel_metadata]


@pytest.mark.parametrize("make_metadata", MODELS, ids=[f.__name__ for f in MODELS])
async def test_heal_builds_what_create_all_builds(
    make_metadata: Callable[[], sa.MetaData], database: FreshDatabase, pg_server: object
) -> None:
    """Healing an empty database gives create_all()'s catalog; a second heal is a no-op, and a
    database create_all() built is healthy as it is: no change, no drift."""
    metadata = make_metadata()
    manifest = manifest_from_metadata(metadata, service="s", database="d")
    missing = await _unavailable_extensions(database, manifest)
    assert set(missing) <= NOT_IN_THE_WHEEL.get(database.version, set()), (
        f"install {missing} for PostgreSQL {database.version}: see .ci/run"
    )
    result = await _heal(database, manifest)
    if missing:  # the heal stops at the extension, saying which
        assert f'extension "{missing[0]}" is not available' in (result.error_message or "")
        return
    assert result.outcome is Outcome.HEALED, result.error_message
    again = await _heal(database, manifest)
    assert (again.outcome, again.applied, again.drift) == (Outcome.UNCHANGED, (), ())

    reference = await _second_database(database)
    try:
        for extension in manifest.extensions:  # create_all() expects them to be there
            await reference.execute(f"CREATE EXTENSION {quote_ident(extension.name)}")
        await create_all(reference, metadata)
        assert schema_dump(database) == schema_dump(reference)
        on_create_all = await _heal(reference, manifest)
        assert (on_create_all.outcome, on_create_all.drift) == (Outcome.UNCHANGED, ())
        # Alembic sees the healed database exactly as it sees create_all()'s. (It does not honour
        # ddl_if(dialect="mysql"), so for the rich models it reports that index missing in both.)
        healed = [str(d) for d in await alembic_differences(database, metadata)]
        assert healed == [str(d) for d in await alembic_differences(reference, metadata)]
        if metadata is nexus_metadata():
            assert healed == []
    finally:
        await _drop(reference)


async def _heal(db: FreshDatabase, manifest: Manifest) -> HealResult:
    conn = await connect(db.dsn)
    try:
        return await heal(conn, manifest, options=HealOptions(record=False))
    finally:
        await conn.close()


async def _unavailable_extensions(db: FreshDatabase, manifest: Manifest) -> list[str]:
    rows = await db.fetch("SELECT name FROM pg_available_extensions")
    available = {row["name"] for row in rows}
    return [e.name for e in manifest.extensions if e.name not in available]


async def _second_database(db: FreshDatabase) -> FreshDatabase:
    name = db.name + "_ref"
    await FreshDatabase(db.server, "postgres").execute(f"CREATE DATABASE {name}")
    return FreshDatabase(db.server, name)


async def _drop(db: FreshDatabase) -> None:
    await FreshDatabase(db.server, "postgres").execute(f"DROP DATABASE {db.name} WITH (FORCE)")
