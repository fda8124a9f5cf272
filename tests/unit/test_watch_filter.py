"""Watch filtering of cached object versions: a change that moves an object into or out of
a watch's selection is sent as ADDED or DELETED, decided from what each cached version
remembers of its labels and fields, also after its decoded form is dropped."""

from __future__ import annotations

import orjson

from kybernetes.api.registry import Registry
from kybernetes.apiserver.rest import ListFilter, _event_filter
from kybernetes.apiserver.watchcache import CachedObject, CacheEvent

PODS = Registry().get("", "v1", "pods")


def version(rev: int, node: str, labels: dict[str, str]) -> CachedObject:
    obj = {"metadata": {"name": "p", "namespace": "ns", "labels": labels, "resourceVersion": str(rev)},
           "spec": {"nodeName": node}}
    return CachedObject("/registry/core/pods/ns/p", obj, orjson.dumps(obj), rev)


def test_moves_in_and_out_of_a_selection_become_added_and_deleted():
    flt = ListFilter(PODS, "ns", {"fieldSelector": "spec.nodeName=n1", "labelSelector": "app=web"})
    accept = _event_filter(flt)
    v1 = version(1, "", {"app": "web"})
    v2 = version(2, "n1", {"app": "web"})
    v3 = version(3, "n1", {"app": "db"})
    assert accept(CacheEvent("ADDED", 1, v1.key, v1, None)) is None
    v1.retire()
    assert accept(CacheEvent("MODIFIED", 2, v2.key, v2, v1)) == "ADDED"
    v2.retire()
    assert accept(CacheEvent("MODIFIED", 3, v3.key, v3, v2)) == "DELETED"
    v3.retire()
    assert accept(CacheEvent("DELETED", 4, v3.key, None, v3)) is None
    for v in (v1, v2, v3):
        assert flt.matches_cached(v) == flt.matches(v.obj)


def test_a_version_seen_first_after_retiring_is_decoded_once():
    v = version(5, "n2", {"app": "web"})
    v.retire()
    flt = ListFilter(PODS, None, {"fieldSelector": "spec.nodeName!=n1"})
    assert flt.matches_cached(v)
    assert not ListFilter(PODS, None, {"fieldSelector": "spec.nodeName=n1"}).matches_cached(v)
    assert ListFilter(PODS, None, {}).matches_cached(v)
