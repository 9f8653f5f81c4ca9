"""The worker's cache of validated, prepared manifests: shared, bounded, never stale. Pure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.service.records import request_body, request_record
from worker.engine.cache import BoundedCache
from worker.engine.desired import REALMS
from worker.service import requests
from worker.service.requests import LOADED, Request, parse_record


@pytest.fixture(autouse=True)
def empty_caches() -> Iterator[None]:
    REALMS.clear()
    LOADED.clear()
    yield
    REALMS.clear()
    LOADED.clear()


def parsed(body: dict[str, object]) -> Request:
    request = parse_record(request_record(body), max_bytes=1_000_000,
                           aliases=frozenset({"nexus"}))  # fmt: skip
    assert isinstance(request, Request)
    return request


def test_requests_with_the_same_manifest_share_one_preparation() -> None:
    first, second = parsed(request_body()), parsed(request_body(instance="pod-b"))
    assert second.desired is first.desired
    assert len(LOADED) == 1


def test_a_request_with_a_changed_manifest_is_prepared_anew() -> None:
    first = parsed(request_body())
    body = request_body()
    body["manifest"]["tables"][0]["columns"].append({"name": "plan", "type": "text"})
    changed = parsed(body)
    assert changed.manifest_hash != first.manifest_hash
    assert [c.name for c in changed.desired.realm.tables[0].columns][-1] == "plan"
    assert [c.name for c in first.desired.realm.tables[0].columns][-1] != "plan"


def test_a_manifest_sent_under_another_service_name_is_checked_against_it() -> None:
    """The cache key is the whole text: the names the manifest was sent with are part of it."""
    parsed(request_body())
    body = request_body(service="billing")
    body["manifest"] = {**body["manifest"], "service": "other"}
    rejected = parse_record(request_record(body), max_bytes=1_000_000,
                            aliases=frozenset({"nexus"}))  # fmt: skip
    assert not isinstance(rejected, Request)
    assert rejected.code == "inconsistent-request"


def test_the_request_cache_stays_within_its_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    small: BoundedCache[bytes, object] = BoundedCache(entries=2, weight=100)
    monkeypatch.setattr(requests, "LOADED", small)
    for i in range(6):
        body = request_body()
        body["manifest"]["tables"][0]["columns"].append({"name": f"c{i}", "type": "text"})
        assert parsed(body).desired.realm.tables[0].columns[-1].name == f"c{i}"
        assert len(small) <= 2


def test_a_bad_manifest_is_not_kept() -> None:
    body = request_body(manifest={"tables": "x"})
    for _ in range(2):
        rejected = parse_record(request_record(body), max_bytes=1_000_000,
                                aliases=frozenset({"nexus"}))  # fmt: skip
        assert not isinstance(rejected, Request) and rejected.code == "invalid-manifest"
    assert len(LOADED) == 0
