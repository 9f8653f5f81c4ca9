"""Issue 12, item 1: real applications' models, healed exactly as ``create_all`` builds them.

For each corpus application, on every PostgreSQL version under test: the manifest is built from
its models; a heal of an empty database gives the catalog create_all gives, and Alembic sees
both alike; drift inflicted on a create_all database full of rows is planned without a change
and healed back with every row intact; a second heal runs nothing and keeps every OID.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.corpus import catalog, rows
from tests.corpus.apps import APPS
from tests.corpus.harness import Corpus, drop_database, heal_once, new_database
from worker.embedded.postgres import LocalPostgres
from worker.engine.connection import connect
from worker.engine.desired import desired_state
from worker.engine.heal import Outcome, current_plan
from worker.engine.plan import PlanSettings

pytestmark = pytest.mark.slow
NAMES = [app.name for app in APPS]


def _assert_same(current: dict[str, Any], desired: dict[str, Any], what: str) -> None:
    lines = catalog.differences(current, desired)
    assert not lines, f"{what} differs from create_all's:\n" + "\n".join(lines[:40])


@pytest.mark.parametrize("app", NAMES)
async def test_heal_of_empty_database_is_create_all(
    app: str, corpus: Corpus, pg_server: LocalPostgres
) -> None:
    manifest = corpus.manifest(app)
    healed, reference = await new_database(pg_server), await new_database(pg_server)
    try:
        corpus.create_all(app, pg_server.dsn_for(reference))
        result = await heal_once(pg_server.dsn_for(healed), manifest)
        assert result.outcome is Outcome.HEALED, result.error_message or result.drift
        _assert_same(
            await catalog.snapshot(pg_server.dsn_for(healed)),
            await catalog.snapshot(pg_server.dsn_for(reference)),
            "the healed catalog",
        )
        on_healed, on_reference = corpus.alembic(
            app, pg_server.dsn_for(healed), pg_server.dsn_for(reference)
        )
        assert on_healed == on_reference, (
            f"Alembic on the healed database only: {sorted(set(on_healed) - set(on_reference))}"
            f"\non the create_all database only: {sorted(set(on_reference) - set(on_healed))}"
        )
    finally:
        await drop_database(pg_server, healed)
        await drop_database(pg_server, reference)


@pytest.mark.parametrize("app", NAMES)
async def test_drift_on_full_tables_is_planned_quietly_and_healed(
    app: str, corpus: Corpus, pg_server: LocalPostgres
) -> None:
    manifest = corpus.manifest(app)
    reference = await new_database(pg_server)
    try:
        corpus.create_all(app, pg_server.dsn_for(reference))
        work = await new_database(pg_server, template=reference)
        try:
            await _drift_and_heal(pg_server.dsn_for(work), pg_server.dsn_for(reference), manifest)
        finally:
            await drop_database(pg_server, work)
    finally:
        await drop_database(pg_server, reference)


async def _drift_and_heal(dsn: str, reference: str, manifest: Any) -> None:
    filled = await rows.fill(dsn)
    print(f"rows: {len(filled.tables) - len(filled.skipped)} of {len(filled.tables)} tables; "
          f"no row possible in {filled.skipped}")  # fmt: skip
    assert len(filled.skipped) < len(filled.tables)
    before_values = await rows.values(dsn)
    drift = await rows.inflict(dsn)
    assert drift.columns and drift.table, drift.describe()
    before = await catalog.snapshot(dsn), await catalog.identities(dsn)

    conn = await connect(dsn)
    try:
        plan = await current_plan(conn, desired_state(manifest), PlanSettings())
    finally:
        await conn.close()
    assert plan.statements, drift.describe()
    assert (await catalog.snapshot(dsn), await catalog.identities(dsn)) == before

    result = await heal_once(dsn, manifest)
    assert result.outcome is Outcome.HEALED, result.error_message or result.drift
    _assert_same(await catalog.snapshot(dsn), await catalog.snapshot(reference), "after drift")
    after_values = await rows.values(dsn)
    dropped = set(drift.columns)
    for table, table_rows in before_values.items():
        if table == drift.table:
            continue
        kept = [{k: v for k, v in r.items() if (table, k) not in dropped} for r in table_rows]
        survived = [{k: r[k] for k in kept_row} for r, kept_row in zip(
            after_values[table], kept, strict=True)]  # fmt: skip
        assert survived == kept, table


@pytest.mark.parametrize("app", NAMES)
async def test_second_heal_runs_nothing_and_keeps_every_oid(
    app: str, corpus: Corpus, pg_server: LocalPostgres
) -> None:
    manifest = corpus.manifest(app)
    name = await new_database(pg_server)
    dsn = pg_server.dsn_for(name)
    try:
        first = await heal_once(dsn, manifest)
        assert first.outcome is Outcome.HEALED, first.error_message or first.drift
        identities = await catalog.identities(dsn)
        second = await heal_once(dsn, manifest)
        assert second.outcome is Outcome.UNCHANGED, second.error_message or second.plan
        assert second.applied == ()
        assert await catalog.identities(dsn) == identities
    finally:
        await drop_database(pg_server, name)
