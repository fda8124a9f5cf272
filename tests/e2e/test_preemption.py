"""Priority and preemption against a real `kyb server` with simulated nodes, driven by
real kubectl: the system PriorityClasses, priority resolved at admission, a
high-priority pod preempting a low-priority one on a full cluster, and a
`preemptionPolicy: Never` pod waiting instead."""

from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client as kclient
from kubernetes import watch

from kybernetes.testing.cluster import start_sim_nodes, wait_for

NODES = ["sim-prio-0", "sim-prio-1"]
POOL = "pool=preempt"

CLASSES = """
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-low}
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-high}
value: 1000
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: e2e-high-never}
value: 1000
preemptionPolicy: Never
"""


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    # Two nodes of 1 CPU each, only for this module's pods (they select the pool label).
    p = start_sim_nodes(server, "sim-prio-", 2, "--label", POOL, "--cleanup", cpu="1")
    try:
        wait_for(lambda: all(n in kubectl.ok("get", "nodes", "-l", POOL, "-o", "name") for n in NODES), 30,
                 what="sim nodes")
        wait_for(lambda: kubectl.ok("get", "nodes", "-l", POOL, "-o", "jsonpath={.items[*].status.conditions[?(@.type"
                                    "==\"Ready\")].status}").split().count("True") == 2, 30, what="nodes Ready")
        kubectl.ok("apply", "-f", "-", stdin=CLASSES)
        yield NODES
    finally:
        kubectl("delete", "pods", "-l", "e2e=preempt", "--grace-period=0", "--force")
        kubectl("delete", "priorityclass", "e2e-low", "e2e-high", "e2e-high-never")
        p.terminate()
        p.wait(10)


def _pod(name: str, cls: str, cpu: str = "700m") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"e2e": "preempt"}},
                       "spec": {"priorityClassName": cls, "nodeSelector": {"pool": "preempt"},
                                "terminationGracePeriodSeconds": 5,
                                "containers": [{"name": "c", "image": "busybox",
                                                "resources": {"requests": {"cpu": cpu}}}]}})


def _get(kubectl, name: str) -> dict | None:
    r = kubectl("get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def _phase(kubectl, name: str) -> str:
    pod = _get(kubectl, name)
    return (pod or {}).get("status", {}).get("phase", "") if pod and not pod["metadata"].get("deletionTimestamp") \
        else ""


def test_system_priority_classes_exist_and_cannot_be_deleted(kubectl):
    out = wait_for(lambda: (o := kubectl.ok("get", "priorityclasses")) and "system-node-critical" in o
                   and "system-cluster-critical" in o and o, 30, what="system classes")
    assert "2000001000" in out and "2000000000" in out
    r = kubectl("delete", "priorityclass", "system-node-critical")
    assert r.returncode != 0
    assert "this is a system priority class and cannot be deleted" in r.stderr
    r = kubectl("patch", "priorityclass", "system-cluster-critical", "-p", '{"value": 5}')
    assert r.returncode != 0 and "may not be changed in an update" in r.stderr
    r = kubectl("create", "priorityclass", "system-mine", "--value=5")
    assert r.returncode != 0 and "reserved for system use only" in r.stderr


def test_priority_is_resolved_at_admission(kubectl, nodes):
    plain = json.loads(kubectl.ok("run", "plain", "--image=busybox", "--dry-run=server", "-o", "json"))
    assert plain["spec"]["priority"] == 0 and plain["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    high = json.loads(kubectl.ok("create", "--dry-run=server", "-o", "json", "-f", "-",
                                 stdin=_pod("adm", "e2e-high-never")))
    assert high["spec"]["priority"] == 1000 and high["spec"]["preemptionPolicy"] == "Never"
    r = kubectl("create", "-f", "-", stdin=_pod("nope", "no-such-class"))
    assert r.returncode != 0
    assert 'pods "nope" is forbidden: no PriorityClass with name no-such-class was found' in r.stderr
    bad = json.loads(_pod("bad", "e2e-low"))
    bad["spec"]["priority"] = 7
    r = kubectl("create", "-f", "-", stdin=json.dumps(bad))
    assert r.returncode != 0 and "the integer value of priority (7) must not be provided in pod spec" in r.stderr
    r = kubectl("create", "priorityclass", "e2e-default-1", "--value=1", "--global-default")
    assert r.returncode == 0, r.stderr
    try:
        r = kubectl("create", "priorityclass", "e2e-default-2", "--value=2", "--global-default")
        assert r.returncode != 0 and "Only one default can exist" in r.stderr
        defaulted = json.loads(kubectl.ok("run", "dflt", "--image=busybox", "--dry-run=server", "-o", "json"))
        assert defaulted["spec"]["priorityClassName"] == "e2e-default-1" and defaulted["spec"]["priority"] == 1
    finally:
        kubectl("delete", "priorityclass", "e2e-default-1", "e2e-default-2")


