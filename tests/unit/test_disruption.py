"""The disruption controller: a PodDisruptionBudget's status from its pods and their
controllers' scale (the pure planner), and the shell against fakes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kybernetes.client.resources import DEPLOYMENTS, PODS, REPLICASETS, REPLICATIONCONTROLLERS, STATEFULSETS
from kybernetes.controllers.disruption import PDBS, DisruptionController
from kybernetes.controllers.disruption_plan import (
    cleared_disruption,
    plan_budget,
    stale_disruption_in,
    workload_scale,
)
from kybernetes.controllers.podutil import format_time
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d", "uid": "rs-uid"}


def ago(seconds: float) -> str:
    return format_time(NOW - dt.timedelta(seconds=seconds))


def pod(name: str, ready: bool = True, owner: dict[str, Any] | None = RS, labels: dict[str, str] | None = None,
        **kw: Any) -> dict[str, Any]:
    return fakes.pod(name, labels={"app": "web"} if labels is None else labels, node="n1", phase="Running",
                     ready=ready, owner=owner, **kw)


def pdb(generation: int = 1, status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web-pdb", "namespace": "default", "uid": "pdb-uid", "generation": generation,
                         "resourceVersion": "5"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": status or {}}


def workloads(replicas: int = 4, deployment: int | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    rs: dict[str, Any] = {"metadata": {"name": "web-5d", "namespace": "default", "uid": "rs-uid"},
                          "spec": {"replicas": replicas}}
    out = {("ReplicaSet", "web-5d"): rs}
    if deployment is not None:
        rs["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                              "uid": "dep-uid", "controller": True}]
        out[("Deployment", "web")] = {"metadata": {"name": "web", "namespace": "default", "uid": "dep-uid"},
                                      "spec": {"replicas": deployment}}
    return out


def scale_of(objs: dict[tuple[str, str], dict[str, Any]]):
    return lambda ref, ns: workload_scale(ref, ns, lambda kind, _ns, name: objs.get((kind, name)))


def status_of(budget: dict[str, Any], pods: list[dict[str, Any]], objs=None) -> dict[str, Any]:
    plan = plan_budget(budget, pods, scale_of(objs or workloads()), NOW)
    assert plan.status is not None
    return plan.status


def test_integer_min_available_counts_selected_ready_pods():
    pods = [pod("a"), pod("b"), pod("c"), pod("d", ready=False), pod("x", labels={"app": "db"})]
    status = status_of(pdb(minAvailable=2), pods)
    assert {k: status[k] for k in ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed",
                                   "observedGeneration")} == {"currentHealthy": 3, "desiredHealthy": 2,
                                                              "expectedPods": 4, "disruptionsAllowed": 1,
                                                              "observedGeneration": 1}
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"], cond["observedGeneration"]) == (
        "DisruptionAllowed", "True", "SufficientPods", 1)
    assert cond["lastTransitionTime"] == "2026-01-01T12:00:00Z"


def test_max_unavailable_is_measured_against_the_deployments_scale():
    pods = [pod("a"), pod("b"), pod("c")]
    status = status_of(pdb(maxUnavailable=1), pods, workloads(replicas=3, deployment=5))
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (5, 4, 0)
    assert status["conditions"][0]["reason"] == "InsufficientPods"


@pytest.mark.parametrize(("spec", "desired"), [({"minAvailable": "50%"}, 2), ({"minAvailable": "51%"}, 3),
                                                ({"maxUnavailable": "25%"}, 3), ({"maxUnavailable": "26%"}, 2)])
def test_percentages_round_up_against_the_controllers_scale(spec, desired):
    status = status_of(pdb(**spec), [pod(n) for n in "abcd"], workloads(replicas=4))
    assert status["expectedPods"] == 4 and status["desiredHealthy"] == desired
    assert status["disruptionsAllowed"] == 4 - desired


def test_replication_controllers_and_statefulsets_count_with_their_own_scale():
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "name": "old", "uid": "rc-uid"}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts-uid"}
    objs = {("ReplicationController", "old"): {"metadata": {"uid": "rc-uid"}, "spec": {"replicas": 2}},
            ("StatefulSet", "db"): {"metadata": {"uid": "sts-uid"}, "spec": {"replicas": 3}}}
    status = status_of(pdb(maxUnavailable=0), [pod("a", owner=rc), pod("b", owner=rc), pod("c", owner=sts)], objs)
    assert status["expectedPods"] == 5 and status["desiredHealthy"] == 5


def test_a_pod_whose_controller_has_no_scale_fails_safe():
    job = {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "job-uid"}
    budget = pdb(maxUnavailable=1, status={"disruptionsAllowed": 3, "currentHealthy": 4})
    plan = plan_budget(budget, [pod("a", owner=job)], scale_of({}), NOW)
    assert plan.error == 'found no controllers for pod "a"'
    assert plan.status["disruptionsAllowed"] == 0
    cond = plan.status["conditions"][0]
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "SyncFailed", plan.error)
    assert any(e[2] == "CalculateExpectedPodCountFailed" for e in plan.events)


def test_unmanaged_pods_are_reported_and_left_out_of_the_scale():
    plan = plan_budget(pdb(maxUnavailable=1), [pod("a"), pod("bare", owner=None)], scale_of(workloads(2)), NOW)
    assert plan.status["expectedPods"] == 2 and plan.status["currentHealthy"] == 2
    assert [e[2] for e in plan.events] == ["UnmanagedPods"]


def test_no_pods_allows_nothing_and_says_so():
    plan = plan_budget(pdb(minAvailable=0), [], scale_of({}), NOW)
    assert plan.status["disruptionsAllowed"] == 0 and plan.status["expectedPods"] == 0
    assert [e[2] for e in plan.events] == ["NoPods"]


def test_pods_an_eviction_took_stop_counting_until_the_timeout():
    budget = pdb(minAvailable=1, status={"disruptedPods": {"a": ago(30), "b": ago(200), "gone": ago(1)}})
    pods = [pod("a"), pod("b"), pod("c"), pod("d", deleting=True)]
    plan = plan_budget(budget, pods, scale_of(workloads()), NOW)
    # "a" is on its way out; "b" was approved too long ago and counts again; "gone" no longer exists.
    assert plan.status["disruptedPods"] == {"a": ago(30)}
    assert plan.status["currentHealthy"] == 2 and plan.status["disruptionsAllowed"] == 1
    assert plan.recheck_after == pytest.approx(90.05)


def test_an_up_to_date_status_is_not_written_again():
    budget = pdb(minAvailable=1)
    budget["status"] = status_of(budget, [pod("a"), pod("b")])
    assert plan_budget(budget, [pod("a"), pod("b")], scale_of(workloads()), NOW).status is None
    budget["metadata"]["generation"] = 2
    assert plan_budget(budget, [pod("a"), pod("b")], scale_of(workloads()), NOW).status["observedGeneration"] == 2


def test_the_condition_keeps_its_transition_time_until_its_status_changes():
    budget = pdb(minAvailable=1)
    first = status_of(budget, [pod("a"), pod("b")])
    budget["status"] = {**first, "conditions": [{**first["conditions"][0], "lastTransitionTime": ago(600)}]}
    second = plan_budget(budget, [pod("a"), pod("b"), pod("c")], scale_of(workloads()), NOW).status
    assert second["conditions"][0]["lastTransitionTime"] == ago(600)
    third = plan_budget(budget, [pod("a")], scale_of(workloads()), NOW).status
    assert third["conditions"][0]["status"] == "False"
    assert third["conditions"][0]["lastTransitionTime"] == ago(0)


def test_a_replicaset_of_a_missing_deployment_has_no_scale():
    objs = workloads(replicas=3, deployment=5)
    del objs[("Deployment", "web")]
    assert workload_scale(RS, "default", lambda kind, ns, name: objs.get((kind, name))) is None
    stale = {**RS, "uid": "other"}
    assert workload_scale(stale, "default", lambda kind, ns, name: workloads().get((kind, name))) is None


# -- the shell against fakes -------------------------------------------------------------


async def test_controller_writes_the_budget_status_and_follows_its_pods():
    informers = FakeInformers()
    client = FakeClient(informers)
    ctrl = DisruptionController(client, informers)
    for res in (DEPLOYMENTS, REPLICATIONCONTROLLERS, STATEFULSETS):
        assert informers[res] is not None
    client.add(REPLICASETS, {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "metadata": {"name": "web-5d", "namespace": "default", "uid": "rs-uid"},
                             "spec": {"replicas": 3}})
    client.add(PODS, pod("a"), pod("b"), pod("c", ready=False))
    client.add(PDBS, pdb(maxUnavailable=1))
    client.deliver()
    await ctrl.sync("default/web-pdb")
    status = client.stored(PDBS, "default", "web-pdb")["status"]
    assert (status["expectedPods"], status["currentHealthy"], status["desiredHealthy"],
            status["disruptionsAllowed"]) == (3, 2, 2, 0)
    # A pod turning ready queues the budget and allows a disruption.
    while len(ctrl.queue):
        ctrl.queue.done(await ctrl.queue.get())
    await client.update(PODS, "default", "c", pod("c"), subresource="status")
    client.deliver()
    assert ctrl.queue.pending("default/web-pdb")
    await ctrl.sync("default/web-pdb")
    status = client.stored(PDBS, "default", "web-pdb")["status"]
    assert status["disruptionsAllowed"] == 1 and status["conditions"][0]["reason"] == "SufficientPods"
    writes = len(client.calls_of("update", "poddisruptionbudgets"))
    await ctrl.sync("default/web-pdb")
    assert len(client.calls_of("update", "poddisruptionbudgets")) == writes


def marked(name: str, since: float, reason: str = "EvictionByEvictionAPI", **kw: Any) -> dict[str, Any]:
    p = pod(name, **kw)
    p["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True", "reason": reason,
                                      "message": "Eviction API: evicting", "lastTransitionTime": ago(since)})
    return p


def test_a_disruption_mark_without_a_delete_goes_stale_after_two_minutes():
    assert stale_disruption_in(marked("a", 30), NOW) == pytest.approx(90)
    assert stale_disruption_in(marked("a", 300), NOW) == 0
    assert stale_disruption_in(marked("a", 300, deleting=True), NOW) is None
    assert stale_disruption_in(marked("a", 300, reason="TerminationByKubelet"), NOW) is None
    assert stale_disruption_in(pod("a"), NOW) is None
    cleared = cleared_disruption(marked("a", 300), NOW)
    cond = next(c for c in cleared["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert cond == {"type": "DisruptionTarget", "status": "False", "lastProbeTime": None,
                    "lastTransitionTime": ago(0)}


async def test_controller_clears_a_stale_disruption_mark():
    informers = FakeInformers()
    client = FakeClient(informers)
    ctrl = DisruptionController(client, informers, clock=lambda: NOW)
    client.add(PODS, marked("a", 600), marked("b", 10))
    client.deliver()
    await ctrl.sync_stale_pod("default/a")
    await ctrl.sync_stale_pod("default/b")
    conds = {n: next(c for c in client.stored(PODS, "default", n)["status"]["conditions"]
                     if c["type"] == "DisruptionTarget") for n in "ab"}
    assert conds["a"]["status"] == "False" and conds["b"]["status"] == "True"
    assert [c.name for c in client.calls_of("update", "pods")] == ["a"]
