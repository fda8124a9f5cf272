"""The shared test fakes (kybernetes/testing/fakes.py) behave as the API and informers
do in what unit tests of components rely on."""

from __future__ import annotations

import asyncio

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.client import InformerFactory
from kybernetes.client.resources import CONFIGMAPS, NODES, PODS
from kybernetes.testing.fakes import FakeClient, FakeInformers, node, pod


async def test_writes_assign_names_and_versions_and_refuse_stale_ones() -> None:
    client = FakeClient()
    made = await client.create(PODS, "ns", {"metadata": {"generateName": "web-"}, "spec": {}})
    assert made["metadata"]["name"] == "web-0" and made["metadata"]["namespace"] == "ns"
    with pytest.raises(ApiError) as e:
        await client.create(PODS, "ns", {"metadata": {"name": "web-0"}})
    assert e.value.code == 409
    stale = made["metadata"]["resourceVersion"]
    await client.patch(PODS, "ns", "web-0", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiError) as e:
        await client.update(PODS, "ns", "web-0", made)
    assert e.value.code == 409 and stale != client.stored(PODS, "ns", "web-0")["metadata"]["resourceVersion"]
    # A status write changes only the status; any other write anything but the status.
    fresh = await client.get(PODS, "ns", "web-0")
    await client.update(PODS, "ns", "web-0", {**fresh, "status": {"phase": "Running"}, "spec": {"x": 1}},
                        subresource="status")
    assert client.stored(PODS, "ns", "web-0")["status"] == {"phase": "Running"}
    assert client.stored(PODS, "ns", "web-0")["spec"] == {}
    assert [c.verb for c in client.calls] == ["create", "create", "patch", "update", "get", "update"]


async def test_strategic_patch_merges_lists_by_key() -> None:
    client = FakeClient()
    client.add(NODES, node("n1", conditions=[{"type": "MemoryPressure", "status": "False"}]))
    await client.patch(NODES, None, "n1", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
                       "strategic", subresource="status")
    conds = {c["type"]: c["status"] for c in client.stored(NODES, None, "n1")["status"]["conditions"]}
    assert conds == {"Ready": "False", "MemoryPressure": "False"}


async def test_finalizers_and_graceful_deletion_keep_the_object_marked() -> None:
    client = FakeClient(graceful=["pods"])
    client.add(PODS, pod("p"))
    client.add(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "default", "finalizers": ["x/y"]}})
    await client.delete(PODS, "default", "p")
    await client.delete(CONFIGMAPS, "default", "c")
    assert client.stored(PODS, "default", "p")["metadata"]["deletionTimestamp"]
    assert client.stored(CONFIGMAPS, "default", "c")["metadata"]["deletionTimestamp"]
    await client.patch(CONFIGMAPS, "default", "c", {"metadata": {"finalizers": None}})
    assert client.stored(CONFIGMAPS, "default", "c") is None
    await client.delete(PODS, "default", "p", grace_period_seconds=0, preconditions={"uid": "uid-p"})
    assert client.stored(PODS, "default", "p") is None


async def test_reactors_fail_or_answer_calls_first() -> None:
    client = FakeClient()
    client.add(PODS, pod("p"))
    client.fail("get", "pods", ApiError(500, "InternalError", "boom"))
    with pytest.raises(ApiError):
        await client.get(PODS, "default", "p")
    assert (await client.get(PODS, "default", "p"))["metadata"]["name"] == "p"
    client.react("get", "*", lambda call: {"answered": call.name})
    assert await client.get(PODS, "default", "p") == {"answered": "p"}


async def test_informers_see_writes_at_once_or_when_a_lagging_watch_delivers() -> None:
    informers = FakeInformers()
    seen: list[str] = []
    informers[PODS].add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
    client = FakeClient(informers, lag=["pods"])
    client.add(NODES, node("n1"))
    await client.create(PODS, "default", pod("p"))
    assert informers[NODES].get(None, "n1") is not None
    assert seen == [] and informers[PODS].get("default", "p") is None
    client.deliver(PODS)
    assert seen == ["p"] and informers[PODS].by_index("namespace", "default")[0]["metadata"]["name"] == "p"


async def test_real_informers_list_and_watch_the_fake() -> None:
    client = FakeClient()
    client.add(PODS, pod("before"))
    factory = InformerFactory(client)
    pods = factory.informer(PODS)
    await factory.start()
    try:
        await factory.wait_synced(2)
        assert pods.get("default", "before") is not None
        await client.create(PODS, "default", pod("after"))
        await client.delete(PODS, "default", "before")
        for _ in range(200):
            if pods.get("default", "after") is not None and pods.get("default", "before") is None:
                break
            await asyncio.sleep(0.01)
        assert sorted(p["metadata"]["name"] for p in pods.list()) == ["after"]
    finally:
        await factory.stop()
