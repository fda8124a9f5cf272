"""Pod GC decisions, and its quarantine of missing nodes against fakes."""

from __future__ import annotations

from typing import Any

from kybernetes.client import ApiError, Resource
from kybernetes.controllers.podgc import (
    OUT_OF_SERVICE_TAINT,
    PodGCController,
    failed_status_patch,
    missing_nodes,
    pods_on_nodes,
    quarantine_expired,
    terminated_to_delete,
    terminating_out_of_service,
    unscheduled_terminating,
)


def pod(name: str, node: str = "n1", phase: str = "Running", created: str = "2025-01-01T00:00:00Z",
        deleting: bool = False, reason: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": "uid-" + name,
                            "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-02T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    if reason:
        status["reason"] = reason
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def node(name: str, ready: bool = True, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_terminated_over_threshold_evicted_then_oldest() -> None:
    pods = [
        pod("new-done", phase="Succeeded", created="2025-01-03T00:00:00Z"),
        pod("old-done", phase="Failed", created="2025-01-01T00:00:00Z"),
        pod("evicted", phase="Failed", reason="Evicted", created="2025-01-05T00:00:00Z"),
        pod("running", phase="Running", created="2024-01-01T00:00:00Z"),
        pod("mid-done", phase="Succeeded", created="2025-01-02T00:00:00Z"),
    ]
    assert names(terminated_to_delete(pods, 2)) == ["evicted", "old-done"]
    assert terminated_to_delete(pods, 4) == []
    assert terminated_to_delete(pods, 0) == []  # 0 turns the rule off
    assert len(terminated_to_delete(pods, 1)) == 3


def test_missing_nodes_and_quarantine() -> None:
    pods = [pod("a", node="n1"), pod("b", node="gone"), pod("c", node="")]
    assert missing_nodes(pods, ["n1"]) == {"gone"}
    assert quarantine_expired({"gone": 100.0, "recent": 130.0}, now=140.0, quarantine=40.0) == ["gone"]
    assert quarantine_expired({"gone": 100.0}, now=139.0, quarantine=40.0) == []
    assert names(pods_on_nodes(pods, {"gone"})) == ["b"]


def test_unscheduled_and_out_of_service_terminating() -> None:
    pods = [pod("u", node="", deleting=True), pod("u2", node=""), pod("o", node="oos", deleting=True),
            pod("o2", node="oos"), pod("r", node="ready-oos", deleting=True)]
    assert names(unscheduled_terminating(pods)) == ["u"]
    taint = [{"key": OUT_OF_SERVICE_TAINT, "effect": "NoExecute", "value": "nodeshutdown"}]
    nodes = {"oos": node("oos", ready=False, taints=taint), "ready-oos": node("ready-oos", ready=True, taints=taint)}
    # Only terminating pods, and only on a node that is out of service and not Ready.
    assert names(terminating_out_of_service(pods, nodes)) == ["o"]


def test_failed_status_patch() -> None:
    st = failed_status_patch("T")["status"]
    assert st["phase"] == "Failed"
    assert st["conditions"][0]["reason"] == "DeletionByPodGC"
    assert st["conditions"][0]["message"] == "PodGC: node no longer exists"


# -- the shell against fakes --------------------------------------------------------------------


class FakeInformer:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def list(self) -> list[dict[str, Any]]:
        return list(self.items)

    def add_handler(self, **_: Any) -> None:
        pass


class FakeFactory:
    def __init__(self, pods: list[dict[str, Any]], nodes: list[dict[str, Any]]) -> None:
        self.by_plural = {"pods": FakeInformer(pods), "nodes": FakeInformer(nodes)}

    def informer(self, res: Resource, **_: Any) -> FakeInformer:
        return self.by_plural[res.plural]


class FakeClient:
    def __init__(self, live_nodes: set[str]) -> None:
        self.live_nodes = live_nodes
        self.deleted: list[tuple[str, int | None]] = []
        self.patched: list[str] = []

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict[str, Any]:
        if res.plural == "nodes" and name in self.live_nodes:
            return node(name)
        raise ApiError.not_found(res.group, res.plural, name)

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", field_manager: str | None = None) -> dict[str, Any]:
        self.patched.append(f"{name}/{subresource}")
        return {}

    async def delete(self, res: Resource, namespace: str | None, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        self.deleted.append((name, grace_period_seconds))
        return {}


async def test_orphaned_pods_wait_for_quarantine_and_live_check() -> None:
    now = [1000.0]
    pods = [pod("keep", node="n1"), pod("orphan", node="gone"), pod("lagging", node="new-node")]
    client = FakeClient(live_nodes={"n1", "new-node"})  # the informer has not seen new-node yet
    ctrl = PodGCController(client, FakeFactory(pods, [node("n1")]),  # type: ignore[arg-type]
                           quarantine_seconds=40, clock=lambda: now[0])
    assert (await ctrl.gc_once())["orphaned"] == 0
    assert client.deleted == []
    now[0] += 39
    assert (await ctrl.gc_once())["orphaned"] == 0
    now[0] += 2
    assert (await ctrl.gc_once())["orphaned"] == 1
    assert client.deleted == [("orphan", 0)]
    assert client.patched == ["orphan/status"]  # marked Failed first


async def test_terminated_pods_force_deleted_over_threshold() -> None:
    pods = [pod(f"done-{i}", phase="Succeeded", created=f"2025-01-0{i + 1}T00:00:00Z") for i in range(3)]
    client = FakeClient(live_nodes={"n1"})
    ctrl = PodGCController(client, FakeFactory(pods, [node("n1")]), terminated_pod_threshold=1)  # type: ignore[arg-type]
    counts = await ctrl.gc_once()
    assert counts["terminated"] == 2
    assert sorted(client.deleted) == [("done-0", 0), ("done-1", 0)]
