"""The write pipeline (`ResourceService`, no HTTP) following each kind's strategy:
configuration passed in, graceful and finalizer-held deletes, namespaces/finalize and
pods/binding. A real SQLite store in a temp dir; no server."""

from __future__ import annotations

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import new_strategies
from kybernetes.api.kinds.base import UpdateStep
from kybernetes.api.registry import Registry
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import WatchCache
from kybernetes.storage.sqlite import SQLiteStore

REG = Registry()
PODS = REG.get("", "v1", "pods")
NAMESPACES = REG.get("", "v1", "namespaces")
CONFIGMAPS = REG.get("", "v1", "configmaps")


@pytest.fixture
async def make_service(tmp_path):
    opened: list[tuple[SQLiteStore, WatchCache]] = []

    async def make(**kwargs) -> ResourceService:
        store = SQLiteStore(str(tmp_path / f"state{len(opened)}.db"), fsync=False)
        await store.start()
        cache = WatchCache(store)
        await cache.start()
        opened.append((store, cache))
        svc = ResourceService(store, cache, **kwargs)
        await svc.create(NAMESPACES, None, {"metadata": {"name": "default"}}, ctx())
        return svc

    yield make
    for store, cache in opened:
        await cache.close()
        await store.close()


def ctx() -> WriteContext:
    return WriteContext(field_manager="test")


def pod(name: str = "web") -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def test_pods_get_the_toleration_seconds_the_server_was_configured_with(make_service):
    svc = await make_service(kinds=new_strategies(default_toleration_seconds=7))
    res = await svc.create(PODS, "default", pod(), ctx())
    assert {t["tolerationSeconds"] for t in res.obj["spec"]["tolerations"]} == {7}
    assert res.obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


async def test_foreground_delete_waits_for_the_garbage_collector_only_when_one_runs(make_service):
    with_gc = await make_service(gc_enabled=True)
    await with_gc.create(CONFIGMAPS, "default", {"metadata": {"name": "c"}}, ctx())
    res, gone = await with_gc.delete(CONFIGMAPS, "default", "c", {"propagationPolicy": "Foreground"}, ctx())
    assert not gone and res.obj["metadata"]["finalizers"] == ["foregroundDeletion"]

    without = await make_service()
    await without.create(CONFIGMAPS, "default", {"metadata": {"name": "c"}}, ctx())
    _res, gone = await without.delete(CONFIGMAPS, "default", "c", {"propagationPolicy": "Foreground"}, ctx())
    assert gone


async def test_a_deleted_namespace_terminates_until_finalized(make_service):
    svc = await make_service()
    await svc.create(NAMESPACES, None, {"metadata": {"name": "team"}}, ctx())
    res, gone = await svc.delete(NAMESPACES, None, "team", {}, ctx())
    assert not gone and res.obj["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as e:
        await svc.create(CONFIGMAPS, "team", {"metadata": {"name": "late"}}, ctx())
    assert e.value.code == 403
    co = svc.current(NAMESPACES, None, "team")
    finalized = {"metadata": {"name": "team"}, "spec": {"finalizers": []}}
    await svc.update_object(NAMESPACES, co, finalized, ctx(), "finalize", expected=co.rev)
    with pytest.raises(ApiError) as e:
        svc.current(NAMESPACES, None, "team")
    assert e.value.code == 404


async def test_a_running_pod_is_deleted_gracefully(make_service):
    svc = await make_service()
    await svc.create(PODS, "default", {**pod(), "spec": {**pod()["spec"], "nodeName": "n1"}}, ctx())
    res, gone = await svc.delete(PODS, "default", "web", {}, ctx())
    assert not gone and res.obj["metadata"]["deletionGracePeriodSeconds"] == 30
    _res, gone = await svc.delete(PODS, "default", "web", {"gracePeriodSeconds": 0}, ctx())
    assert gone


async def test_binding_is_written_through_its_own_policy_and_not_as_a_plain_update(make_service):
    svc = await make_service()
    await svc.create(PODS, "default", pod(), ctx())
    binding = svc.kinds.for_info(PODS).actions()["binding"]
    co = svc.current(PODS, "default", "web")
    step = binding.plan("web", {"target": {"name": "n1"}}, lambda: co.obj, "2026-01-01T00:00:00Z")
    assert isinstance(step, UpdateStep)
    res = await svc.update_object(PODS, co, step.obj, ctx(), "binding", expected=co.rev, managed_done=True,
                                  old_obj=co.obj, policy=binding.policy)
    assert res.obj["spec"]["nodeName"] == "n1"
    # The same change as a user's update of the pod is refused, and there is no
    # writable "binding" door besides the POST.
    co = svc.current(PODS, "default", "web")
    moved = {**co.obj, "spec": {**co.obj["spec"], "nodeName": "n2"}}
    with pytest.raises(ApiError) as e:
        await svc.update_object(PODS, co, moved, ctx(), "", expected=co.rev)
    assert e.value.code == 422
    with pytest.raises(ApiError) as e:
        await svc.update_object(PODS, co, moved, ctx(), "binding", expected=co.rev)
    assert e.value.code == 404
