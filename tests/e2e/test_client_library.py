"""The project's own client library (informers, leader election) against a real server."""

from __future__ import annotations

import asyncio

from kybernetes.api.interning import intern_strings
from kybernetes.client import ApiClient, ApiError, InformerFactory, LeaderElector
from kybernetes.client.resources import CONFIGMAPS


async def test_informer_lists_then_follows(server):
    client = await ApiClient.from_kubeconfig(server.kubeconfig)
    try:
        await client.create(CONFIGMAPS, "default", {"metadata": {"name": "inf-a", "labels": {"x": "1"}}})
        factory = InformerFactory(client)
        inf = factory.informer(CONFIGMAPS, indexers={"x": lambda o: [(o["metadata"].get("labels") or {}).get("x", "")]})
        seen: list[tuple[str, str]] = []
        inf.add_handler(on_add=lambda o: seen.append(("add", o["metadata"]["name"])),
                        on_update=lambda a, b: seen.append(("update", b["metadata"]["name"])),
                        on_delete=lambda o: seen.append(("delete", o["metadata"]["name"])))
        await factory.start()
        await factory.wait_synced(10)
        assert inf.get("default", "inf-a") is not None
        assert [o["metadata"]["name"] for o in inf.by_index("x", "1")] == ["inf-a"]
        await client.patch(CONFIGMAPS, "default", "inf-a", {"data": {"k": "v"}})
        await client.delete(CONFIGMAPS, "default", "inf-a")
        for _ in range(100):
            if ("delete", "inf-a") in seen:
                break
            await asyncio.sleep(0.05)
        assert ("add", "inf-a") in seen and ("update", "inf-a") in seen and ("delete", "inf-a") in seen
        assert inf.get("default", "inf-a") is None and inf.by_index("x", "1") == []
        await factory.stop()
    finally:
        await client.close()


async def test_client_errors_carry_status(server):
    client = await ApiClient.from_kubeconfig(server.kubeconfig)
    try:
        try:
            await client.get(CONFIGMAPS, "default", "does-not-exist")
        except ApiError as e:
            assert e.code == 404 and e.reason == "NotFound"
        else:
            raise AssertionError("expected NotFound")
    finally:
        await client.close()


async def test_only_one_leader(server):
    c1 = await ApiClient.from_kubeconfig(server.kubeconfig)
    c2 = await ApiClient.from_kubeconfig(server.kubeconfig)
    running: list[str] = []
    overlap = False

    def worker(name: str):
        async def work() -> None:
            nonlocal overlap
            running.append(name)
            if len(running) > 1:
                overlap = True
            try:
                await asyncio.sleep(3600)
            finally:
                running.remove(name)
        return work

    e1 = LeaderElector(c1, "kube-system", "test-election", "one", lease_duration=2, renew_deadline=1.5,
                       retry_period=0.2)
    e2 = LeaderElector(c2, "kube-system", "test-election", "two", lease_duration=2, renew_deadline=1.5,
                       retry_period=0.2)
    async def until(pred, timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not pred():
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    t1 = asyncio.create_task(e1.run(worker("one")))
    assert await until(lambda: running == ["one"], 10)
    t2 = asyncio.create_task(e2.run(worker("two")))
    await asyncio.sleep(1.0)
    assert running == ["one"]
    t1.cancel()  # the leader dies without releasing; the other takes over after the lease expires
    assert await until(lambda: running == ["two"], 15)
    assert not overlap
    t2.cancel()
    await asyncio.gather(t1, t2, return_exceptions=True)
    await c1.close()
    await c2.close()


async def test_informer_transform_shapes_what_is_stored_and_handed_out(server):
    client = await ApiClient.from_kubeconfig(server.kubeconfig)

    def slim(obj: dict) -> dict:
        return intern_strings({"metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "resourceVersion")},
                               "data": {"size": str(len((obj.get("data") or {}).get("k", "")))}})

    try:
        await client.create(CONFIGMAPS, "default", {"metadata": {"name": "inf-t"}, "data": {"k": "hello"}})
        factory = InformerFactory(client, transforms={CONFIGMAPS: slim})
        inf = factory.informer(CONFIGMAPS)
        deleted: list[dict] = []
        inf.add_handler(on_delete=deleted.append)
        await factory.start()
        await factory.wait_synced(10)
        assert inf.get("default", "inf-t")["data"] == {"size": "5"}
        assert set(inf.get("default", "inf-t")["metadata"]) == {"name", "namespace", "resourceVersion"}
        await client.patch(CONFIGMAPS, "default", "inf-t", {"data": {"k": "hello, world"}})
        for _ in range(100):
            if inf.get("default", "inf-t")["data"] == {"size": "12"}:
                break
            await asyncio.sleep(0.05)
        assert inf.get("default", "inf-t")["data"] == {"size": "12"}
        await client.delete(CONFIGMAPS, "default", "inf-t")
        for _ in range(100):
            if deleted:
                break
            await asyncio.sleep(0.05)
        assert deleted and deleted[0]["data"] == {"size": "12"} and "uid" not in deleted[0]["metadata"]
        await factory.stop()
    finally:
        await client.close()

