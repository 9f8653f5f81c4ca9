"""A bounded least-recently-used cache: at most ``entries`` values weighing at most ``weight``.

The caller says what a value weighs (for a desired realm: its tables, about 1.4 KB each, measured
on a 1000-table manifest); a value heavier than the whole bound is never kept. Values must be
immutable: one object is handed to every caller that asks for the same key.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["BoundedCache"]


class BoundedCache(Generic[K, V]):
    """Least recently used first out, when a bound would be passed."""

    def __init__(self, *, entries: int, weight: int) -> None:
        self.max_entries = entries
        self.max_weight = weight
        self.weight = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, weight: int) -> None:
        """Keep ``value`` for ``key``, dropping the least recently used to stay in bounds."""
        if weight > self.max_weight or self.max_entries < 1:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.weight -= old[1]
        self._items[key] = (value, weight)
        self.weight += weight
        while len(self._items) > self.max_entries or self.weight > self.max_weight:
            _, (_, dropped) = self._items.popitem(last=False)
            self.weight -= dropped

    def clear(self) -> None:
        self._items.clear()
        self.weight = 0
