"""``plan`` says what a heal would refuse, and which running swap would stop, before anything
runs: the same text the heal gives, on a real PostgreSQL; which running migrations are checked
(pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts import load_manifest
from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME, WIDE_KEY
from tests.engine.test_heal_expand import _cli
from tests.engine.test_swap_dependents import SCHEMA, WIDE_CODE
from worker.engine import backfill_store as store
from worker.engine.connection import connect
from worker.engine.expand import ColumnMigration
from worker.engine.expand_changed import BEFORE_SWAP, unswapped
from worker.engine.heal import Outcome, heal

AT = datetime(2026, 12, 2, tzinfo=UTC)


def progress(m: ColumnMigration, state: str, enforce_steps: int = 0) -> store.Progress:
    return store.Progress(
        migration=m, state=state, stop_key=None, last_key=None, rows_scanned=0,
        rows_touched=0, batches=0, enforce_steps=enforce_steps, error=None,
        registered_at=AT, updated_at=AT, finished_at=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("given", "checked"),
    [
        (progress(WIDE_KEY, store.BACKFILLING), True),
        (progress(WIDE_KEY, store.ENFORCING, 5), True),  # the swap is step 6
        (progress(WIDE_KEY, store.ENFORCING, 6), False),  # swapped
        (progress(WIDE_KEY, store.EXPANDED, 7), False),
        (progress(WIDE_KEY, store.ABANDONED), False),
        (progress(RENAME, store.BACKFILLING), False),  # no swap
    ],
)
def test_unswapped(given: store.Progress, checked: bool) -> None:
    assert unswapped([given]) == ((given.migration,) if checked else ())


@pytest.mark.postgres
async def test_plan_shows_a_swap_refused_before_expand_and_ahead_of_a_running_swap(
    database: FreshDatabase, tmp_path: Path
) -> None:
    await database.execute(SCHEMA)
    view = "CREATE MATERIALIZED VIEW public.code_totals AS SELECT sum(code) FROM public.accounts"
    await database.execute(view)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(WIDE_CODE))
    code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
    assert code == 1, err
    (refused,) = json.loads(out)["refused"]
    (planned,) = json.loads(out)["migrations"]
    conn = await connect(database.dsn)
    try:
        healed = await heal(conn, load_manifest(WIDE_CODE))
        assert (healed.outcome, healed.error_code) == (Outcome.FAILED, "swap-refused")
        assert refused == {"code": "swap-refused", "migration": planned["id"],
                           "message": healed.error_message}  # fmt: skip
        code, _, err = await _cli("plan", "--dsn", database.dsn, str(path))
        assert code == 1 and "Refused (swap-refused):" in err, err
        # expanded without the view; made again while the migration runs: its swap would stop
        await database.execute("DROP MATERIALIZED VIEW public.code_totals")
        assert (await heal(conn, load_manifest(WIDE_CODE))).outcome is Outcome.HEALED
        await database.execute(view)
        code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
        assert code == 1, err
        (refused,) = json.loads(out)["refused"]
        assert (refused["code"], refused["migration"]) == ("swap-refused", planned["id"])
        assert "materialized view public.code_totals" in refused["message"]
        assert refused["message"].endswith(BEFORE_SWAP)
        await database.execute("DROP MATERIALIZED VIEW public.code_totals")
        code, out, err = await _cli("plan", "--dsn", database.dsn, str(path), "--format", "json")
        assert (code, json.loads(out)["refused"]) == (0, []), err
    finally:
        await conn.close()
