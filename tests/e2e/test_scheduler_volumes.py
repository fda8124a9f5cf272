"""Volume binding in the scheduler against a real `kyb server` with simulated nodes, driven
by real kubectl: a WaitForFirstConsumer claim gets the pod's node, a static `local` PV pins
its pod to the PV's node and is pre-bound to the claim, an unbound Immediate claim keeps its
pod Pending with upstream's message, and a bound PV's node affinity restricts placement.

Three simulated nodes carry the label `vb-e2e=yes`; every pod here selects them. Classes,
volumes and the namespace are this module's own (prefix `vb-`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kybernetes.testing.cluster import ready_nodes, start_sim_nodes, wait_for

PREFIX = "vb-sim-"
NODES = [f"{PREFIX}{i}" for i in range(3)]
LABEL = "vb-e2e"
NS = "vb-e2e"
SELECTED_NODE = "volume.kubernetes.io/selected-node"

CLASSES = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: vb-wffc}
provisioner: example.com/vb-nobody
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: vb-local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: vb-now}
provisioner: example.com/vb-nobody
volumeBindingMode: Immediate
"""


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    p = start_sim_nodes(server, PREFIX, len(NODES), "--label", f"{LABEL}=yes", "--cleanup")
    try:
        wait_for(lambda: ready_nodes(server, f"{LABEL}=yes") == NODES, 60, what="3 ready sim nodes")
        kubectl.ok("apply", "-f", "-", stdin=CLASSES)
        kubectl.ok("create", "namespace", NS)
        yield NODES
    finally:
        kubectl("delete", "pods", "-n", NS, "--all", "--grace-period=0", "--force", "--wait=false")
        kubectl("delete", "pvc", "-n", NS, "--all", "--wait=false")
        kubectl("delete", "namespace", NS, "--wait=false")
        for pv in json.loads(kubectl.ok("get", "pv", "-o", "json"))["items"]:
            if pv["metadata"]["name"].startswith("vb-") or (pv["spec"].get("claimRef") or {}).get("namespace") == NS:
                kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false")
        kubectl("delete", "storageclass", "vb-wffc", "vb-local", "vb-now", "--ignore-not-found")
        p.terminate()
        p.wait(10)


def _claim(name: str, cls: str, size: str = "1Gi", volume: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                            "resources": {"requests": {"storage": size}}}
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def _pv(name: str, cls: str, node: str, size: str = "2Gi", claim: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
        "persistentVolumeReclaimPolicy": "Retain", "local": {"path": f"/mnt/{name}"},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}
    if claim:
        spec["claimRef"] = {"namespace": NS, "name": claim}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


