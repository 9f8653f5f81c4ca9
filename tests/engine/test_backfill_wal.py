"""How the backfill's batches write their WAL (:mod:`worker.engine.backfill_wal`): the settings
they change (pure), and on a real PostgreSQL the settings each batch ran under — recorded by a
test trigger — and the session's own put back after them."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.conftest import FreshDatabase
from tests.engine.backfill_helpers import RENAME, USERS, expand
from worker.engine import backfill_wal
from worker.engine.backfill import BackfillSettings, Finish, run_migration
from worker.engine.backfill_wal import changes
from worker.engine.connection import connect

ROWS, BATCH = 1000, 250
#: the settings each row was touched under
SEEN = """
CREATE TABLE public.seen (wal_compression text, synchronous_commit text);
CREATE FUNCTION public.see() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen VALUES (current_setting('wal_compression'),
                                    current_setting('synchronous_commit'));
    RETURN NEW;
END $$;
CREATE TRIGGER b_see BEFORE UPDATE ON public.users FOR EACH ROW
    EXECUTE FUNCTION public.see();
"""


@pytest.mark.parametrize(
    ("current", "synchronous_commit", "wal_compression", "expected"),
    [
        ({"synchronous_commit": "on", "wal_compression": "off"}, True, True,
         {"wal_compression": "on"}),  # the default: page images compressed, commits wait
        ({"synchronous_commit": "on", "wal_compression": "lz4"}, True, True,
         {}),  # the server compresses already, maybe better: kept
        ({"synchronous_commit": "on", "wal_compression": "off"}, False, True,
         {"synchronous_commit": "off", "wal_compression": "on"}),
        ({"synchronous_commit": "local", "wal_compression": "off"}, False, False,
         {"synchronous_commit": "off"}),
        ({"synchronous_commit": "off", "wal_compression": "off"}, False, False,
         {}),  # the session commits so already
        ({"synchronous_commit": "off", "wal_compression": "off"}, True, False,
         {}),  # waiting is not forced on a session that does not wait
    ],
)  # fmt: skip
def test_the_batches_change_only_what_the_session_does_not_do_already(
    current: dict[str, str], synchronous_commit: bool, wal_compression: bool,
    expected: dict[str, str],
) -> None:  # fmt: skip
    done = changes(current, synchronous_commit=synchronous_commit, wal_compression=wal_compression)
    assert done == expected


@pytest.fixture
async def users(database: FreshDatabase) -> FreshDatabase:
    await database.execute(USERS.format(rows=ROWS) + SEEN)
    return database


async def _run(
    dsn: str, settings: BackfillSettings
) -> tuple[dict[tuple[str, str], int], list[str]]:
    """The migration run on a session of the server's defaults (``wal_compression`` off,
    ``synchronous_commit`` on): how many rows were touched under which settings, and the
    session's settings after the run."""
    conn = await connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = on")  # the test servers' default is off
        assert await conn.fetchval("SHOW wal_compression") == "off"
        await expand(conn, RENAME)
        await conn.execute("TRUNCATE public.seen")
        assert await run_migration(conn, RENAME, settings) is Finish.EXPANDED
        seen = await conn.fetch(
            "SELECT wal_compression, synchronous_commit, count(*) AS n "
            "FROM public.seen GROUP BY 1, 2"
        )
        touched = {(r["wal_compression"], r["synchronous_commit"]): r["n"] for r in seen}
        after = [await conn.fetchval(f"SHOW {name}") for name in backfill_wal.NAMES]
        return touched, after
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("synchronous_commit", [True, False])
async def test_batches_compress_their_page_images_and_may_commit_without_waiting(
    users: FreshDatabase, synchronous_commit: bool
) -> None:
    settings = BackfillSettings(
        batch_rows=BATCH, batch_target_ms=0, synchronous_commit=synchronous_commit
    )
    touched, after = await _run(users.dsn, settings)
    # wal_compression = on is pglz (PostgreSQL 15 and later name it so)
    assert touched == {("pglz", "on" if synchronous_commit else "off"): ROWS}
    assert after == ["on", "off"]  # synchronous_commit, wal_compression: the session's own


@pytest.mark.postgres
async def test_a_runner_that_may_not_set_wal_compression_runs_without_it(
    users: FreshDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    role = f"runner_{uuid.uuid4().hex[:8]}"
    await users.execute(
        f"""CREATE ROLE {role} LOGIN;
            GRANT CREATE ON DATABASE {users.name} TO {role};
            GRANT ALL ON SCHEMA public TO {role};
            GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
            ALTER TABLE public.users OWNER TO {role};
            ALTER TABLE public.seen OWNER TO {role}"""
    )
    backfill_wal._warned.discard("wal_compression")
    try:
        with caplog.at_level(logging.INFO, logger="schemaheal.backfill"):
            dsn = users.server.dsn_for(users.name, user=role)
            touched, after = await _run(dsn, BackfillSettings(batch_rows=BATCH, batch_target_ms=0))
        assert touched == {("off", "on"): ROWS}  # as before, and every row done
        assert after == ["on", "off"]
        said = [r.getMessage() for r in caplog.records if "wal_compression" in r.getMessage()]
        assert len(said) == 1 and "GRANT SET ON PARAMETER wal_compression" in said[0]
    finally:
        await users.execute(f"DROP OWNED BY {role} CASCADE")
        await users.execute(f"DROP ROLE {role}")