def test_high_priority_pod_preempts_a_low_priority_one(kubectl, nodes, k8s_client):
    for name in ("low-0", "low-1"):
        kubectl.ok("create", "-f", "-", stdin=_pod(name, "e2e-low"))
    wait_for(lambda: _phase(kubectl, "low-0") == "Running" and _phase(kubectl, "low-1") == "Running", 60,
             what="low pods Running")
    placed = {n: _get(kubectl, n)["spec"]["nodeName"] for n in ("low-0", "low-1")}
    assert set(placed.values()) == set(NODES)  # the pool is full: 700m of 1 CPU on each node

    core = kclient.CoreV1Api(k8s_client)
    rv = core.list_namespaced_pod("default", label_selector="e2e=preempt").metadata.resource_version
    seen: dict[str, list[dict]] = {}
    stop = threading.Event()

    def observe():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, "default", label_selector="e2e=preempt", resource_version=rv,
                           timeout_seconds=90):
            obj = ev["object"]
            seen.setdefault(obj.metadata.name, []).append(
                {"type": ev["type"], "nominated": obj.status.nominated_node_name, "node": obj.spec.node_name,
                 "conditions": [(c.type, c.reason) for c in obj.status.conditions or []],
                 "deleting": obj.metadata.deletion_timestamp is not None})
            if stop.is_set():
                w.stop()

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    kubectl.ok("create", "-f", "-", stdin=_pod("high", "e2e-high"))
    wait_for(lambda: _phase(kubectl, "high") == "Running", 60, what="the high-priority pod Running")
    stop.set()
    high = _get(kubectl, "high")
    node = high["spec"]["nodeName"]
    victim = next(n for n, at in placed.items() if at == node)
    survivor = next(n for n in placed if n != victim)
    wait_for(lambda: _get(kubectl, victim) is None, 30, what="the victim gone")
    assert _phase(kubectl, survivor) == "Running"
    assert any(e["nominated"] == node for e in seen.get("high", [])), seen.get("high")
    # the victim got the DisruptionTarget condition before it was deleted
    assert any(("DisruptionTarget", "PreemptionByScheduler") in e["conditions"] for e in seen.get(victim, []))
    events = kubectl.ok("get", "events", "--field-selector", f"reason=Preempted,involvedObject.name={victim}",
                        "-o", "jsonpath={.items[*].message}")
    assert f"Preempted by default/high on node {node}" in events


def test_preemption_policy_never_waits(kubectl, nodes):
    # the pool is still full (high + one low pod): a Never pod waits and evicts nobody
    wait_for(lambda: _phase(kubectl, "high") == "Running", 30, what="high Running")
    running = {p for p in ("low-0", "low-1") if _phase(kubectl, p) == "Running"}
    assert len(running) == 1
    kubectl.ok("create", "-f", "-", stdin=_pod("polite", "e2e-high-never"))

    def waiting_message() -> str:
        pod = _get(kubectl, "polite") or {}
        conds = [c for c in pod.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"]
        return conds[0].get("message", "") if conds and conds[0]["status"] == "False" else ""

    msg = wait_for(waiting_message, 30, what="PodScheduled=False")
    assert "preemption: not eligible due to preemptionPolicy=Never." in msg
    time.sleep(2)
    assert {p for p in ("low-0", "low-1") if _phase(kubectl, p) == "Running"} == running
    assert not (_get(kubectl, "polite") or {})["spec"].get("nodeName")
    assert not (_get(kubectl, "polite") or {})["status"].get("nominatedNodeName")
