"""DaemonSets against a real `kyb server` with simulated nodes, driven by real kubectl.

Five simulated nodes carry the label `ds-e2e=yes`; every DaemonSet here selects those
nodes only, so that nodes other test modules start in the same session stay out of it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from kubernetes import client as kclient
from kubernetes import watch

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import ready_nodes, start_sim_nodes, wait_for

PREFIX = "ds-sim-"
NODES = [f"{PREFIX}{i}" for i in range(5)]
LABEL = "ds-e2e"
REAL_NODE = "ds-node"
REAL_CIDR = "10.42.222.0/24"


def _sim_nodes(server, prefix: str, count: int) -> subprocess.Popen:
    return start_sim_nodes(server, prefix, count, "--label", f"{LABEL}=yes", "--cleanup")


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    p = _sim_nodes(server, PREFIX, len(NODES))
    try:
        wait_for(lambda: ready_nodes(server, f"{LABEL}=yes") == NODES, 60, what="5 ready sim nodes")
        yield NODES
    finally:
        p.terminate()
        p.wait(10)


def _manifest(name: str, image: str = "busybox:1", *, max_unavailable: int | str = 1, tolerate: bool = False,
              strategy: str = "RollingUpdate") -> str:
    tolerations = ('      tolerations:\n      - {key: dedicated, operator: Exists, effect: NoSchedule}\n'
                   if tolerate else "")
    update = (f"  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n"
              f"      maxUnavailable: {max_unavailable}\n" if strategy == "RollingUpdate"
              else "  updateStrategy:\n    type: OnDelete\n")
    return (f"apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: {name}\nspec:\n"
            f"  selector:\n    matchLabels: {{app: {name}}}\n{update}"
            f"  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
            f"      nodeSelector: {{{LABEL}: 'yes'}}\n{tolerations}"
            f"      containers:\n      - name: c\n        image: {image}\n")


def _pods(kubectl, app: str) -> list[dict]:
    return json.loads(kubectl.ok("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]


def _running_by_node(kubectl, app: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in _pods(kubectl, app):
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
            out.setdefault(p["spec"].get("nodeName") or "", []).append(p)
    return out


def _ds(kubectl, name: str) -> dict:
    return json.loads(kubectl.ok("get", "ds", name, "-o", "json"))


def test_one_pod_per_node_and_tainted_nodes_only_for_tolerating_daemons(kubectl, nodes):
    kubectl.ok("taint", "nodes", NODES[0], "dedicated=infra:NoSchedule")
    try:
        kubectl.ok("apply", "-f", "-", stdin=_manifest("logs"))
        wait_for(lambda: sorted(_running_by_node(kubectl, "logs")) == NODES[1:], what="a pod on each untainted node")
        by_node = _running_by_node(kubectl, "logs")
        assert all(len(pods) == 1 for pods in by_node.values())
        pod = by_node[NODES[1]][0]
        # Placed through the scheduler: pinned by required node affinity, bound by the scheduler.
        terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms == {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": [NODES[1]]}]}]}
        assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} \
            in pod["spec"]["tolerations"]
        assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
        assert pod["metadata"]["labels"]["controller-revision-hash"]
        wait_for(lambda: _ds(kubectl, "logs")["status"].get("numberAvailable") == 4, what="4 available")
        status = _ds(kubectl, "logs")["status"]
        assert status["desiredNumberScheduled"] == 4 and status["currentNumberScheduled"] == 4
        assert status["numberReady"] == 4 and status["updatedNumberScheduled"] == 4
        assert status["numberMisscheduled"] == 0 and status["observedGeneration"] == 1
        table = kubectl.ok("get", "ds", "logs").splitlines()
        assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                    "SELECTOR", "AGE"]
        assert table[1].split()[:7] == ["logs", "4", "4", "4", "4", "4", f"{LABEL}=yes"]

        kubectl.ok("apply", "-f", "-", stdin=_manifest("tolerant", tolerate=True))
        wait_for(lambda: sorted(_running_by_node(kubectl, "tolerant")) == NODES, what="a pod on every node")
        assert NODES[0] not in _running_by_node(kubectl, "logs")
    finally:
        kubectl("taint", "nodes", NODES[0], "dedicated=infra:NoSchedule-")
        kubectl("delete", "ds", "tolerant", "--wait=false")
    # Untainted, the node gets its pod.
    wait_for(lambda: sorted(_running_by_node(kubectl, "logs")) == NODES, what="a pod on the untainted node")


def test_nodes_joining_leaving_and_failed_pods(server, kubectl, nodes):
    wait_for(lambda: sorted(_running_by_node(kubectl, "logs")) == NODES, what="a pod on every node")
    extra = _sim_nodes(server, "ds-join-", 1)
    try:
        wait_for(lambda: "ds-join-0" in _running_by_node(kubectl, "logs"), what="a pod on the joining node")
        wait_for(lambda: _ds(kubectl, "logs")["status"]["desiredNumberScheduled"] == 6, what="6 desired")
    finally:
        extra.terminate()
        extra.wait(10)
    wait_for(lambda: _ds(kubectl, "logs")["status"]["desiredNumberScheduled"] == 5, what="5 desired once it left")

    # A node that stops matching the node selector loses its pod.
    kubectl.ok("label", "node", NODES[4], f"{LABEL}=no", "--overwrite")
    try:
        wait_for(lambda: NODES[4] not in _running_by_node(kubectl, "logs"), what="the pod gone from the relabelled node")
        wait_for(lambda: not [p for p in _pods(kubectl, "logs") if p["spec"].get("nodeName") == NODES[4]],
                 what="no pod left there")
        assert _ds(kubectl, "logs")["status"]["desiredNumberScheduled"] == 4
    finally:
        kubectl.ok("label", "node", NODES[4], f"{LABEL}=yes", "--overwrite")
    wait_for(lambda: NODES[4] in _running_by_node(kubectl, "logs"), what="the pod back on the relabelled node")

    # A failed daemon pod is replaced on its node.
    victim = _running_by_node(kubectl, "logs")[NODES[2]][0]["metadata"]["name"]
    kubectl.ok("patch", "pod", victim, "--subresource=status", "--type=merge", "-p",
               '{"status":{"phase":"Failed","conditions":[{"type":"Ready","status":"False"}]}}')
    wait_for(lambda: [p["metadata"]["name"] for p in _running_by_node(kubectl, "logs").get(NODES[2], [])
                      if p["metadata"]["name"] != victim], what="a replacement on the node")
    events = kubectl.ok("get", "events", "--field-selector", "reason=FailedDaemonPod", "-o", "json")
    assert any(victim in e["message"] for e in json.loads(events)["items"])


def test_rolling_update_at_max_unavailable_and_rollout_history_undo(kubectl, nodes, k8s_client):
    kubectl.ok("apply", "-f", "-", stdin=_manifest("roll", max_unavailable=2))
    out = kubectl.ok("rollout", "status", "ds/roll", "--timeout=90s", timeout=100)
    assert 'daemon set "roll" successfully rolled out' in out
    core = kclient.CoreV1Api(k8s_client)
    listed = core.list_namespaced_pod("default", label_selector="app=roll")
    live: dict[str, dict] = {p.metadata.name: p.to_dict() for p in listed.items}
    worst = [0]
    lock = threading.Lock()

    def nodes_without_ready_pod() -> int:
        ready_nodes = {p["spec"].get("node_name") for p in live.values()
                       if not p["metadata"].get("deletion_timestamp")
                       and any(c["type"] == "Ready" and c["status"] == "True"
                               for c in (p["status"].get("conditions") or []))}
        return len(set(NODES) - ready_nodes)

    def observe() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, "default", label_selector="app=roll",
                           resource_version=listed.metadata.resource_version, timeout_seconds=90):
            obj = ev["object"].to_dict()
            with lock:
                if ev["type"] == "DELETED":
                    live.pop(obj["metadata"]["name"], None)
                else:
                    live[obj["metadata"]["name"]] = obj
                worst[0] = max(worst[0], nodes_without_ready_pod())
                if (obj["metadata"].get("annotations") or {}).get("done") == "1":
                    return

    t = threading.Thread(target=observe, daemon=True)
    t.start()
    time.sleep(0.5)
    kubectl.ok("set", "image", "ds/roll", "c=busybox:2")
    out = kubectl.ok("rollout", "status", "ds/roll", "--timeout=120s", timeout=130)
    assert 'daemon set "roll" successfully rolled out' in out
    pods = _running_by_node(kubectl, "roll")
    assert sorted(pods) == NODES
    assert {p["spec"]["containers"][0]["image"] for ps in pods.values() for p in ps} == {"busybox:2"}
    kubectl.ok("annotate", "pod", pods[NODES[0]][0]["metadata"]["name"], "done=1")
    t.join(30)
    assert not t.is_alive()
    # Old pods went at most two at a time: never more than two nodes without a ready pod.
    assert 1 <= worst[0] <= 2, worst[0]

    ds = _ds(kubectl, "roll")
    assert ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    assert ds["status"]["updatedNumberScheduled"] == 5 and ds["status"]["observedGeneration"] == ds["metadata"][
        "generation"]
    revisions = json.loads(kubectl.ok("get", "controllerrevisions", "-l", "app=roll", "-o", "json"))["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
    assert all(r["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for r in revisions)
    history = kubectl.ok("rollout", "history", "ds/roll")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert "busybox:1" in kubectl.ok("rollout", "history", "ds/roll", "--revision=1")

    out = kubectl.ok("rollout", "undo", "ds/roll")
    assert "rolled back" in out
    kubectl.ok("rollout", "status", "ds/roll", "--timeout=120s", timeout=130)
    pods = _running_by_node(kubectl, "roll")
    assert {p["spec"]["containers"][0]["image"] for ps in pods.values() for p in ps} == {"busybox:1"}
    history = kubectl.ok("rollout", "history", "ds/roll")
    # The rolled-back template is revision 1 renumbered to 3, as in Kubernetes.
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    # kubectl recognises the template already running from the revision's data.
    out = kubectl.ok("rollout", "undo", "ds/roll", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in out
    kubectl.ok("delete", "ds", "roll")
    wait_for(lambda: _pods(kubectl, "roll") == [], what="pods deleted with their DaemonSet")


def test_on_delete_replaces_only_deleted_pods(kubectl, nodes):
    kubectl.ok("apply", "-f", "-", stdin=_manifest("manual", strategy="OnDelete"))
    wait_for(lambda: sorted(_running_by_node(kubectl, "manual")) == NODES, what="a pod on every node")
    kubectl.ok("set", "image", "ds/manual", "c=busybox:2")
    wait_for(lambda: _ds(kubectl, "manual")["status"].get("observedGeneration") == 2, what="generation 2 observed")
    time.sleep(1)
    images = {p["spec"]["containers"][0]["image"] for ps in _running_by_node(kubectl, "manual").values() for p in ps}
    assert images == {"busybox:1"}
    victim = _running_by_node(kubectl, "manual")[NODES[3]][0]["metadata"]["name"]
    kubectl.ok("delete", "pod", victim)
    wait_for(lambda: [p for p in _running_by_node(kubectl, "manual").get(NODES[3], [])
                      if p["spec"]["containers"][0]["image"] == "busybox:2"], what="the replacement on the new template")
    status = _ds(kubectl, "manual")["status"]
    assert status["updatedNumberScheduled"] == 1

    # Deleted leaving its pods and revisions behind, then created again: it adopts them all
    # and starts nothing new.
    before = {p["metadata"]["name"] for p in _pods(kubectl, "manual")}
    kubectl.ok("delete", "ds", "manual", "--cascade=orphan")
    wait_for(lambda: kubectl("get", "ds", "manual").returncode != 0, what="the DaemonSet gone")
    wait_for(lambda: all(not p["metadata"].get("ownerReferences") for p in _pods(kubectl, "manual")),
             what="the pods orphaned")
    kubectl.ok("apply", "-f", "-", stdin=_manifest("manual", image="busybox:2", strategy="OnDelete"))
    uid = _ds(kubectl, "manual")["metadata"]["uid"]
    wait_for(lambda: all((p["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid
                         for p in _pods(kubectl, "manual")), what="the pods adopted")

    def revisions() -> list[dict]:
        return json.loads(kubectl.ok("get", "controllerrevisions", "-l", "app=manual", "-o", "json"))["items"]

    wait_for(lambda: all((r["metadata"].get("ownerReferences") or [{}])[0].get("uid") == uid for r in revisions()),
             what="the revisions adopted")
    assert sorted(r["revision"] for r in revisions()) == [1, 2]
    wait_for(lambda: _ds(kubectl, "manual")["status"].get("currentNumberScheduled") == 5, what="status")
    assert {p["metadata"]["name"] for p in _pods(kubectl, "manual")} == before
    kubectl.ok("delete", "ds", "manual", "logs")


def test_rolling_update_with_surge_keeps_every_node_served(kubectl, nodes, k8s_client):
    manifest = _manifest("surge").replace("      maxUnavailable: 1\n", "      maxUnavailable: 0\n      maxSurge: 2\n")
    kubectl.ok("apply", "-f", "-", stdin=manifest)
    kubectl.ok("rollout", "status", "ds/surge", "--timeout=90s", timeout=100)
    core = kclient.CoreV1Api(k8s_client)
    listed = core.list_namespaced_pod("default", label_selector="app=surge")
    live: dict[str, dict] = {p.metadata.name: p.to_dict() for p in listed.items}
    worst = {"unserved": 0, "pods": 0}

    def observe() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, "default", label_selector="app=surge",
                           resource_version=listed.metadata.resource_version, timeout_seconds=90):
            obj = ev["object"].to_dict()
            if ev["type"] == "DELETED":
                live.pop(obj["metadata"]["name"], None)
            else:
                live[obj["metadata"]["name"]] = obj
            active = [p for p in live.values() if not p["metadata"].get("deletion_timestamp")]
            served = {p["spec"].get("node_name") for p in active
                      if any(c["type"] == "Ready" and c["status"] == "True"
                             for c in (p["status"].get("conditions") or []))}
            worst["unserved"] = max(worst["unserved"], len(set(NODES) - served))
            worst["pods"] = max(worst["pods"], len(active))
            if (obj["metadata"].get("annotations") or {}).get("done") == "1":
                return

    t = threading.Thread(target=observe, daemon=True)
    t.start()
    time.sleep(0.5)
    kubectl.ok("set", "image", "ds/surge", "c=busybox:2")
    kubectl.ok("rollout", "status", "ds/surge", "--timeout=120s", timeout=130)
    wait_for(lambda: len(_pods(kubectl, "surge")) == 5, what="the old pods gone")
    pods = _running_by_node(kubectl, "surge")
    assert sorted(pods) == NODES
    assert {p["spec"]["containers"][0]["image"] for ps in pods.values() for p in ps} == {"busybox:2"}
    kubectl.ok("annotate", "pod", pods[NODES[0]][0]["metadata"]["name"], "done=1")
    t.join(30)
    assert not t.is_alive()
    # New pods started beside the old ones (at most two extra at once), and no node was
    # ever without a ready daemon.
    assert worst["unserved"] == 0
    assert 6 <= worst["pods"] <= 7, worst
    kubectl.ok("delete", "ds", "surge")

@pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")
def test_a_daemonset_covers_simulated_nodes_and_a_real_agent(kubectl, nodes):
    agent = AgentProcess(kubectl.server, node_name=REAL_NODE, bridge="kybd0", proxy_table="kyb-ds",
                         pod_cidr=REAL_CIDR, labels={LABEL: "yes"})
    try:
        agent.start()
        manifest = _manifest("everywhere").replace(
            "      containers:\n",
            f"      tolerations:\n      - {{key: {TEST_TAINT}, operator: Exists}}\n"
            "      terminationGracePeriodSeconds: 1\n      containers:\n").replace(
            "image: busybox:1\n", "image: docker.io/library/busybox:1.35\n        command: [sleep, '3600']\n")
        kubectl.ok("apply", "-f", "-", stdin=manifest)
        wait_for(lambda: sorted(_running_by_node(kubectl, "everywhere")) == sorted([*NODES, REAL_NODE]), 120,
                 what="a Running pod on the five simulated nodes and the real one")
        real = _running_by_node(kubectl, "everywhere")[REAL_NODE][0]
        assert real["status"]["podIP"].startswith("10.42.222.")
        wait_for(lambda: _ds(kubectl, "everywhere")["status"].get("numberAvailable") == 6, 60, what="6 available")
        kubectl.ok("delete", "ds", "everywhere", "--timeout=90s", timeout=100)
        wait_for(lambda: _pods(kubectl, "everywhere") == [], 90, what="the daemon pods gone")
    finally:
        kubectl("delete", "ds", "everywhere", "--ignore-not-found", "--wait=false")
        agent.cleanup()