def _pod(name: str, *claims: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeSelector": {LABEL: "yes"}, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                                 for i, c in enumerate(claims)]}}


def _apply(kubectl, *objs: dict[str, Any]) -> None:
    for obj in objs:
        kubectl.ok("apply", "-f", "-", stdin=json.dumps(obj))


def _get(kubectl, kind: str, name: str, ns: str | None = NS) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", kind, name, "-o", "json", *(("-n", ns) if ns else ())))


def _node_of(kubectl, pod: str) -> str:
    return _get(kubectl, "pod", pod)["spec"].get("nodeName") or ""


def test_wffc_claim_gets_the_node_its_pod_was_scheduled_to(kubectl, nodes):
    _apply(kubectl, _claim("dyn", "vb-wffc"), _pod("dyn-user", "dyn"))
    node = wait_for(lambda: _node_of(kubectl, "dyn-user"), 30, what="the pod scheduled")
    assert node in NODES
    claim = wait_for(lambda: (c := _get(kubectl, "pvc", "dyn"))["metadata"].get("annotations", {}).get(
        SELECTED_NODE) and c, 30, what="the selected-node annotation")
    assert claim["metadata"]["annotations"][SELECTED_NODE] == node
    assert not claim["spec"].get("volumeName")  # nobody provisions this class


def test_static_local_pv_pins_the_pod_to_its_node_and_is_pre_bound(kubectl, nodes):
    # Two PVs: a too small one on node 0, one that fits on node 2; none on node 1.
    _apply(kubectl, _pv("vb-small", "vb-local", NODES[0], size="100Mi"), _pv("vb-fits", "vb-local", NODES[2]))
    _apply(kubectl, _claim("static", "vb-local", "1Gi"), _pod("static-user", "static"))
    assert wait_for(lambda: _node_of(kubectl, "static-user"), 30, what="the pod scheduled") == NODES[2]
    claim = _get(kubectl, "pvc", "static")
    ref = wait_for(lambda: _get(kubectl, "pv", "vb-fits", None)["spec"].get("claimRef"), 30, what="pre-bound")
    assert (ref["namespace"], ref["name"], ref["uid"]) == (NS, "static", claim["metadata"]["uid"])
    assert not _get(kubectl, "pv", "vb-small", None)["spec"].get("claimRef")
    # A second claim of the class: the only PV that fits is taken, and nothing provisions.
    _apply(kubectl, _claim("static2", "vb-local", "1Gi"), _pod("static2-user", "static2"))
    msg = wait_for(lambda: _scheduled_message(kubectl, "static2-user"), 30, what="the pod rejected")
    assert msg.startswith("0/") and "3 node(s) didn't find available persistent volumes to bind" in msg


def _scheduled_message(kubectl, pod: str) -> str:
    for c in _get(kubectl, "pod", pod)["status"].get("conditions") or ():
        if c["type"] == "PodScheduled" and c["status"] == "False":
            return c.get("message") or ""
    return ""


def test_unbound_immediate_or_missing_claims_keep_the_pod_pending(kubectl, nodes):
    _apply(kubectl, _claim("later", "vb-now"), _pod("waits", "later"), _pod("orphan", "no-such-claim"))
    msg = wait_for(lambda: _scheduled_message(kubectl, "waits"), 30, what="PodScheduled=False")
    assert msg.startswith("0/") and "nodes are available: pod has unbound immediate PersistentVolumeClaims." in msg
    assert "Preemption is not helpful for scheduling" in msg
    described = kubectl.ok("describe", "pod", "waits", "-n", NS)
    assert "FailedScheduling" in described and "pod has unbound immediate PersistentVolumeClaims" in described
    assert _get(kubectl, "pod", "waits")["status"]["phase"] == "Pending"
    msg = wait_for(lambda: _scheduled_message(kubectl, "orphan"), 30, what="PodScheduled=False")
    assert 'nodes are available: persistentvolumeclaim "no-such-claim" not found.' in msg
    # The claim appears, of a class that waits for its consumer: the pod is placed.
    _apply(kubectl, _claim("no-such-claim", "vb-wffc"))
    assert wait_for(lambda: _node_of(kubectl, "orphan"), 30, what="the pod scheduled once its claim exists")


def test_a_bound_pvs_node_affinity_restricts_placement(kubectl, nodes):
    _apply(kubectl, _pv("vb-bound", "vb-now", NODES[1], claim="held"), _claim("held", "vb-now", volume="vb-bound"),
           _pv("vb-nowhere", "vb-now", "no-such-node", claim="lost"), _claim("lost", "vb-now", volume="vb-nowhere"))
    for name in ("held", "lost"):
        # What the binder does for a claim and PV that name each other; set here so the test
        # depends on the scheduler alone.
        kubectl.ok("patch", "pvc", name, "-n", NS, "--subresource=status", "--type=merge",
                   "-p", '{"status": {"phase": "Bound"}}')
    wait_for(lambda: _get(kubectl, "pvc", "held")["status"].get("phase") == "Bound", 30, what="claim Bound")
    for i in range(3):
        _apply(kubectl, _pod(f"held-{i}", "held"))
    for i in range(3):
        assert wait_for(lambda i=i: _node_of(kubectl, f"held-{i}"), 30, what="scheduled") == NODES[1]
    _apply(kubectl, _pod("lost-user", "lost"))
    msg = wait_for(lambda: _scheduled_message(kubectl, "lost-user"), 30, what="PodScheduled=False")
    assert "node(s) had volume node affinity conflict" in msg
    assert "volume node affinity conflict" in kubectl.ok("describe", "pod", "lost-user", "-n", NS)


def test_default_class_claim_is_provisioned_on_the_pods_node(kubectl, nodes):
    # No class named: the default (local-path) is filled in; the sim node the pod lands on
    # provisions a PV pinned to itself and the binder binds the claim to it.
    claim = _claim("default-class", "")
    del claim["spec"]["storageClassName"]
    _apply(kubectl, claim, _pod("default-user", "default-class"))
    node = wait_for(lambda: _node_of(kubectl, "default-user"), 30, what="the pod scheduled")
    bound = wait_for(lambda: (c := _get(kubectl, "pvc", "default-class"))["status"].get("phase") == "Bound" and c,
                     60, what="the claim Bound")
    assert bound["spec"]["storageClassName"] == "local-path"
    assert bound["metadata"]["annotations"][SELECTED_NODE] == node
    pv = _get(kubectl, "pv", bound["spec"]["volumeName"], None)
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == [node]
