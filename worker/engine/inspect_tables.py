"""The tables of an inspection: catalog rows → :class:`~worker.engine.model.Table` values, and a
bounded cache that hands back the value built last time for the very same rows.

Pure: a table's value is a function of its rows (its ``tables`` row, its columns, constraints
and indexes, the names of the columns its foreign keys point at, the block size and the named
operator classes), so the cache keeps exactly those rows with the value and reuses the value only
for equal rows. A table whose rows changed in any field is built afresh: the cache only saves
time, it never decides anything.
A no-drift inspection of 10,000 tables reuses all of them (a built table costs ~25 µs of CPU, a
reused one the comparison of its rows).
The comparison is made query by query (:class:`TableRows`): comparing rows with those kept since
the last inspection reads memory long out of the processor's cache (~9 ms at 1000 tables), so
inspect runs each query's part while the server answers the next query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from worker.engine import model as m
from worker.engine.cache import BoundedCache
from worker.engine.inspect_build import Rows, TableBuilder, TableParts

__all__ = ["CACHED_TABLES", "STEPS", "TABLES", "TableCache", "TableRows"]

#: At most this many tables kept, the least recently inspected going first: about 6 KB each,
#: their rows included (59 MB for 10,000 tables, measured), so at most ~70 MB.
CACHED_TABLES = 12_000
_CONTEXTS = 64  # distinct (block size, operator classes) pairs before the cache starts over


class TableCache:
    """Built tables by their catalog rows: :data:`TABLES` in the worker, one per test."""

    def __init__(self, entries: int = CACHED_TABLES) -> None:
        #: (context, oid, schema, name) → the table's rows and the value built from them
        self.values: BoundedCache[tuple[Any, ...], _Kept] = BoundedCache(
            entries=entries, weight=entries
        )
        self._contexts: dict[tuple[Any, ...], int] = {}

    def context(self, block_size: int, opclasses: Mapping[int, str]) -> int:
        """A small number standing for what every table's value also depends on, so keys hold
        it instead of the operator classes (those of another server start a new number)."""
        key = (block_size, tuple(sorted(opclasses.items())))
        token = self._contexts.get(key)
        if token is None:
            if len(self._contexts) >= _CONTEXTS:
                self.clear()
            token = self._contexts[key] = len(self._contexts)
        return token

    def clear(self) -> None:
        self.values.clear()
        self._contexts.clear()


#: The worker's cache: every inspection goes through it.
TABLES = TableCache()


_NONE = TableParts()
_NO_ROWS: list[Rows] = []  # only compared with, never added to


class _Kept:
    """What the cache keeps of one table: its rows, query by query, and the value built from
    them (a foreign key's value names the columns it points at: those names are its rows too)."""

    __slots__ = ("columns", "constraints", "indexes", "partitions", "refs", "row", "table")

    def __init__(self, row: Rows, columns: list[Rows], part: TableParts, refs: list[Any],
                 table: m.Table) -> None:  # fmt: skip
        self.row, self.columns, self.refs, self.table = row, columns, refs, table
        self.constraints, self.indexes = part.constraints, part.indexes
        self.partitions = part.partitions


#: The queries whose rows make the tables, in the order :class:`TableRows` takes them.
STEPS = ("tables", "partitions", "columns", "constraints", "indexes")


class TableRows:
    """One inspection's tables, gathered query by query in :data:`STEPS` order. Each step
    groups that query's rows by table and drops from ``kept`` every table whose rows differ
    from those its cached value was built from, so the rows are read while they are fresh and
    each step is short enough to run while the server answers the next query;
    :meth:`built` then builds only the tables left out. Pure: rows in, values out."""

    def __init__(
        self, block_size: int, opclasses: Mapping[int, str], cache: TableCache | None
    ) -> None:
        self.block_size, self.opclasses, self.cache = block_size, opclasses, cache
        self.token = cache.context(block_size, opclasses) if cache is not None else 0
        self.rows: Sequence[Rows] = ()
        self.kept: dict[int, _Kept | None] = {}  # rel → its cached value, while rows match
        self.names: dict[int, dict[int, str]] = {}  # rel → attnum → column name
        self.columns: dict[int, list[Rows]] = {}
        self.parts: dict[int, TableParts] = {}
        self.refs: dict[int, list[Any]] = {}  # rel → the columns its foreign keys point at
        self.done: list[str] = []

    def take(self, name: str, rows: Sequence[Rows]) -> None:
        """One query's rows (one of :data:`STEPS`, in order)."""
        expected = STEPS[len(self.done)] if len(self.done) < len(STEPS) else "nothing"
        if name != expected:
            raise ValueError(f"catalog rows out of order: {name} where {expected} was due")
        getattr(self, f"_{name}")(rows)
        self.done.append(name)

    def _tables(self, rows: Sequence[Rows]) -> None:
        self.rows = rows
        if self.cache is None:
            return
        get, token = self.cache.values.get, self.token
        for t in rows:
            kept = get((token, t[0], t[1], t[2]))
            self.kept[t[0]] = kept if kept is not None and kept.row == t else None

    def _columns(self, rows: Sequence[Rows]) -> None:
        names, columns = self.names, self.columns
        last_rel, by_number, in_table = None, {}, []
        for row in rows:  # rows come by table: look the table up once, not per column
            rel = row[0]
            if rel != last_rel:
                last_rel = rel
                by_number, in_table = names.setdefault(rel, {}), columns.setdefault(rel, [])
            by_number[row[1]] = row[2]
            in_table.append(row)
        # Equality of fresh strings is a length check and a memcmp, where hashing them all
        # would read each twice.
        self._drop(lambda rel, kept: kept.columns != columns.get(rel, _NO_ROWS))

    def _partitions(self, rows: Sequence[Rows]) -> None:
        for partition in rows:
            self._part(partition[0]).partitions.append(partition)
        parts = self.parts
        self._drop(lambda rel, kept: kept.partitions != parts.get(rel, _NONE).partitions)

    def _constraints(self, rows: Sequence[Rows]) -> None:
        for con in rows:
            into = self._part(con[0])
            into.constraints.append(con)
            if con[2] == "f":
                into.referenced.append(con[5])
        column_names: dict[int, tuple[tuple[int, str], ...]] = {}
        for rel, part in self.parts.items():
            if part.referenced:
                self.refs[rel] = [_names(r, self.names, column_names) for r in part.referenced]
        parts, refs = self.parts, self.refs
        self._drop(
            lambda rel, kept: (
                kept.constraints != parts.get(rel, _NONE).constraints
                or kept.refs != refs.get(rel, _NO_ROWS)
            )
        )

    def _indexes(self, rows: Sequence[Rows]) -> None:
        for idx in rows:
            self._part(idx[0]).indexes.append(idx)
        parts = self.parts
        self._drop(lambda rel, kept: kept.indexes != parts.get(rel, _NONE).indexes)

    def _part(self, rel: int) -> TableParts:
        into = self.parts.get(rel)
        if into is None:
            into = self.parts[rel] = TableParts()
        return into

    def _drop(self, differs: Callable[[int, _Kept], bool]) -> None:
        kept = self.kept
        for rel, value in kept.items():
            if value is not None and differs(rel, value):
                kept[rel] = None

    def built(self) -> list[m.Table]:
        """The tables (unsorted): each one's cached value when all its rows matched it, else
        built afresh (and kept for next time)."""
        if missing := [step for step in STEPS if step not in self.done]:
            raise ValueError(f"catalog rows missing: {', '.join(missing)}")
        build = TableBuilder(self.block_size, self.opclasses, self.names)
        out = []
        for t in self.rows:
            rel = t[0]
            kept = self.kept.get(rel)
            if kept is not None:
                out.append(kept.table)
                continue
            own, part = self.columns.get(rel, _NO_ROWS), self.parts.get(rel, _NONE)
            table = build.table(t, own, part)
            if self.cache is not None:
                refs = self.refs.get(rel, _NO_ROWS)
                self.cache.values.put((self.token, rel, t[1], t[2]),
                                      _Kept(t, own, part, refs, table), 1)  # fmt: skip
            out.append(table)
        return out


def _names(
    rel: int,
    names: dict[int, dict[int, str]],
    done: dict[int, tuple[tuple[int, str], ...]],
) -> tuple[tuple[int, str], ...]:
    """The column numbers and names of table ``rel``, as one value per inspection."""
    found = done.get(rel)
    if found is None:
        found = done[rel] = tuple(names[rel].items())
    return found
