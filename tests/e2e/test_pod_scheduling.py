"""The scheduling fields of a pod spec against a real `kyb server` with simulated nodes in
three zones, driven by real kubectl: schedulingGates (the SchedulingGated status, gates
only removed, a gated pod's nodeSelector narrowed, released by removing the last gate),
topologySpreadConstraints (DoNotSchedule with the node affinity policy and the
FailedScheduling words), preferred inter-pod affinity and anti-affinity (the incoming
pod's and an existing pod's), the pod overhead of a RuntimeClass in the resource fit, and
a nodeName set by hand."""

from __future__ import annotations

import json
import re

import pytest

from kybernetes.testing.cluster import start_sim_nodes, wait_for

NODES = ["sim-sched-0", "sim-sched-1", "sim-sched-2"]
ZONES = dict(zip(NODES, ("a", "b", "c"), strict=True))
ZONE = "topology.kubernetes.io/zone"
POOL = {"pool": "sched"}


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    p = start_sim_nodes(server, "sim-sched-", 3, "--label", "pool=sched", "--cleanup", cpu="2")
    try:
        wait_for(lambda: kubectl.ok("get", "nodes", "-l", "pool=sched", "-o", "jsonpath={.items[*].status.conditions"
                                    "[?(@.type==\"Ready\")].status}").split().count("True") == 3, 30,
                 what="sim nodes Ready")
        for name, zone in ZONES.items():
            kubectl.ok("label", "node", name, f"{ZONE}={zone}")
        yield NODES
    finally:
        kubectl("delete", "pods", "-l", "e2e=sched", "--grace-period=0", "--force")
        kubectl("delete", "runtimeclass", "e2e-sched-heavy")
        p.terminate()
        p.wait(10)


def _create(kubectl, name: str, labels: dict | None = None, node_selector: dict | None = None, cpu: str = "100m",
            **spec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "labels": {"e2e": "sched", **(labels or {})}},
           "spec": {"terminationGracePeriodSeconds": 0, **spec,
                    "containers": [{"name": "c", "image": "busybox:1.35",
                                    "resources": {"requests": {"cpu": cpu, "memory": "32Mi"}}}]}}
    if node_selector is not None:
        pod["spec"]["nodeSelector"] = node_selector
    kubectl.ok("create", "-f", "-", stdin=json.dumps(pod))


def _get(kubectl, name: str) -> dict:
    return json.loads(kubectl.ok("get", "pod", name, "-o", "json"))


def _running_on(kubectl, name: str) -> str:
    pod = wait_for(lambda: (p := _get(kubectl, name))["status"].get("phase") == "Running" and p, 60,
                   what=f"{name} Running")
    return pod["spec"]["nodeName"]


def _pods_on(kubectl, node: str) -> int:
    return len(kubectl.ok("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "name").split())


def _scheduled_condition(pod: dict) -> dict:
    return next(c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled")


def _status_column(kubectl, name: str) -> str:
    header, row = kubectl.ok("get", "pod", name).splitlines()
    return row.split()[header.split().index("STATUS")]


def _spread(**extra) -> list[dict]:
    return [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"app": "spread"}}, **extra}]


def _preferred(kind: str, app: str) -> dict:
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": ZONE}}]}}


def test_a_gated_pod_waits_until_its_last_gate_is_removed(kubectl, nodes):
    _create(kubectl, "gated", node_selector=POOL,
            schedulingGates=[{"name": "example.com/quota"}, {"name": "example.com/zone"}])
    pod = _get(kubectl, "gated")
    cond = _scheduled_condition(pod)
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates")
    assert _status_column(kubectl, "gated") == "SchedulingGated"
    r = kubectl("patch", "pod", "gated", "--type=json",
                "-p", '[{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "example.com/late"}}]')
    assert r.returncode != 0
    assert ("spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate "
            "'example.com/late'") in r.stderr
    # While gated, a queueing system may narrow where the pod will go.
    kubectl.ok("patch", "pod", "gated", "-p", json.dumps({"spec": {"nodeSelector": {ZONE: "c"}}}))
    r = kubectl("patch", "pod", "gated", "-p", json.dumps({"spec": {"nodeSelector": {"pool": "other"}}}))
    assert r.returncode != 0 and "only additions to spec.nodeSelector are allowed" in r.stderr
    kubectl.ok("patch", "pod", "gated", "--type=json", "-p", '[{"op": "remove", "path": "/spec/schedulingGates/0"}]')
    pod = _get(kubectl, "gated")
    assert pod["spec"]["schedulingGates"] == [{"name": "example.com/zone"}] and not pod["spec"].get("nodeName")
    assert _status_column(kubectl, "gated") == "SchedulingGated"
    kubectl.ok("patch", "pod", "gated", "--type=json", "-p", '[{"op": "remove", "path": "/spec/schedulingGates"}]')
    assert _running_on(kubectl, "gated") == "sim-sched-2"
    assert _scheduled_condition(_get(kubectl, "gated"))["status"] == "True"


