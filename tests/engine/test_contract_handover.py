"""A rename whose unique index or unique constraint keeps its name, on real PostgreSQL: built
under ``<name>__sh_rn`` on the new column at expand (uniqueness enforced on both columns
meanwhile), handed its name at contract (:mod:`worker.engine.expand_handover`)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from contracts import Manifest, load_manifest
from tests.conftest import FreshDatabase
from tests.contracts.builders import column, manifest, pk, table
from tests.engine.test_contract import GRACE, always, never, tracked_long_ago
from worker.engine import backfill_store
from worker.engine.backfill import Finish, run_pending
from worker.engine.connection import connect
from worker.engine.contract import ContractFinish, run_contracts
from worker.engine.heal import Outcome, heal

pytestmark = pytest.mark.postgres

KEY = "users_name_key"
CREATE = {
    "index": f"CREATE UNIQUE INDEX {KEY} ON public.users (name)",
    "constraint": f"ALTER TABLE public.users ADD CONSTRAINT {KEY} UNIQUE (name)",
}


def users(name: dict[str, Any], kind: str) -> Manifest:
    keyed = {"indexes": [{"name": KEY, "elements": [{"column": name["name"]}], "unique": True}]}
    if kind == "constraint":
        keyed = {"unique": [{"name": KEY, "columns": [name["name"]]}]}
    id_ = column("id", "integer", nullable=False)
    return load_manifest(manifest(table("users", id_, name, primary_key=pk("id"), **keyed)))


async def indexes(conn: asyncpg.Connection) -> dict[str, tuple[str, bool, str | None]]:
    """name → (definition, valid, the constraint's type it backs) of users' indexes."""
    rows = await conn.fetch(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) AS def, x.indisvalid, c.contype::text"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid"
        " WHERE x.indrelid = 'public.users'::regclass AND NOT x.indisprimary"
    )
    return {r["relname"]: (r["def"], r["indisvalid"], r["contype"]) for r in rows}


@pytest.mark.parametrize("approve", [False, True])
@pytest.mark.parametrize("kind", ["index", "constraint"])
async def test_the_kept_name_is_built_aside_and_handed_over_at_contract(
    database: FreshDatabase, kind: str, approve: bool
) -> None:
    await database.execute(
        "CREATE TABLE public.users (id integer PRIMARY KEY, name text NOT NULL);"
        f"{CREATE[kind]};"
        "INSERT INTO public.users SELECT i, 'user ' || i FROM generate_series(1, 50) AS i"
    )
    old = users(column("name", nullable=False), kind)
    new = users(column("full_name", nullable=False, renamed_from="name"), kind)
    contype = "u" if kind == "constraint" else None
    conn = await connect(database.dsn)
    try:
        healed = await heal(conn, new)
        assert healed.outcome is Outcome.HEALED, healed.error_message
        assert any("CONCURRENTLY" in s.sql and "users_name_key__sh_rn" in s.sql
                   for s in healed.applied)  # fmt: skip
        assert await indexes(conn) == {
            KEY: (f"CREATE UNIQUE INDEX {KEY} ON public.users USING btree (name)", True, contype),
            f"{KEY}__sh_rn": (
                f"CREATE UNIQUE INDEX {KEY}__sh_rn ON public.users USING btree (full_name)",
                True,
                None,
            ),
        }
        for manifest_ in (new, old):  # both versions boot, nothing to do, nothing blocking
            again = await heal(conn, manifest_)
            assert (again.outcome, again.applied) == (Outcome.UNCHANGED, ()), again.error_message
            assert [d.target for d in again.drift if d.blocking] == []
        with pytest.raises(asyncpg.UniqueViolationError):  # a new writer, through full_name
            await conn.execute("INSERT INTO public.users (id, full_name) VALUES (51, 'user 1')")
        (m,) = [p.migration for p in await backfill_store.registered(conn)]
        assert await run_pending(conn) == {m.id: Finish.EXPANDED}
        await tracked_long_ago(conn)
        finish, _ = (await run_contracts(conn, always if approve else never, GRACE))[m.id]
        assert finish is (ContractFinish.CONTRACTED if approve else ContractFinish.KEPT)
        handed = f"CREATE UNIQUE INDEX {KEY} ON public.users USING btree (full_name)"
        assert await indexes(conn) == {KEY: (handed, True, contype)}
        after = await heal(conn, new)
        assert (after.outcome, after.applied) == (Outcome.UNCHANGED, ()), after.error_message
        assert [d.target for d in after.drift if d.blocking] == []
    finally:
        await conn.close()
