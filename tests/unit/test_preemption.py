"""Preemption as the DefaultPreemption post-filter decides it (kybernetes/scheduler/
preemption.py through schedule_one), and the scheduler shell acting on the decision:
victims get the DisruptionTarget condition and a graceful delete, the preemptor its
nominatedNodeName, and it lands on that node once the victims are gone."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kybernetes.client.resources import NODES, PODS
from kybernetes.scheduler import preemption
from kybernetes.scheduler.cache import ClusterCache, PodInfo
from kybernetes.scheduler.core import build_filters, schedule_one
from kybernetes.scheduler.preemption import Budget, Candidate, budget_of, pick_candidate, select_victims
from kybernetes.scheduler.scheduler import PDBS, Scheduler
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, until


def node(name: str, cpu: str = "4") -> dict:
    return fakes.node(name, allocatable={"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"})


def pod(name: str, cpu: str, prio: int = 0, node_name: str = "", started: str | None = None,
        labels: dict | None = None, status: dict | None = None, **spec: Any) -> dict:
    status = {**(status or {}), **({"startTime": started} if started else {})} or None
    return fakes.pod(name, labels=labels, node=node_name, phase="Running" if node_name else "Pending",
                     requests={"cpu": cpu}, created="2025-01-01T00:00:00Z", priority=prio, status=status, **spec)


def cluster(*nodes: dict, pods: tuple = ()) -> ClusterCache:
    c = ClusterCache()
    for n in nodes:
        c.set_node(n)
    for p in pods:
        c.add_pod(p)
    return c


def victims_on(c: ClusterCache, preemptor: dict, name: str, budgets: tuple = ()) -> Candidate | tuple:
    p = PodInfo(preemptor)
    return select_victims(p, c.nodes[name], build_filters(p, c), budgets)


def names(pods) -> list[str]:
    return [v.name for v in pods]


def pdb(name: str, labels: dict, allowed: int, disrupted: tuple = ()) -> dict:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"selector": {"matchLabels": labels}},
            "status": {"disruptionsAllowed": allowed, "disruptedPods": {n: "2025-01-01T00:00:00Z" for n in disrupted}}}


# -- victims on one node -------------------------------------------------------------------

def test_only_lower_priority_pods_are_victims_and_as_few_as_possible():
    c = cluster(node("n1", cpu="4"), pods=(
        pod("a", "1", 10, "n1"), pod("b", "1", 20, "n1"), pod("c", "1", 5, "n1"), pod("same", "1", 100, "n1")))
    got = victims_on(c, pod("x", "2", 100), "n1")
    # room for 2 cpu: the two least important go, the pod with the preemptor's priority stays
    assert isinstance(got, Candidate)
    assert names(got.victims) == ["a", "c"]
    assert got.pdb_violations == 0


def test_reprieve_keeps_the_most_important_pods():
    # a (1 cpu) and b (2 cpu) both at priority 10; c at 5 (2 cpu): need 2 cpu free
    c = cluster(node("n1", cpu="5"), pods=(pod("a", "1", 10, "n1"), pod("b", "2", 20, "n1"), pod("c", "2", 5, "n1")))
    got = victims_on(c, pod("x", "2", 100), "n1")
    # b (highest) is given back first, then a; c alone frees enough
    assert names(got.victims) == ["c"]


def test_no_lower_priority_pods_or_not_enough_room():
    c = cluster(node("n1", cpu="2"), pods=(pod("hi", "1", 500, "n1"), pod("lo", "500m", 1, "n1")))
    assert victims_on(c, pod("x", "1", 1), "n1") == ((preemption.NO_VICTIMS,), False)
    status = victims_on(c, pod("x", "2", 100), "n1")  # even without "lo", "hi" leaves 1 cpu
    assert status == (("Insufficient cpu",), True)


def test_pdb_violating_victims_are_counted_and_given_back_first():
    c = cluster(node("n1", cpu="3"), pods=(
        pod("guarded", "1", 10, "n1", labels={"app": "db"}), pod("free", "1", 10, "n1", labels={"app": "web"}),
        pod("other", "1", 10, "n1", labels={"app": "web"})))
    budgets = (budget_of(pdb("db", {"app": "db"}, 0)),)
    got = victims_on(c, pod("x", "2", 100), "n1", budgets)
    # the guarded pod is tried first and kept: the two unguarded ones go
    assert sorted(names(got.victims)) == ["free", "other"] and got.pdb_violations == 0
    got = victims_on(c, pod("x", "3", 100), "n1", budgets)
    assert len(got.victims) == 3 and got.pdb_violations == 1
    # a pod the API server already counted as disrupted is no violation
    budgets = (budget_of(pdb("db", {"app": "db"}, 0, disrupted=("guarded",))),)
    assert victims_on(c, pod("x", "3", 100), "n1", budgets).pdb_violations == 0


def test_budget_split_follows_disruptions_allowed():
    pods = [PodInfo(pod(n, "1", 1, "n1", labels={"app": "w"})) for n in ("a", "b", "c")]
    b = budget_of(pdb("w", {"app": "w"}, 2))
    violating, fine = preemption.split_by_budgets(pods, [b])
    assert names(violating) == ["c"] and names(fine) == ["a", "b"]
    # an empty selector and another namespace match nothing
    empty = budget_of({"metadata": {"namespace": "default"}, "spec": {"selector": {}}, "status": {}})
    elsewhere = Budget("other", b.selector, 0, frozenset())
    assert preemption.split_by_budgets(pods, [empty, elsewhere]) == ([], pods)


# -- choosing the node -----------------------------------------------------------------------

def cand(node_name: str, *victims: tuple[int, str | None], violations: int = 0) -> Candidate:
    vs = [PodInfo(pod(f"{node_name}-{i}", "1", prio, node_name, started=start))
          for i, (prio, start) in enumerate(victims)]
    vs.sort(key=preemption.importance_key)
    return Candidate(node_name, vs, violations)


def test_node_choice_follows_upstream_criteria_in_order():
    t1, t2 = "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
    # fewest PDB violations first, even with more important victims
    assert pick_candidate([cand("a", (1, t1), violations=1), cand("b", (50, t1))]).node == "b"
    # then the lowest highest-victim priority
    assert pick_candidate([cand("a", (30, t1)), cand("b", (20, t1), (20, t1))]).node == "b"
    # then the smallest sum of priorities
    assert pick_candidate([cand("a", (20, t1), (10, t1)), cand("b", (20, t1), (5, t1))]).node == "b"
    # then the fewest victims
    assert pick_candidate([cand("a", (20, t1), (0, t1), (0, t1)), cand("b", (20, t1), (0, t1))]).node == "b"
    # then the latest start among the highest-priority victims
    assert pick_candidate([cand("a", (20, t1)), cand("b", (20, t2))]).node == "b"
    assert pick_candidate([cand("a", (20, t2)), cand("b", (20, t1))]).node == "a"
    # a pod not started yet counts as the latest
    assert pick_candidate([cand("a", (20, t2)), cand("b", (20, None))]).node == "b"
    # negative priorities are summed right (shifted as upstream)
    assert pick_candidate([cand("a", (-5, t1), (-5, t1)), cand("b", (-5, t1), (-10, t1))]).node == "b"
    assert pick_candidate([]) is None


def test_candidate_count_is_a_tenth_of_the_nodes_at_least_100():
    assert preemption.num_candidates(50) == 50
    assert preemption.num_candidates(500) == 100
    assert preemption.num_candidates(5000) == 500


# -- through schedule_one ----------------------------------------------------------------------

def test_schedule_one_chooses_the_node_with_the_least_important_victims():
    c = cluster(node("n1", cpu="2"), node("n2", cpu="2"), node("n3", cpu="1"), pods=(
        pod("mid", "2", 50, "n1"), pod("low", "2", 10, "n2"), pod("top", "1", 1000, "n3")))
    r = schedule_one(pod("x", "2", 100), c, random.Random(0))
    assert r.node is None
    assert r.preemption is not None and r.preemption.node == "n2" and names(r.preemption.victims) == ["low"]
    # with a candidate the message has no preemption clause, as upstream
    assert r.message == "0/3 nodes are available: 3 Insufficient cpu. no new claims to deallocate."


def test_preemption_policy_never_and_equal_priority_do_not_preempt():
    c = cluster(node("n1", cpu="1"), pods=(pod("low", "1", 10, "n1"),))
    r = schedule_one(pod("x", "1", 100, preemptionPolicy="Never"), c, random.Random(0))
    assert r.preemption is None and r.message.endswith("preemption: not eligible due to preemptionPolicy=Never.")
    r = schedule_one(pod("y", "1", 10), c, random.Random(0))
    assert r.preemption is None
    assert r.message.endswith("preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")


def test_a_nominated_pod_keeps_its_room_against_lower_or_equal_priority():
    c = cluster(node("n1", cpu="2"))
    waiting = PodInfo(pod("w", "2", 100))
    c.nominate(waiting, "n1")
    assert schedule_one(pod("low", "1", 50), c, random.Random(0)).node is None
    assert schedule_one(pod("peer", "1", 100), c, random.Random(0)).node is None
    # higher priority ignores the reservation; the nominated pod itself fits on its node
    assert schedule_one(pod("high", "1", 200), c, random.Random(0)).node == "n1"
    assert schedule_one(pod("w", "2", 100), c, random.Random(0)).node == "n1"
    c.unnominate("default/w")
    assert schedule_one(pod("low", "1", 50), c, random.Random(0)).node == "n1"
    assert not c.nominated and not c.nominated_node


def test_nominated_pod_waits_while_its_victims_terminate():
    c = cluster(node("n1", cpu="1"), node("n2", cpu="1"), pods=(
        pod("going", "1", 10, "n1", deleting=True), pod("low", "1", 10, "n2")))
    x = pod("x", "1", 100, status={"nominatedNodeName": "n1"})
    c.nominate(PodInfo(x), "n1")
    r = schedule_one(x, c, random.Random(0))
    assert r.preemption is None
    assert r.message.endswith("preemption: not eligible due to a terminating pod on the nominated node.")


# -- the shell ---------------------------------------------------------------------------------

async def test_scheduler_evicts_victims_nominates_and_binds_after_they_are_gone():
    informers = FakeInformers()
    client = FakeClient(informers)
    client.graceful = {"pods"}  # a delete only marks the pod, as for a running pod
    sched = Scheduler(client, informers, rng=random.Random(0))
    sched.flush_interval = 0.01
    client.add(NODES, node("n1", cpu="1"), node("n2", cpu="1"))
    client.add(PODS, pod("low", "1", 10, "n1"), pod("top", "1", 1000, "n2"))
    client.add(PDBS, pdb("unrelated", {"app": "none"}, 0))
    task = asyncio.create_task(sched.run())
    try:
        client.add(PODS, pod("x", "1", 100))
        await until(lambda: client.calls_of("delete"))
        delete = client.calls_of("delete")[0]
        assert delete.name == "low" and "grace_period_seconds" not in delete.options
        # the DisruptionTarget condition was written before the delete
        verbs = [(c.verb, c.name, c.subresource) for c in client.calls if c.name == "low"]
        assert verbs.index(("patch", "low", "status")) < verbs.index(("delete", "low", ""))
        cond = next(c for c in client.calls_of("patch") if c.name == "low").body["status"]["conditions"][0]
        assert (cond["type"], cond["reason"], cond["message"]) == (
            "DisruptionTarget", "PreemptionByScheduler", "default-scheduler: preempting to accommodate a higher "
            "priority pod")
        await until(lambda: (client.stored(PODS, "default", "x")["status"] or {}).get("nominatedNodeName") == "n1")
        assert sched.cache.nominated_node == {"default/x": "n1"}
        assert any(e.reason == "Preempted" and e.message == "Preempted by default/x on node n1"
                   for e in client.events)
        # while the victim terminates, x is not placed and does not preempt again
        await asyncio.sleep(0.05)
        assert not client.stored(PODS, "default", "x")["spec"].get("nodeName")
        assert len(client.calls_of("delete")) == 1
        client.remove(PODS, "default", "low")  # the kubelet finished it
        await until(lambda: client.stored(PODS, "default", "x")["spec"].get("nodeName") == "n1")
        assert not sched.cache.nominated
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_preempting_takes_the_room_of_lower_priority_nominated_pods_only():
    c = cluster(node("n1", cpu="1"))
    low, peer = PodInfo(pod("low", "1", 10)), PodInfo(pod("peer", "1", 100))
    c.nominate(low, "n1")
    c.nominate(peer, "n1")
    me = PodInfo(pod("me", "1", 100))
    assert names(preemption.lower_nominated(me, c, "n1")) == ["low"]
    assert {k: names(v) for k, v in preemption.nominated_for(me, c).items()} == {"n1": ["peer"]}
    c.nominate(peer, "n2")  # a new nomination replaces the old one
    assert set(c.nominated) == {"n1", "n2"} and c.nominated_node["default/peer"] == "n2"
