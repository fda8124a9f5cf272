"""ReplicationControllers kept by the ReplicaSet controller's code (ReplicationManager): the
equality-based selector, pods created with a v1 controller reference, adoption and release,
scaling, the status fields core/v1 has, and the Scale subresource's selector."""

from __future__ import annotations

from typing import Any

from kybernetes.api.kinds.scale import scale_subresource
from kybernetes.api.registry import builtin_resources
from kybernetes.client.resources import PODS, REPLICATIONCONTROLLERS
from kybernetes.controllers import podutil
from kybernetes.controllers.replicaset import ReplicationManager, rc_view
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, settle

RC_UID = "rc-uid-1"
KEY = "default/frontend"


def make_rc(replicas: int = 3, selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "frontend", "namespace": "default", "uid": RC_UID, "generation": 2,
                         "resourceVersion": "10"},
            "spec": {"replicas": replicas, "selector": {"app": "fe"} if selector is None else selector,
                     "template": {"metadata": {"labels": {"app": "fe", "tier": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def rc_pod(name: str, owner: str | None = RC_UID, labels: dict[str, str] | None = None,
           ready: bool = True) -> dict[str, Any]:
    return fakes.pod(name, labels={"app": "fe", "tier": "web"} if labels is None else labels, node="n1",
                     phase="Running", ready=ready,
                     owner={"apiVersion": "v1", "kind": "ReplicationController", "name": "frontend", "uid": owner}
                     if owner else None)


def shell(*rcs: dict[str, Any], pods: tuple[dict[str, Any], ...] = ()) -> tuple[FakeClient, ReplicationManager]:
    informers = FakeInformers()
    client = FakeClient(informers, lag=["pods"], graceful=["pods"])
    ctrl = ReplicationManager(client, informers)
    client.add(REPLICATIONCONTROLLERS, *rcs)
    client.add(PODS, *pods)
    client.deliver(PODS)
    return client, ctrl


def test_the_view_turns_the_label_map_into_match_labels():
    assert rc_view(make_rc())["spec"]["selector"] == {"matchLabels": {"app": "fe"}}
    # An RC stored without a selector selects its template's labels, as the API defaults it.
    assert rc_view(make_rc(selector={}))["spec"]["selector"] == {"matchLabels": {"app": "fe", "tier": "web"}}


async def test_rc_creates_pods_it_controls_and_reports_core_v1_status():
    client, ctrl = shell(make_rc(3))
    await ctrl.sync(KEY)
    await settle()
    pods = client.all(PODS)
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["generateName"] == "frontend-"
        assert p["metadata"]["labels"] == {"app": "fe", "tier": "web"}
        ref = podutil.controller_ref(p)
        assert (ref["apiVersion"], ref["kind"], ref["name"], ref["uid"], ref["blockOwnerDeletion"]) == (
            "v1", "ReplicationController", "frontend", RC_UID, True)
    assert {(e.kind, e.component) for e in client.events} == {("ReplicationController", "replication-controller")}
    client.deliver(PODS)
    # Pods on their way out are not a field of ReplicationControllerStatus.
    await client.delete(PODS, "default", pods[0]["metadata"]["name"])
    client.deliver(PODS)
    await ctrl.sync(KEY)
    await settle()
    status = client.stored(REPLICATIONCONTROLLERS, "default", "frontend")["status"]
    assert "terminatingReplicas" not in status
    assert status["observedGeneration"] == 2 and status["replicas"] == 2
    assert len(client.calls_of("create", "pods")) == 4


async def test_rc_status_counts_labels_readiness_and_availability():
    pods = (rc_pod("a"), rc_pod("b", ready=False), rc_pod("c", labels={"app": "fe"}))
    client, ctrl = shell(make_rc(3), pods=pods)
    await ctrl.sync(KEY)
    status = client.stored(REPLICATIONCONTROLLERS, "default", "frontend")["status"]
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                      "observedGeneration": 2}
    assert not client.calls_of("create", "pods")


async def test_rc_adopts_matching_orphans_releases_strays_and_ignores_other_controllers():
    other = fakes.pod("rs-pod", labels={"app": "fe"}, node="n1", phase="Running", ready=True,
                      owner={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x", "uid": "rs-uid"})
    pods = (rc_pod("orphan", owner=None, labels={"app": "fe"}), rc_pod("stray", labels={"app": "other"}), other)
    client, ctrl = shell(make_rc(2), pods=pods)
    await ctrl.sync(KEY)
    await settle()
    adopted = podutil.controller_ref(client.stored(PODS, "default", "orphan"))
    assert (adopted["kind"], adopted["uid"]) == ("ReplicationController", RC_UID)
    assert podutil.controller_ref(client.stored(PODS, "default", "stray")) is None
    assert podutil.controller_ref(client.stored(PODS, "default", "rs-pod"))["uid"] == "rs-uid"
    # The adopted orphan counts; the stray is replaced.
    assert len(client.calls_of("create", "pods")) == 1


async def test_rc_scaled_down_deletes_the_surplus():
    pods = (rc_pod("a"), rc_pod("b"), rc_pod("c", ready=False))
    client, ctrl = shell(make_rc(3), pods=pods)
    await client.patch(REPLICATIONCONTROLLERS, "default", "frontend", {"spec": {"replicas": 1}})
    await ctrl.sync(KEY)
    await settle()
    deleted = [c.name for c in client.calls_of("delete", "pods")]
    # The unready pod goes first.
    assert len(deleted) == 2 and "c" in deleted


def test_scale_subresource_shows_the_equality_selector():
    info = next(i for i in builtin_resources() if i.plural == "replicationcontrollers")
    rc = make_rc(3)
    rc["status"] = {"replicas": 2}
    scale = scale_subresource(info).view(rc)
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": "app=fe"}
    assert scale_subresource(info).apply(rc, {"spec": {"replicas": 5}}, "frontend")["spec"]["replicas"] == 5


async def test_rc_failed_creates_set_the_replica_failure_condition():
    from kybernetes.api.errors import ApiError

    client, ctrl = shell(make_rc(2))
    client.fail("create", "pods", ApiError(403, "Forbidden", 'pods "frontend-x" is forbidden: exceeded quota'), times=5)
    try:
        await ctrl.sync(KEY)
    except ApiError:
        pass
    cond = client.stored(REPLICATIONCONTROLLERS, "default", "frontend")["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert "exceeded quota" in cond["message"]
