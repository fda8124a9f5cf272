"""The watch cache's count and scan agree with its list, for pages of big lists."""

from __future__ import annotations

import itertools

import pytest

from kybernetes.apiserver.watchcache import CachedObject, WatchCache, resource_prefix

KEYS = [f"/registry/core/configmaps/{ns}/cm-{i:03d}" for ns in ("a", "b", "bb") for i in range(20)]


@pytest.fixture
def cache() -> WatchCache:
    c = WatchCache(store=None)  # type: ignore[arg-type]
    for k in KEYS + ["/registry/core/secrets/a/s"]:
        c.buckets[resource_prefix(k)].put(CachedObject(k, None, b"{}", 1))
    return c


@pytest.mark.parametrize("prefix,start", [
    ("/registry/core/configmaps/", ""),
    ("/registry/core/configmaps/", "/registry/core/configmaps/a/cm-005"),
    ("/registry/core/configmaps/b/", ""),
    ("/registry/core/configmaps/b/", "/registry/core/configmaps/b/cm-019"),
    ("/registry/core/configmaps/bb/", "/registry/core/configmaps/a/cm-000"),
    ("/registry/core/configmaps/zz/", ""),
    ("/registry/core/pods/", ""),
])
def test_count_and_scan_match_list(cache, prefix, start):
    listed = cache.list(prefix, start)
    assert cache.count(prefix, start) == len(listed)
    assert [c.key for c in cache.scan(prefix, start)] == [c.key for c in listed]
    assert [c.key for c in itertools.islice(cache.scan(prefix, start), 3)] == [c.key for c in listed[:3]]
