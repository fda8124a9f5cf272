"""Persistent volumes on a real agent, driven by real kubectl: a claim of the default
`local-path` class is provisioned by the agent of the node its pod was scheduled to (a
directory under the agent's data dir and a PV pinned to that node), the pod's data lives
there across pod deletion, and deleting the claim removes the directory (Delete) or keeps
it (Retain). Read-only claims, subPath, and a pod whose claim is not bound yet."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import delete_namespace, wait_for

NODE = "kyb-vol-node"
POD_CIDR = "10.42.223.0/24"
NS = "vol-e2e"
IMAGE = "busybox:1.35"
RETAIN_CLASS = "kyb-vol-retain"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server, node_name=NODE, bridge="kybv0", proxy_table="kyb-vol", pod_cidr=POD_CIDR)
    try:
        proc.start()
        kubectl.ok("create", "namespace", NS)
        yield proc
    finally:
        delete_namespace(server, NS)
        proc.cleanup()
        kubectl("delete", "storageclass", RETAIN_CLASS, "--ignore-not-found")


def claim(name: str, storage_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def pod(name: str, claim_name: str, script: str, *, read_only: bool = False, sub_path: str = "",
        node_name: str = "") -> dict[str, Any]:
    mount: dict[str, Any] = {"name": "data", "mountPath": "/data"}
    if sub_path:
        mount["subPath"] = sub_path
    source: dict[str, Any] = {"claimName": claim_name}
    if read_only:
        source["readOnly"] = True
    spec: dict[str, Any] = {
        "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", script], "volumeMounts": [mount]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": source}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def apply(kubectl, *objs: dict[str, Any]) -> None:
    kubectl.ok("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objs))


def get(kubectl, *args: str) -> dict[str, Any] | None:
    r = kubectl("get", "-n", NS, *args, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def running(kubectl, name: str) -> bool:
    p = get(kubectl, "pod", name)
    return bool(p) and p["status"].get("phase") == "Running"


def bound_volume(kubectl, claim_name: str) -> dict[str, Any]:
    """The claim once Bound, and the PV it is bound to."""
    pvc = wait_for(lambda: (c := get(kubectl, "pvc", claim_name)) and c["status"].get("phase") == "Bound" and c,
                   90, what=f"claim {claim_name} Bound")
    return json.loads(kubectl.ok("get", "pv", pvc["spec"]["volumeName"], "-o", "json"))


def logs(kubectl, name: str) -> str:
    return kubectl("logs", "-n", NS, name).stdout


def events_of(kubectl, kind: str, name: str) -> list[dict[str, Any]]:
    out = kubectl.ok("get", "events", "-n", NS, "--field-selector",
                     f"involvedObject.kind={kind},involvedObject.name={name}", "-o", "json")
    return json.loads(out)["items"]


def delete_pod(kubectl, name: str) -> None:
    kubectl.ok("delete", "pod", "-n", NS, name, "--timeout=60s", timeout=70)


def test_a_claims_data_lives_on_the_nodes_disk_across_pods_and_goes_with_the_claim(agent, kubectl):
    apply(kubectl, claim("data"), pod("writer", "data", "echo hello > /data/f && sleep 3600"))
    pv = bound_volume(kubectl, "data")
    # The default class, provisioned by this node's agent: a directory under its data dir.
    assert pv["spec"]["storageClassName"] == "local-path"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    path = pv["spec"]["local"]["path"]
    assert path == os.path.join(agent.data_dir, "storage", f"{pv['metadata']['name']}_{NS}_data")
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [NODE]
    wait_for(lambda: running(kubectl, "writer"), 120, what="writer Running")
    wait_for(lambda: os.path.exists(os.path.join(path, "f")), 30, what="the file on the node's disk")
    assert open(os.path.join(path, "f")).read() == "hello\n"
    assert any(e["reason"] == "ProvisioningSucceeded" and e["message"] ==
               f"Successfully provisioned volume {pv['metadata']['name']}"
               for e in events_of(kubectl, "PersistentVolumeClaim", "data"))

    # A new pod on the same claim finds the data.
    delete_pod(kubectl, "writer")
    apply(kubectl, pod("reader", "data", "cat /data/f && sleep 3600"))
    wait_for(lambda: "hello" in logs(kubectl, "reader"), 120, what="the reader printing the old data")

    # In use, the claim stays (Terminating) until its pod is gone; then the directory goes.
    kubectl.ok("delete", "pvc", "-n", NS, "data", "--wait=false")
    terminating = get(kubectl, "pvc", "data")
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    assert os.path.isdir(path)
    delete_pod(kubectl, "reader")
    wait_for(lambda: get(kubectl, "pvc", "data") is None, 60, what="the claim gone")
    wait_for(lambda: kubectl("get", "pv", pv["metadata"]["name"]).returncode != 0, 60, what="the PV deleted")
    assert not os.path.exists(path)


def test_a_retain_class_keeps_the_directory_and_a_released_volume(agent, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": RETAIN_CLASS},
        "provisioner": "kybernetes.io/local-path", "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer"}))
    apply(kubectl, claim("kept", RETAIN_CLASS), pod("keeper", "kept", "echo precious > /data/f && sleep 3600"))
    pv = bound_volume(kubectl, "kept")
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    path = pv["spec"]["local"]["path"]
    wait_for(lambda: os.path.exists(os.path.join(path, "f")), 120, what="the file on the node's disk")
    delete_pod(kubectl, "keeper")
    kubectl.ok("delete", "pvc", "-n", NS, "kept", "--timeout=60s", timeout=70)
    name = pv["metadata"]["name"]
    wait_for(lambda: json.loads(kubectl.ok("get", "pv", name, "-o", "json"))["status"].get("phase") == "Released",
             60, what="the PV Released")
    assert open(os.path.join(path, "f")).read() == "precious\n"
    kubectl.ok("delete", "pv", name, "--timeout=60s", timeout=70)
    # Retained data is the administrator's: deleting the PV object leaves it on disk.
    assert os.path.exists(os.path.join(path, "f"))


def test_sub_path_and_a_read_only_claim(agent, kubectl):
    apply(kubectl, claim("shared"), pod("sub", "shared", "echo in-sub > /data/x && sleep 3600", sub_path="part/one"))
    pv = bound_volume(kubectl, "shared")
    path = pv["spec"]["local"]["path"]
    wait_for(lambda: os.path.exists(os.path.join(path, "part", "one", "x")), 120, what="the file under the subPath")
    delete_pod(kubectl, "sub")
    apply(kubectl, pod("ro", "shared", "cat /data/part/one/x; (touch /data/new 2>/dev/null && echo WRITABLE) "
                       "|| echo READ-ONLY; sleep 3600", read_only=True))
    wait_for(lambda: "READ-ONLY" in logs(kubectl, "ro"), 120, what="the read-only pod's verdict")
    out = logs(kubectl, "ro")
    assert "in-sub" in out and "WRITABLE" not in out
    assert not os.path.exists(os.path.join(path, "new"))
    delete_pod(kubectl, "ro")
    kubectl.ok("delete", "pvc", "-n", NS, "shared", "--timeout=60s", timeout=70)


def test_a_pod_waits_for_its_claim_with_a_clear_event_then_starts(agent, kubectl):
    # Bound to the node directly (past the scheduler), so only the agent stands in the way.
    apply(kubectl, pod("early", "later", "echo started && sleep 3600", node_name=NODE))

    def failed_mount(text: str) -> bool:
        return any(e["reason"] == "FailedMount" and text in e["message"] for e in events_of(kubectl, "Pod", "early"))

    wait_for(lambda: failed_mount('persistentvolumeclaim "later" not found'), 60, what="FailedMount: not found")
    apply(kubectl, claim("later"))
    wait_for(lambda: failed_mount('persistentvolumeclaim "later" is not bound'), 60, what="FailedMount: not bound")
    p = get(kubectl, "pod", "early")
    assert p is not None and p["status"].get("phase") == "Pending"
    waiting = [s["state"].get("waiting", {}) for s in p["status"].get("containerStatuses") or []]
    assert waiting and waiting[0].get("reason") == "ContainerCreating"
    # No scheduler picked a node for the claim; saying which one lets this node's agent provision it.
    kubectl.ok("annotate", "pvc", "-n", NS, "later", f"volume.kubernetes.io/selected-node={NODE}")
    bound_volume(kubectl, "later")
    wait_for(lambda: running(kubectl, "early"), 120, what="the pod Running once its claim is bound")
    delete_pod(kubectl, "early")
    kubectl.ok("delete", "pvc", "-n", NS, "later", "--timeout=60s", timeout=70)
