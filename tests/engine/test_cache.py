"""The cache of desired realms: bounded, least recently used out, never stale. Pure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contracts import load_manifest, manifest_hash
from tests.contracts.builders import TENANTS, column, manifest, pk, table
from worker.engine import desired as desired_module
from worker.engine.cache import BoundedCache
from worker.engine.desired import REALMS, desired_state, prepare


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    REALMS.clear()
    yield
    REALMS.clear()


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(entries=2, weight=100)
    cache.put("a", 1, 1)
    cache.put("b", 2, 1)
    assert cache.get("a") == 1  # now "b" is the least recently used
    cache.put("c", 3, 1)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_the_weight_is_bounded_and_a_value_too_heavy_is_not_kept() -> None:
    cache: BoundedCache[str, str] = BoundedCache(entries=100, weight=10)
    for i in range(10):
        cache.put(f"k{i}", "v", 4)
        assert cache.weight <= 10
    assert len(cache) == 2
    assert (cache.get("k8"), cache.get("k9")) == ("v", "v")
    cache.put("huge", "v", 11)
    assert cache.get("huge") is None
    assert len(cache) == 2


def test_putting_a_key_again_replaces_its_weight() -> None:
    cache: BoundedCache[str, str] = BoundedCache(entries=5, weight=10)
    cache.put("a", "first", 6)
    cache.put("a", "second", 3)
    assert (cache.get("a"), cache.weight, len(cache)) == ("second", 3, 1)


def test_a_prepared_manifest_is_built_once_and_shared() -> None:
    want = load_manifest(manifest(TENANTS))
    first, again = prepare(want), prepare(load_manifest(manifest(TENANTS)))
    assert first.manifest_hash == again.manifest_hash == manifest_hash(want)
    assert again.realm is first.realm  # the second came from the cache
    assert first.realm == desired_state(want)


def test_a_changed_manifest_never_gets_the_realm_of_the_old_one() -> None:
    before = load_manifest(manifest(TENANTS))
    plan = column("plan")
    after = load_manifest(
        manifest(table("tenants", *TENANTS["columns"], plan, primary_key=pk("id")))
    )
    prepare(before)
    changed = prepare(after)
    assert changed.manifest_hash != manifest_hash(before)
    assert [c.name for c in changed.realm.tables[0].columns] == ["id", "name", "plan"]
    assert changed.realm == desired_state(after)


def test_the_realm_cache_stays_within_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    small: BoundedCache[str, object] = BoundedCache(entries=3, weight=4)
    monkeypatch.setattr(desired_module, "REALMS", small)
    for i in range(8):
        prepare(load_manifest(manifest(table(f"t{i}", column("id", "integer")))))
        assert len(small) <= 3 and small.weight <= 4
    two_tables = manifest(table("a", column("id")), table("b", column("id")))
    prepare(load_manifest(two_tables))
    assert len(small) == 3 and small.weight == 4  # 1 + 1 + 2 tables: one more left
