"""Pod GC decisions, and its quarantine of missing nodes against fakes."""

from __future__ import annotations

from typing import Any

from kybernetes.client.resources import NODES, PODS
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
from kybernetes.testing.fakes import FakeClient, FakeInformers, node, pod


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_terminated_over_threshold_evicted_then_oldest() -> None:
    pods = [
        pod("new-done", phase="Succeeded", created="2025-01-03T00:00:00Z"),
        pod("old-done", phase="Failed", created="2025-01-01T00:00:00Z"),
        pod("evicted", phase="Failed", status={"reason": "Evicted"}, created="2025-01-05T00:00:00Z"),
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


def setup(pods: list[dict[str, Any]], cached_nodes: list[dict[str, Any]],
          live_nodes: list[dict[str, Any]]) -> tuple[FakeClient, FakeInformers]:
    informers = FakeInformers()
    informers[PODS].upsert(*pods)
    informers[NODES].upsert(*cached_nodes)
    client = FakeClient(informers)
    client.add(PODS, *pods)
    client.add(NODES, *live_nodes)
    return client, informers


def deleted(client: FakeClient) -> list[tuple[str, int | None]]:
    return [(c.name, c.options.get("grace_period_seconds")) for c in client.calls_of("delete", "pods")]


async def test_orphaned_pods_wait_for_quarantine_and_live_check() -> None:
    now = [1000.0]
    pods = [pod("keep", node="n1"), pod("orphan", node="gone"), pod("lagging", node="new-node")]
    # The informer has not seen new-node yet.
    client, informers = setup(pods, [node("n1")], [node("n1"), node("new-node")])
    ctrl = PodGCController(client, informers, quarantine_seconds=40, clock=lambda: now[0])
    assert (await ctrl.gc_once())["orphaned"] == 0
    assert deleted(client) == []
    now[0] += 39
    assert (await ctrl.gc_once())["orphaned"] == 0
    now[0] += 2
    assert (await ctrl.gc_once())["orphaned"] == 1
    assert deleted(client) == [("orphan", 0)]
    # Marked Failed first.
    assert [(c.name, c.subresource) for c in client.calls_of("patch")] == [("orphan", "status")]
    assert client.stored(PODS, "default", "orphan") is None


async def test_terminated_pods_force_deleted_over_threshold() -> None:
    pods = [pod(f"done-{i}", phase="Succeeded", created=f"2025-01-0{i + 1}T00:00:00Z") for i in range(3)]
    client, informers = setup(pods, [node("n1")], [node("n1")])
    ctrl = PodGCController(client, informers, terminated_pod_threshold=1)
    counts = await ctrl.gc_once()
    assert counts["terminated"] == 2
    assert sorted(deleted(client)) == [("done-0", 0), ("done-1", 0)]
