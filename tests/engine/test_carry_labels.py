"""Security labels on a column, across an online migration (issue 19), with a real provider:
PostgreSQL's own test provider ``dummy_seclabel`` (provider ``dummy``), built by
``.ci/seclabel`` for each server version and preloaded on a server of these tests' own.

The in-place swap and a rename give the new column the old one's labels. A label whose provider
is not loaded any more cannot be set: the swap stops the migration, the heal refuses the expand,
the contract waits, each naming the label and what to do, and nothing is lost — once the
provider is back, a retry (or the next round) carries it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import SERVERS, FreshDatabase, fresh_database
from tests.contracts.builders import column
from tests.engine.backfill_helpers import expand
from tests.engine.test_carry_column import users
from tests.engine.test_contract import GRACE, always, tracked_long_ago
from tests.engine.test_swap_dependents import CODE, SETTINGS
from worker.embedded.postgres import LocalPostgres, PostgresBinaries
from worker.engine import backfill_store
from worker.engine.backfill import Finish, run_migration, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, run_contracts
from worker.engine.heal import Outcome, heal

pytestmark = pytest.mark.postgres
BUILT = Path.home() / ".cache" / "schemaheal" / "seclabel"

LABELS = """
SELECT a.attname::text, l.label FROM pg_seclabel l
  JOIN pg_attribute a ON a.attrelid = l.objoid AND a.attnum = l.objsubid
 WHERE l.classoid = 'pg_class'::regclass AND l.objoid = $1::regclass AND l.provider = 'dummy'
 ORDER BY 1"""


def preload(server: LocalPostgres, library: Path | None) -> None:
    server.options = "" if library is None else f"-c shared_preload_libraries={library}"


async def restart(server: LocalPostgres, library: Path | None) -> None:
    """The server again, preloading ``library`` (or nothing); what committed is kept (the
    test servers commit without waiting for the disk: a checkpoint first)."""
    admin = await asyncpg.connect(server.dsn)
    try:
        await admin.execute("CHECKPOINT")
    finally:
        await admin.close()
    server.crash()
    preload(server, library)
    server.restart()


@contextlib.asynccontextmanager
async def provider_gone(server: LocalPostgres) -> AsyncIterator[None]:
    """The server without dummy_seclabel meanwhile (the labels stay in the catalog)."""
    library = server.root / "dummy_seclabel"
    await restart(server, None)
    try:
        yield
    finally:
        await restart(server, library)


@pytest.fixture(scope="module", params=SERVERS, ids=[f"pg{s.version}" for s in SERVERS])
def labelled(request: pytest.FixtureRequest) -> Iterator[LocalPostgres]:
    """A server of its own with dummy_seclabel preloaded (from next to its data directory)."""
    binaries: PostgresBinaries = request.param
    built = BUILT / binaries.version / "dummy_seclabel.so"
    if not built.exists():
        pytest.skip(f"dummy_seclabel is not built for PostgreSQL {binaries.version}: "
                    "run bash .ci/seclabel")  # fmt: skip
    server = LocalPostgres(binaries)
    library = server.root / "dummy_seclabel.so"
    shutil.copy(built, library)
    library.chmod(0o755)
    preload(server, server.root / "dummy_seclabel")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def db(labelled: LocalPostgres) -> AsyncIterator[FreshDatabase]:
    async with fresh_database(labelled) as fresh:
        yield fresh


ACCOUNTS = """
CREATE TABLE public.accounts (id serial PRIMARY KEY, code integer NOT NULL);
INSERT INTO public.accounts (code) SELECT g * 3 FROM generate_series(1, 200) g;
SECURITY LABEL FOR dummy ON COLUMN public.accounts.code IS 'classified';
SECURITY LABEL FOR dummy ON COLUMN public.accounts.id IS 'unclassified';
"""


async def test_the_swap_and_a_rename_carry_the_column_s_labels(db: FreshDatabase) -> None:
    await db.execute(
        ACCOUNTS + "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 20) AS i;"
        "SECURITY LABEL FOR dummy ON COLUMN public.users.name IS 'secret';"
    )
    conn = await connect(db.dsn)
    try:
        await expand(conn, CODE)
        assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED
        labels = [tuple(r) for r in await conn.fetch(LABELS, "public.accounts")]
        # the retired column keeps its own until contract drops it
        assert labels == [("code", "classified"), ("code__sh_old", "classified"),
                          ("id", "unclassified")]  # fmt: skip
        renamed = users(column("full_name", nullable=False, renamed_from="name"))
        assert (await heal(conn, renamed)).outcome is Outcome.HEALED
        labels = [tuple(r) for r in await conn.fetch(LABELS, "public.users")]
        assert labels == [("full_name", "secret"), ("name", "secret")]
    finally:
        await conn.close()


async def test_a_label_whose_provider_is_gone_stops_the_swap_and_is_kept(
    db: FreshDatabase, labelled: LocalPostgres
) -> None:
    await db.execute(
        ACCOUNTS + "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "SECURITY LABEL FOR dummy ON COLUMN public.users.name IS 'secret';"
    )
    async with provider_gone(labelled):
        conn = await connect(db.dsn)
        try:
            await expand(conn, CODE)
            assert await run_migration(conn, CODE, SETTINGS) is Finish.STOPPED
            record = await backfill_store.progress(conn, CODE.id)
            assert record is not None and record.error is not None
            assert "classified" in record.error and "dummy" in record.error
            assert "load the security label provider" in record.error
            kind = await conn.fetchval("SELECT pg_typeof(code)::text FROM public.accounts LIMIT 1")
            assert kind == "integer"  # the swap rolled back whole
            # a rename's expand, in the heal: refused the same way, and nothing is changed
            renamed = users(column("full_name", nullable=False, renamed_from="name"))
            result = await heal(conn, renamed)
            assert result.outcome is Outcome.FAILED
            assert "secret" in (result.error_message or "")
            assert "load the security label provider" in (result.error_message or "")
            columns = await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid ="
                                       " 'public.users'::regclass AND attnum > 0")  # fmt: skip
            assert {r["attname"] for r in columns} == {"id", "name"}
        finally:
            await conn.close()
    conn = await connect(db.dsn)
    try:
        await backfill_store.retry(conn, CODE.id)
        assert await run_migration(conn, CODE, SETTINGS) is Finish.EXPANDED
        labels = [tuple(r) for r in await conn.fetch(LABELS, "public.accounts")]
        assert ("code", "classified") in labels
    finally:
        await conn.close()


async def test_a_label_given_during_a_rename_s_rollout_waits_for_its_provider_at_contract(
    db: FreshDatabase, labelled: LocalPostgres
) -> None:
    """Labelled after the expand, on the old column: contract carries it, and without its
    provider waits (every round, saying why) rather than drop the old column and the label."""
    await db.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 20) AS i;"
    )
    conn = await connect(db.dsn)
    try:
        renamed = users(column("full_name", nullable=False, renamed_from="name"))
        assert (await heal(conn, renamed)).outcome is Outcome.HEALED
        (m,) = [p.migration for p in await backfill_store.registered(conn)]
        assert await run_pending(conn) == {m.id: Finish.EXPANDED}
        await conn.execute("SECURITY LABEL FOR dummy ON COLUMN public.users.name IS 'classified'")
        await tracked_long_ago(conn)
    finally:
        await conn.close()
    async with provider_gone(labelled):
        conn = await connect(db.dsn)
        try:
            finish, why = (await run_contracts(conn, always, GRACE))[m.id]
            assert finish is ContractFinish.LATER
            assert "classified" in why and "dummy" in why
            assert [tuple(r) for r in await conn.fetch(LABELS, "public.users")] == [
                ("name", "classified")
            ]  # fmt: skip
        finally:
            await conn.close()
    conn = await connect(db.dsn)
    try:
        assert (await run_contracts(conn, always, GRACE))[m.id][0] is ContractFinish.CONTRACTED
        labels = [tuple(r) for r in await conn.fetch(LABELS, "public.users")]
        assert labels == [("full_name", "classified")]  # the old column is gone
    finally:
        await conn.close()