def test_topology_spread_do_not_schedule_and_the_node_affinity_policy(kubectl, nodes):
    for i in range(3):
        _create(kubectl, f"spread-{i}", {"app": "spread"}, POOL, topologySpreadConstraints=_spread())
        _running_on(kubectl, f"spread-{i}")
    assert sorted(_get(kubectl, f"spread-{i}")["spec"]["nodeName"] for i in range(3)) == NODES
    in_a = {**POOL, ZONE: "a"}
    # Zone a may hold one more than the emptiest zone...
    _create(kubectl, "spread-3", {"app": "spread"}, in_a, topologySpreadConstraints=_spread(nodeAffinityPolicy="Ignore"))
    assert _running_on(kubectl, "spread-3") == "sim-sched-0"
    # ...not two more, when the zones the pod may not go to still count (Ignore)...
    _create(kubectl, "spread-4", {"app": "spread"}, in_a, topologySpreadConstraints=_spread(nodeAffinityPolicy="Ignore"))
    msg = wait_for(lambda: (c := _scheduled_condition(_get(kubectl, "spread-4"))).get("reason") == "Unschedulable"
                   and c["message"], 30, what="spread-4 unschedulable")
    assert re.match(r"0/\d+ nodes are available: .*1 node\(s\) didn't match pod topology spread constraints", msg), msg
    events = kubectl.ok("get", "events", "--field-selector", "involvedObject.name=spread-4,reason=FailedScheduling",
                        "-o", "jsonpath={.items[*].message}")
    assert "didn't match pod topology spread constraints" in events
    assert _status_column(kubectl, "spread-4") == "Pending"
    # ...while with the default policy (Honor) only zone a counts, and it is balanced with itself.
    _create(kubectl, "spread-5", {"app": "spread"}, in_a, topologySpreadConstraints=_spread())
    assert _running_on(kubectl, "spread-5") == "sim-sched-0"


def test_preferred_inter_pod_affinity_and_anti_affinity(kubectl, nodes):
    _create(kubectl, "db", {"app": "db"}, {**POOL, ZONE: "b"})
    assert _running_on(kubectl, "db") == "sim-sched-1"
    _create(kubectl, "near-db", {"app": "web"}, POOL, affinity=_preferred("podAffinity", "db"))
    assert _running_on(kubectl, "near-db") == "sim-sched-1"
    _create(kubectl, "away-from-db", {"app": "web"}, POOL, affinity=_preferred("podAntiAffinity", "db"))
    assert _running_on(kubectl, "away-from-db") != "sim-sched-1"
    # An existing pod's preferred anti-affinity keeps matching newcomers out of its zone,
    # though they have no terms of their own: even the emptiest node, which the resource
    # scores would pick, is avoided.
    emptiest = min(NODES, key=lambda n: (_pods_on(kubectl, n), n))
    _create(kubectl, "loner", {"app": "loner"}, {**POOL, ZONE: ZONES[emptiest]},
            affinity=_preferred("podAntiAffinity", "shy"))
    assert _running_on(kubectl, "loner") == emptiest
    for i in range(3):
        _create(kubectl, f"shy-{i}", {"app": "shy"}, POOL)
        assert _running_on(kubectl, f"shy-{i}") != emptiest


def test_a_node_name_set_by_hand_bypasses_the_scheduler(kubectl, nodes):
    _create(kubectl, "by-hand", nodeName="sim-sched-2")
    assert _running_on(kubectl, "by-hand") == "sim-sched-2"
    events = kubectl.ok("get", "events", "--field-selector", "involvedObject.name=by-hand",
                        "-o", "jsonpath={.items[*].reason}").split()
    assert "Scheduled" not in events and "FailedScheduling" not in events
    r = kubectl("create", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "gated-by-hand", "labels": {"e2e": "sched"}},
        "spec": {"nodeName": "sim-sched-2", "schedulingGates": [{"name": "a"}],
                 "containers": [{"name": "c", "image": "busybox:1.35"}]}}))
    assert r.returncode != 0
    assert "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared" in r.stderr


def test_a_runtime_class_overhead_counts_in_the_fit(kubectl, nodes):
    kubectl.ok("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "e2e-sched-heavy"},
        "handler": "runc", "overhead": {"podFixed": {"cpu": "1500m", "memory": "64Mi"}}}))
    # 600m fits any of the 2-CPU nodes; with the class's 1500m on top, none.
    _create(kubectl, "lean", node_selector=POOL, cpu="600m")
    assert _running_on(kubectl, "lean") in NODES
    _create(kubectl, "heavy", node_selector=POOL, cpu="600m", runtimeClassName="e2e-sched-heavy",
            overhead={"cpu": "1500m", "memory": "64Mi"})
    assert _get(kubectl, "heavy")["spec"]["overhead"] == {"cpu": "1500m", "memory": "64Mi"}
    msg = wait_for(lambda: (c := _scheduled_condition(_get(kubectl, "heavy"))).get("reason") == "Unschedulable"
                   and c["message"], 30, what="heavy unschedulable")
    assert re.match(r"0/\d+ nodes are available: (.*, )?3 Insufficient cpu", msg), msg
