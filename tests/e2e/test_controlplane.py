"""The control plane against a real `kyb server` with simulated nodes, driven by real kubectl.

The session server runs its controller manager and scheduler; simulated nodes
(`kyb sim-nodes`) register here and take bound pods to Running.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client as kclient
from kubernetes import watch

from kybernetes.testing.cluster import start_sim_nodes, wait_for

NODES = ["sim-a-0", "sim-a-1", "sim-a-2"]


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    p = start_sim_nodes(server, "sim-a-", 3, "--label", "disk=ssd", "--cleanup")
    try:
        wait_for(lambda: all(n in kubectl.ok("get", "nodes", "-o", "name") for n in NODES), 30, what="sim nodes")
        wait_for(lambda: kubectl.ok("get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")]"
                                    ".status}").split().count("True") >= 3, 30, what="nodes Ready")
        yield NODES
    finally:
        p.terminate()
        p.wait(10)


def _pods(kubectl, selector: str, ns: str = "default") -> list[dict]:
    return json.loads(kubectl.ok("get", "pods", "-n", ns, "-l", selector, "-o", "json"))["items"]


def _running(kubectl, selector: str, ns: str = "default") -> int:
    return sum(1 for p in _pods(kubectl, selector, ns)
               if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def test_deployment_runs_and_scales(kubectl, nodes):
    kubectl.ok("create", "deployment", "web", "--image=busybox", "--replicas=3")
    wait_for(lambda: _running(kubectl, "app=web") == 3, what="3 running pods")
    out = kubectl.ok("rollout", "status", "deploy/web", "--timeout=60s")
    assert 'deployment "web" successfully rolled out' in out
    pods = _pods(kubectl, "app=web")
    assert {p["spec"]["nodeName"] for p in pods} <= set(NODES)
    assert all(p["status"]["podIP"] for p in pods)
    kubectl.ok("scale", "deploy/web", "--replicas=10")
    wait_for(lambda: _running(kubectl, "app=web") == 10, what="10 running pods")
    dep = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))
    wait_for(lambda: json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))["status"].get("availableReplicas")
             == 10, what="10 available")
    kubectl.ok("scale", "deploy/web", "--replicas=0")
    wait_for(lambda: _pods(kubectl, "app=web") == [], what="no pods")
    dep = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))
    assert dep["spec"]["replicas"] == 0
    events = kubectl.ok("get", "events", "--field-selector", "reason=ScalingReplicaSet", "-o", "name")
    assert events.strip()
    kubectl.ok("delete", "deploy", "web")


def test_rolling_update_respects_surge_and_unavailable(kubectl, nodes, k8s_client):
    kubectl.ok("create", "deployment", "roll", "--image=busybox:1", "--replicas=4")
    kubectl.ok("patch", "deploy", "roll", "-p",
               '{"spec":{"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":1}}}}')
    kubectl.ok("rollout", "status", "deploy/roll", "--timeout=60s")
    core = kclient.CoreV1Api(k8s_client)
    rv = core.list_namespaced_pod("default", label_selector="app=roll").metadata.resource_version
    live: dict[str, dict] = {p.metadata.name: p.to_dict() for p in
                             core.list_namespaced_pod("default", label_selector="app=roll").items}
    violations: list[str] = []
    done = threading.Event()

    def counts():
        active = [p for p in live.values() if not p["metadata"].get("deletion_timestamp")]
        ready = [p for p in active if any(c["type"] == "Ready" and c["status"] == "True"
                                          for c in (p["status"].get("conditions") or []))]
        return len(active), len(ready)

    def observe():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, "default", label_selector="app=roll", resource_version=rv,
                           timeout_seconds=60):
            obj = ev["object"].to_dict()
            if ev["type"] == "DELETED":
                live.pop(obj["metadata"]["name"], None)
            else:
                live[obj["metadata"]["name"]] = obj
            total, ready = counts()
            if total > 5:
                violations.append(f"{total} pods > replicas+maxSurge")
            if ready < 3:
                violations.append(f"{ready} ready < replicas-maxUnavailable")
            if done.is_set():
                w.stop()

    t = threading.Thread(target=observe)
    t.start()
    time.sleep(0.5)
    kubectl.ok("set", "image", "deploy/roll", "busybox=busybox:2")
    kubectl.ok("rollout", "status", "deploy/roll", "--timeout=90s")
    done.set()
    kubectl.ok("annotate", "deploy", "roll", "poke=1")  # one more event to end the watch promptly
    t.join(70)
    assert violations == []
    images = {p["spec"]["containers"][0]["image"] for p in _pods(kubectl, "app=roll")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"busybox:2"}
    # History and undo.
    hist = kubectl.ok("rollout", "history", "deploy/roll")
    assert "REVISION" in hist and "1" in hist.split() and "2" in hist.split()
    kubectl.ok("rollout", "undo", "deploy/roll")
    kubectl.ok("rollout", "status", "deploy/roll", "--timeout=90s")
    dep = json.loads(kubectl.ok("get", "deploy", "roll", "-o", "json"))
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    # Pause: a template change does not roll out until resumed.
    kubectl.ok("rollout", "pause", "deploy/roll")
    kubectl.ok("set", "image", "deploy/roll", "busybox=busybox:3")
    time.sleep(2)
    assert {p["spec"]["containers"][0]["image"] for p in _pods(kubectl, "app=roll")} == {"busybox:1"}
    kubectl.ok("rollout", "resume", "deploy/roll")
    kubectl.ok("rollout", "status", "deploy/roll", "--timeout=90s")
    wait_for(lambda: {p["spec"]["containers"][0]["image"] for p in _pods(kubectl, "app=roll")} == {"busybox:3"},
             what="busybox:3 everywhere")
    kubectl.ok("delete", "deploy", "roll")


@pytest.mark.parametrize("cascade", ["background", "foreground", "orphan"])
def test_cascading_delete(kubectl, nodes, cascade):
    name = f"casc-{cascade}"
    kubectl.ok("create", "deployment", name, "--image=busybox", "--replicas=2")
    wait_for(lambda: _running(kubectl, f"app={name}") == 2, what="2 running")
    kubectl.ok("delete", "deploy", name, f"--cascade={cascade}", timeout=90)
    if cascade == "orphan":
        time.sleep(1.5)
        rs = json.loads(kubectl.ok("get", "rs", "-l", f"app={name}", "-o", "json"))["items"]
        assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
        assert _running(kubectl, f"app={name}") == 2
        kubectl.ok("delete", "rs", "-l", f"app={name}")
        wait_for(lambda: _pods(kubectl, f"app={name}") == [], what="pods gone")
    else:
        if cascade == "foreground":
            # Foreground: the deployment is gone only after its dependents.
            assert _pods(kubectl, f"app={name}") == [] or all(
                p["metadata"].get("deletionTimestamp") for p in _pods(kubectl, f"app={name}"))
        wait_for(lambda: kubectl.ok("get", "rs", "-l", f"app={name}", "-o", "name").strip() == "", what="rs gone")
        wait_for(lambda: _pods(kubectl, f"app={name}") == [], what="pods gone")


def test_namespace_deletion_removes_contents(kubectl, nodes):
    kubectl.ok("create", "namespace", "doomed")
    kubectl.ok("create", "deployment", "d", "-n", "doomed", "--image=busybox", "--replicas=2")
    kubectl.ok("create", "configmap", "c", "-n", "doomed")
    wait_for(lambda: _running(kubectl, "app=d", "doomed") == 2, what="pods in doomed")
    wait_for(lambda: "serviceaccount/default" in kubectl.ok("get", "sa", "-n", "doomed", "-o", "name"),
             what="default service account")
    kubectl.ok("delete", "namespace", "doomed", timeout=90)
    r = kubectl("get", "namespace", "doomed")
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_unschedulable_pod_stays_pending_with_reason(kubectl, nodes):
    kubectl.ok("run", "huge", "--image=busybox", "--overrides",
               '{"spec":{"containers":[{"name":"huge","image":"busybox","resources":{"requests":{"cpu":"64"}}}]}}')
    def reason():
        pod = json.loads(kubectl.ok("get", "pod", "huge", "-o", "json"))
        conds = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
        return conds and conds[0]["status"] == "False" and conds[0].get("message")
    msg = wait_for(reason, 30, what="PodScheduled=False")
    assert "Insufficient cpu" in msg and "nodes are available" in msg
    assert json.loads(kubectl.ok("get", "pod", "huge", "-o", "json"))["status"]["phase"] == "Pending"
    ev = kubectl.ok("get", "events", "--field-selector", "involvedObject.name=huge,reason=FailedScheduling",
                    "-o", "jsonpath={.items[0].message}")
    assert "Insufficient cpu" in ev
    kubectl.ok("delete", "pod", "huge")


def test_taints_tolerations_and_node_selector(kubectl, nodes):
    kubectl.ok("taint", "nodes", "sim-a-0", "dedicated=db:NoSchedule")
    kubectl.ok("label", "nodes", "sim-a-1", "tier=gold")
    try:
        kubectl.ok("create", "deployment", "spread", "--image=busybox", "--replicas=6")
        wait_for(lambda: _running(kubectl, "app=spread") == 6, what="6 running")
        assert "sim-a-0" not in {p["spec"]["nodeName"] for p in _pods(kubectl, "app=spread")}
        kubectl.ok("run", "gold", "--image=busybox", "--overrides", '{"spec":{"nodeSelector":{"tier":"gold"}}}')
        wait_for(lambda: json.loads(kubectl.ok("get", "pod", "gold", "-o", "json"))["spec"].get("nodeName"),
                 what="gold scheduled")
        assert json.loads(kubectl.ok("get", "pod", "gold", "-o", "json"))["spec"]["nodeName"] == "sim-a-1"
        kubectl.ok("run", "db", "--image=busybox", "--overrides",
                   '{"spec":{"nodeSelector":{"kubernetes.io/hostname":"sim-a-0"},"tolerations":[{"key":"dedicated",'
                   '"operator":"Equal","value":"db","effect":"NoSchedule"}]}}')
        wait_for(lambda: json.loads(kubectl.ok("get", "pod", "db", "-o", "json"))["spec"].get("nodeName") == "sim-a-0",
                 what="tolerating pod on the tainted node")
    finally:
        kubectl("taint", "nodes", "sim-a-0", "dedicated=db:NoSchedule-")
        kubectl("label", "nodes", "sim-a-1", "tier-")
        kubectl("delete", "deploy", "spread")
        kubectl("delete", "pod", "gold", "db", "--wait=false")


def test_dead_node_pods_replaced_elsewhere(server, kubectl, nodes):
    doomed = start_sim_nodes(server, "sim-dead-", 1)
    try:
        wait_for(lambda: "node/sim-dead-0" in kubectl.ok("get", "nodes", "-o", "name"), 30, what="doomed node")
        for n in NODES:
            kubectl.ok("cordon", n)
        manifest = {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "evict"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "evict"}}, "template": {
                "metadata": {"labels": {"app": "evict"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": [
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 2},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 2}]}}}}
        kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
        wait_for(lambda: _running(kubectl, "app=evict") == 2, what="pods on the doomed node")
        assert {p["spec"]["nodeName"] for p in _pods(kubectl, "app=evict")} == {"sim-dead-0"}
        for n in NODES:
            kubectl.ok("uncordon", n)
        doomed.kill()  # heartbeats stop
        doomed.wait(10)

        def replaced():
            live = [p for p in _pods(kubectl, "app=evict") if not p["metadata"].get("deletionTimestamp")
                    and p["status"].get("phase") == "Running"]
            return len(live) == 2 and all(p["spec"]["nodeName"] in NODES for p in live)
        wait_for(replaced, 90, what="replacement pods on healthy nodes")
        node = json.loads(kubectl.ok("get", "node", "sim-dead-0", "-o", "json"))
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"][0]
        assert ready["status"] == "Unknown"
        assert any(t["key"] == "node.kubernetes.io/unreachable" for t in node["spec"].get("taints") or [])
    finally:
        for n in NODES:
            kubectl("uncordon", n)
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
        kubectl("delete", "deploy", "evict")
        kubectl("delete", "node", "sim-dead-0")


def test_a_dead_nodes_dns_endpoint_stops_being_ready(server, kubectl, nodes):
    """A node's cluster-DNS endpoint (published by its agent) follows the node's
    readiness, and goes with the node."""
    node = start_sim_nodes(server, "sim-dns-", 1)
    name = "kube-dns-sim-dns-0"
    try:
        wait_for(lambda: "node/sim-dns-0" in kubectl.ok("get", "nodes", "-o", "name"), 30, what="the node")
        uid = json.loads(kubectl.ok("get", "node", "sim-dns-0", "-o", "json"))["metadata"]["uid"]
        slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": name, "namespace": "kube-system",
                               "labels": {"kubernetes.io/service-name": "kube-dns",
                                          "endpointslice.kubernetes.io/managed-by": "kybernetes-node-dns"},
                               "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "sim-dns-0",
                                                    "uid": uid}]},
                  "addressType": "IPv4", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                  "endpoints": [{"addresses": ["192.0.2.99"], "nodeName": "sim-dns-0",
                                 "conditions": {"ready": True, "serving": True, "terminating": False}}]}
        kubectl.ok("apply", "-f", "-", stdin=json.dumps(slice_))

        def conditions() -> dict:
            got = json.loads(kubectl.ok("get", "endpointslice", "-n", "kube-system", name, "-o", "json"))
            return got["endpoints"][0]["conditions"]

        time.sleep(1)
        assert conditions()["ready"] is True  # a Ready node's endpoint stays ready
        node.kill()  # heartbeats stop
        node.wait(10)
        wait_for(lambda: conditions()["ready"] is False and conditions()["serving"] is False, 60,
                 what="the endpoint of the unreachable node to be not ready")
        kubectl.ok("delete", "node", "sim-dns-0")
        wait_for(lambda: kubectl("get", "endpointslice", "-n", "kube-system", name).returncode != 0, 60,
                 what="the endpoint to go with its node")
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
        kubectl("delete", "node", "sim-dns-0")
        kubectl("delete", "endpointslice", "-n", "kube-system", name)
