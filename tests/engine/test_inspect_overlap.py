"""inspect works on each catalog query's rows while the server answers the next one: the next
query is on its way before the rows of the one before are taken, the realm is the one built from
the same rows read one query after the other, and an inspection that stops half way (an error in
the pure part, a cancellation) leaves the connection free for the next statement."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import FreshDatabase
from worker.engine import inspect as inspect_module
from worker.engine.connection import connect
from worker.engine.inspect import QUERIES, RealmRows, build_realm, fetch_catalog, inspect
from worker.engine.inspect_tables import STEPS, TableCache, TableRows

SETUP = """
    CREATE TABLE tenants (id integer PRIMARY KEY, name text);
    CREATE TABLE users (id bigint PRIMARY KEY, tenant_id integer REFERENCES tenants,
                        email text UNIQUE);
    CREATE INDEX users_email ON users (lower(email));
    CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);
    CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
"""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The catalog queries whose task has begun, in order: a task's first step runs
    ``conn.fetch`` up to writing its query (the statements are prepared by then)."""
    begun: list[str] = []

    def counted(conn: Any, name: str, wanted: list[str]) -> asyncio.Future[list[Any]]:
        async def fetch() -> list[Any]:
            begun.append(name)
            return await inspect_module._fetch(conn, name, wanted)

        return asyncio.ensure_future(fetch())

    monkeypatch.setattr(inspect_module, "_send", counted)
    return begun


async def test_the_next_query_is_sent_before_the_rows_are_taken(
    database: FreshDatabase, started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    await database.execute(SETUP)
    seen: list[tuple[str, list[str]]] = []
    take = RealmRows.take

    def watched(self: RealmRows, name: str, rows: Any) -> None:
        seen.append((name, list(started)))
        take(self, name, rows)

    monkeypatch.setattr(RealmRows, "take", watched)
    conn = await connect(database.dsn)
    try:
        realm = await inspect(conn, ["public"], cache=TableCache())
        monkeypatch.setattr(RealmRows, "take", take)
        assert realm == build_realm(await fetch_catalog(conn, ["public"]), cache=None)
    finally:
        await conn.close()
    order = list(QUERIES)
    assert [name for name, _ in seen] == order
    for k, (name, begun) in enumerate(seen[:-1]):
        assert begun == order[: k + 2], f"{order[k + 1]} was not on its way when {name} was taken"
    assert {"events", "events_2026"} <= {t.name for t in realm.tables}
    assert realm.table("public", "events") is not None
    assert realm.table("public", "events").partitioned  # type: ignore[union-attr]


async def test_the_partitions_query_is_skipped_without_partitioned_tables(
    database: FreshDatabase, started: list[str]
) -> None:
    await database.execute("CREATE TABLE plain (id integer PRIMARY KEY)")
    conn = await connect(database.dsn)
    try:
        realm = await inspect(conn, ["public"], cache=TableCache())
    finally:
        await conn.close()
    assert started == [name for name in QUERIES if name != "partitions"]
    assert [t.name for t in realm.tables] == ["plain"]


@pytest.mark.parametrize("step", ["columns", "indexes"])
async def test_an_error_while_taking_rows_leaves_the_connection_free(
    database: FreshDatabase, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    await database.execute(SETUP)

    def broken(self: TableRows, rows: Any) -> None:
        raise RuntimeError(f"broken {step}")

    monkeypatch.setattr(TableRows, f"_{step}", broken)
    conn = await connect(database.dsn)
    try:
        with pytest.raises(RuntimeError, match=f"broken {step}"):
            await inspect(conn, ["public"], cache=TableCache())
        # The query sent before the error ended before inspect returned: no "another operation
        # is in progress" on the next statement.
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_a_cancelled_inspection_leaves_the_connection_free(
    database: FreshDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    await database.execute(SETUP)
    conn = await connect(database.dsn)
    entered = asyncio.Event()
    take = RealmRows.take

    def slow(self: RealmRows, name: str, rows: Any) -> None:
        if name == "columns":
            entered.set()
        take(self, name, rows)

    monkeypatch.setattr(RealmRows, "take", slow)
    try:
        # constraints' query is in flight when the task is cancelled at its next await
        task = asyncio.ensure_future(inspect(conn, ["public"], cache=TableCache()))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await conn.fetchval("SELECT 1") == 1
        assert not conn.is_in_transaction()
    finally:
        await conn.close()


def test_table_rows_are_taken_in_their_order_only() -> None:
    rows = TableRows(8192, {}, None)
    with pytest.raises(ValueError, match="columns where tables was due"):
        rows.take("columns", [])
    rows.take("tables", [])
    with pytest.raises(ValueError, match="catalog rows missing: partitions, columns"):
        rows.built()
    for step in STEPS[1:]:
        rows.take(step, [])
    assert rows.built() == []
    with pytest.raises(ValueError, match="indexes where nothing was due"):
        rows.take("indexes", [])


def test_a_realm_needs_every_query() -> None:
    gathered = RealmRows(None)
    gathered.take("server", [(180000, 8192, ["public"])])
    with pytest.raises(ValueError, match="columns before tables"):
        RealmRows(None).take("columns", [])
    with pytest.raises(ValueError, match="catalog rows missing: opclasses, tables"):
        gathered.realm()
