"""ReplicationControllers, PodDisruptionBudgets, the eviction subresource and `kubectl drain`
against a real `kyb server` with simulated nodes, driven by real kubectl and the Python client.

The simulated nodes carry `pool=disrupt` and every workload here selects them, so cordoning
them decides where pods may go whatever other tests run in the session.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client as kclient
from kubernetes import watch
from kubernetes.client.rest import ApiException

from kybernetes.testing.cluster import start_sim_nodes, wait_for

NS = "disrupt"
NODES = ["sim-d-0", "sim-d-1", "sim-d-2"]


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    p = start_sim_nodes(server, "sim-d-", 3, "--label", "pool=disrupt", "--cleanup", start_delay=0.3)
    try:
        wait_for(lambda: kubectl.ok("get", "nodes", "-l", "pool=disrupt", "-o", "jsonpath={.items[*].status.conditions"
                                    "[?(@.type==\"Ready\")].status}").split().count("True") == 3, 30, what="nodes Ready")
        kubectl.ok("create", "namespace", NS)
        yield NODES
    finally:
        kubectl("delete", "namespace", NS, "--wait=false")
        p.terminate()
        p.wait(10)


def _pods(kubectl, selector: str) -> list[dict]:
    return json.loads(kubectl.ok("get", "pods", "-n", NS, "-l", selector, "-o", "json"))["items"]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def _serving(kubectl, selector: str) -> list[dict]:
    return [p for p in _pods(kubectl, selector) if _ready(p) and not p["metadata"].get("deletionTimestamp")]


def _deployment(name: str, replicas: int) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
                       "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"nodeSelector": {"pool": "disrupt"},
                                                      "containers": [{"name": "c", "image": "busybox"}]}}}})


def _pdb(name: str, app: str, min_available: int | str) -> str:
    return json.dumps({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                       "metadata": {"name": name, "namespace": NS},
                       "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}}})


def _pdb_status(kubectl, name: str) -> dict:
    return json.loads(kubectl.ok("get", "pdb", name, "-n", NS, "-o", "json")).get("status") or {}


def test_replication_controller_keeps_and_scales_its_replicas(kubectl, nodes):
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rcweb", "namespace": NS},
          "spec": {"replicas": 3, "selector": {"app": "rcweb"},
                   "template": {"metadata": {"labels": {"app": "rcweb", "tier": "web"}},
                                "spec": {"nodeSelector": {"pool": "disrupt"},
                                         "containers": [{"name": "c", "image": "busybox"}]}}}}
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(rc))
    wait_for(lambda: len(_serving(kubectl, "app=rcweb")) == 3, what="3 ready RC pods")
    pods = _pods(kubectl, "app=rcweb")
    refs = [p["metadata"]["ownerReferences"][0] for p in pods]
    assert {(r["apiVersion"], r["kind"], r["name"], r["controller"]) for r in refs} == {
        ("v1", "ReplicationController", "rcweb", True)}

    def status():
        s = json.loads(kubectl.ok("get", "rc", "rcweb", "-n", NS, "-o", "json"))["status"]
        return s if s.get("availableReplicas") == 3 else None

    s = wait_for(status, what="RC status")
    assert (s["replicas"], s["fullyLabeledReplicas"], s["readyReplicas"], s["observedGeneration"]) == (3, 3, 3, 1)
    assert "terminatingReplicas" not in s
    # A deleted pod is replaced.
    kubectl.ok("delete", "pod", "-n", NS, pods[0]["metadata"]["name"], "--wait=false")
    wait_for(lambda: len(_serving(kubectl, "app=rcweb")) == 3
             and pods[0]["metadata"]["name"] not in {p["metadata"]["name"] for p in _pods(kubectl, "app=rcweb")},
             what="a replacement pod")
    # kubectl scale goes through the RC's scale subresource.
    assert "replicationcontroller/rcweb scaled" in kubectl.ok("scale", "rc", "rcweb", "-n", NS, "--replicas=5")
    wait_for(lambda: len(_serving(kubectl, "app=rcweb")) == 5, what="5 ready RC pods")
    row = wait_for(lambda: [line for line in kubectl.ok("get", "rc", "rcweb", "-n", NS).splitlines()
                            if line.split()[:4] == ["rcweb", "5", "5", "5"]], what="kubectl get rc row")
    assert row
    kubectl.ok("scale", "rc", "rcweb", "-n", NS, "--replicas=1")
    wait_for(lambda: len(_pods(kubectl, "app=rcweb")) == 1, what="1 RC pod")
    # kubectl deletes in the background: the garbage collector takes the pods with it.
    kubectl.ok("delete", "rc", "rcweb", "-n", NS)
    wait_for(lambda: _pods(kubectl, "app=rcweb") == [], what="RC pods collected")


def test_pdb_status_follows_the_pods(kubectl, nodes):
    kubectl.ok("apply", "-f", "-", stdin=_deployment("pdbweb", 3))
    kubectl.ok("apply", "-f", "-", stdin=_pdb("pdbweb", "pdbweb", 2))
    wait_for(lambda: len(_serving(kubectl, "app=pdbweb")) == 3, what="3 ready pods")
    s = wait_for(lambda: (lambda st: st if st.get("currentHealthy") == 3 else None)(_pdb_status(kubectl, "pdbweb")),
                 what="PDB status")
    assert (s["desiredHealthy"], s["expectedPods"], s["disruptionsAllowed"], s["observedGeneration"]) == (2, 3, 1, 1)
    cond = s["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True", "SufficientPods")
    rows = kubectl.ok("get", "pdb", "pdbweb", "-n", NS).splitlines()
    assert rows[0].split()[:4] == ["NAME", "MIN", "AVAILABLE", "MAX"] and rows[1].split()[:4] == ["pdbweb", "2", "N/A", "1"]
    # A percentage is measured against the Deployment's scale.
    kubectl.ok("patch", "pdb", "pdbweb", "-n", NS, "--type=merge", "-p", '{"spec":{"minAvailable":"100%"}}')
    s = wait_for(lambda: (lambda st: st if st.get("observedGeneration") == 2 else None)(_pdb_status(kubectl, "pdbweb")),
                 what="PDB status of generation 2")
    assert (s["desiredHealthy"], s["expectedPods"], s["disruptionsAllowed"]) == (3, 3, 0)
    assert s["conditions"][0]["reason"] == "InsufficientPods"
    kubectl.ok("delete", "deploy", "pdbweb", "-n", NS)
    kubectl.ok("delete", "pdb", "pdbweb", "-n", NS)


def test_eviction_that_would_violate_the_budget_gets_429(kubectl, nodes, k8s_client):
    kubectl.ok("apply", "-f", "-", stdin=_deployment("evict", 3))
    kubectl.ok("apply", "-f", "-", stdin=_pdb("evict", "evict", 2))
    wait_for(lambda: len(_serving(kubectl, "app=evict")) == 3, what="3 ready pods")
    wait_for(lambda: _pdb_status(kubectl, "evict").get("disruptionsAllowed") == 1, what="one disruption allowed")
    core = kclient.CoreV1Api(k8s_client)
    names = [p["metadata"]["name"] for p in _pods(kubectl, "app=evict")]
    # No room for replacements: what an eviction takes stays taken.
    for node in NODES:
        kubectl.ok("cordon", node)
    try:
        def evict(name: str, dry_run: bool = False) -> None:
            body = kclient.V1Eviction(metadata=kclient.V1ObjectMeta(name=name, namespace=NS),
                                      delete_options=kclient.V1DeleteOptions(dry_run=["All"] if dry_run else None))
            core.create_namespaced_pod_eviction(name, NS, body)

        # A dry run checks the budget and takes nothing.
        evict(names[0], dry_run=True)
        assert _pdb_status(kubectl, "evict")["disruptionsAllowed"] == 1
        assert not core.read_namespaced_pod(names[0], NS).metadata.deletion_timestamp
        since = core.list_namespaced_pod(NS, label_selector="app=evict").metadata.resource_version
        evict(names[0])
        assert _pdb_status(kubectl, "evict")["disruptionsAllowed"] == 0
        # The pod was marked before it was deleted: the watch replays every version it had.
        seen = []
        for ev in watch.Watch().stream(core.list_namespaced_pod, NS, field_selector=f"metadata.name={names[0]}",
                                       resource_version=since, timeout_seconds=2):
            seen += [(c.type, c.reason) for c in ev["object"].status.conditions or []]
        assert ("DisruptionTarget", "EvictionByEvictionAPI") in seen
        with pytest.raises(ApiException) as e:
            evict(names[1])
        assert e.value.status == 429
        status = json.loads(e.value.body)
        assert status["reason"] == "TooManyRequests"
        assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        assert status["details"]["causes"][0]["reason"] == "DisruptionBudget"
        assert "The disruption budget evict needs 2 healthy pods and has 2 currently" in \
            status["details"]["causes"][0]["message"]
        assert not core.read_namespaced_pod(names[1], NS).metadata.deletion_timestamp
    finally:
        for node in NODES:
            kubectl.ok("uncordon", node)
    # Once the replacement runs, the budget has room again.
    wait_for(lambda: _pdb_status(kubectl, "evict").get("disruptionsAllowed") == 1, what="budget restored")
    # Two budgets over one pod: the eviction subresource does not choose between them.
    kubectl.ok("apply", "-f", "-", stdin=_pdb("evict-too", "evict", 1))
    with pytest.raises(ApiException) as e:
        evict(names[1])
    assert e.value.status == 500
    assert json.loads(e.value.body)["message"] == ("This pod has more than one PodDisruptionBudget, which the "
                                                   "eviction subresource does not support.")
    kubectl.ok("delete", "pdb", "evict-too", "-n", NS)
    kubectl.ok("delete", "deploy", "evict", "-n", NS)
    kubectl.ok("delete", "pdb", "evict", "-n", NS)


def test_drain_respects_the_budget_and_uncordon(kubectl, nodes, k8s_client):
    target, others = NODES[0], NODES[1:]
    # All replicas on the node to drain, so the drain must wait for the budget between evictions.
    for node in others:
        kubectl.ok("cordon", node)
    try:
        kubectl.ok("apply", "-f", "-", stdin=_deployment("drainweb", 3))
        wait_for(lambda: len(_serving(kubectl, "app=drainweb")) == 3, what="3 ready pods")
    finally:
        for node in others:
            kubectl.ok("uncordon", node)
    assert {p["spec"]["nodeName"] for p in _pods(kubectl, "app=drainweb")} == {target}
    kubectl.ok("apply", "-f", "-", stdin=_pdb("drainweb", "drainweb", 2))
    wait_for(lambda: _pdb_status(kubectl, "drainweb").get("disruptionsAllowed") == 1, what="one disruption allowed")
    # A log shipper on every node: drain leaves its pods alone when told to.
    ds = json.loads(_deployment("drainlogs", 1).replace('"Deployment"', '"DaemonSet"'))
    del ds["spec"]["replicas"]
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(ds))
    ds_pod = wait_for(lambda: [p["metadata"]["name"] for p in _serving(kubectl, "app=drainlogs")
                               if p["spec"]["nodeName"] == target], what="the DaemonSet's pod on the node")[0]
    refused = kubectl("drain", target, "--delete-emptydir-data", "--timeout=20s", timeout=40)
    assert refused.returncode != 0
    assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)" in refused.stderr

    core = kclient.CoreV1Api(k8s_client)
    listed = core.list_namespaced_pod(NS, label_selector="app=drainweb")
    live = {p.metadata.name: p for p in listed.items}
    violations: list[str] = []
    done = threading.Event()

    def observe() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, NS, label_selector="app=drainweb",
                           resource_version=listed.metadata.resource_version, timeout_seconds=120):
            pod = ev["object"]
            if ev["type"] == "DELETED":
                live.pop(pod.metadata.name, None)
            else:
                live[pod.metadata.name] = pod
            serving = [p for p in live.values() if not p.metadata.deletion_timestamp and any(
                c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
            if len(serving) < 2:
                violations.append(f"{len(serving)} serving pods < minAvailable 2")
            if done.is_set():
                w.stop()

    t = threading.Thread(target=observe)
    t.start()
    time.sleep(0.5)
    r = kubectl("drain", target, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=150s", timeout=170)
    done.set()
    # An event on the watched pods lets the observer see `done` and end its watch.
    kubectl.ok("annotate", "pods", "-n", NS, "-l", "app=drainweb", "poke=1")
    t.join(30)
    assert not t.is_alive()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert f"node/{target} drained" in out
    assert f"Warning: ignoring DaemonSet-managed Pods: {NS}/{ds_pod}" in out
    assert ds_pod in {p["metadata"]["name"] for p in _serving(kubectl, "app=drainlogs")}
    assert out.count("evicted") >= 3
    # The budget held the later evictions back until replacements were ready elsewhere.
    assert "Cannot evict pod as it would violate the pod's disruption budget." in out
    assert violations == []
    pods = _serving(kubectl, "app=drainweb")
    assert len(pods) == 3 and {p["spec"]["nodeName"] for p in pods} <= set(others)
    node = json.loads(kubectl.ok("get", "node", target, "-o", "json"))
    assert node["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in kubectl.ok("get", "node", target)

    assert f"node/{target} uncordoned" in kubectl.ok("uncordon", target)
    node = json.loads(kubectl.ok("get", "node", target, "-o", "json"))
    assert not node["spec"].get("unschedulable")
    kubectl.ok("scale", "deploy", "drainweb", "-n", NS, "--replicas=6")
    wait_for(lambda: target in {p["spec"]["nodeName"] for p in _serving(kubectl, "app=drainweb")}, 60,
             what="pods scheduled on the uncordoned node again")
    kubectl.ok("delete", "deploy", "drainweb", "-n", NS)
    kubectl.ok("delete", "ds", "drainlogs", "-n", NS)
    kubectl.ok("delete", "pdb", "drainweb", "-n", NS)
