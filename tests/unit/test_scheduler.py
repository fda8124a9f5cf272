"""The scheduler's pure core (cache, filters, scores, sampling, messages), its queue, and
its shell against a fake client and informers."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.client.resources import NODES, PODS
from kybernetes.scheduler.cache import (
    ClusterCache,
    PodInfo,
    normalize_image,
    parse_int_quantity,
    parse_milli,
    pod_requests,
    scheduling_node_view,
    scheduling_view,
)
from kybernetes.scheduler.core import (
    WEIGHT_BALANCED,
    WEIGHT_LEAST_ALLOCATED,
    balanced_allocation_score,
    failure_message,
    image_locality_score,
    least_allocated_score,
    nodes_available_message,
    num_feasible_nodes_to_find,
    resource_scores,
    schedule_one,
    score_nodes,
    select_host,
)
from kybernetes.scheduler.queue import SchedulingQueue, backoff_duration
from kybernetes.scheduler.scheduler import (
    Scheduler,
    binding_body,
    node_changed_for_scheduling,
    responsible_for,
    scheduled_condition_patch,
)
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, until

GI = 1024 ** 3
MI = 1024 ** 2


def node(name: str, cpu: str = "4", mem: str = "8Gi", pods: str = "110", labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False, images: list | None = None) -> dict:
    return fakes.node(name, labels=labels, taints=taints, unschedulable=unschedulable, images=images,
                      allocatable={"cpu": cpu, "memory": mem, "pods": pods, "ephemeral-storage": "100Gi"})


def pod(name: str, cpu: str | None = None, mem: str | None = None, ns: str = "default", labels: dict | None = None,
        node_name: str = "", owner: str = "", **spec: Any) -> dict:
    """A pending pod of one container "c" (busybox) requesting `cpu` and `mem`."""
    requests = {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}
    return fakes.pod(name, ns, labels=labels, node=node_name, phase="Pending", requests=requests,
                     image=spec.pop("image", "busybox"), ports=spec.pop("ports", None),
                     created="2025-01-01T00:00:00Z",
                     owner={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner}
                     if owner else None, **spec)


def cluster(*nodes: dict, pods: tuple = ()) -> ClusterCache:
    c = ClusterCache()
    for n in nodes:
        c.set_node(n)
    for p in pods:
        c.add_pod(p)
    return c


def place(c: ClusterCache, p: dict, seed: int = 0) -> str | None:
    return schedule_one(p, c, random.Random(seed)).node


# -- quantities and requests ----------------------------------------------------------------

def test_quantities():
    assert parse_milli("100m") == 100
    assert parse_milli("2") == 2000
    assert parse_milli("0.5") == 500
    assert parse_milli(1) == 1000
    assert parse_int_quantity("1Gi") == GI
    assert parse_int_quantity("500Mi") == 500 * MI
    assert parse_int_quantity("1k") == 1000
    assert parse_int_quantity("1500m") == 2
    assert parse_int_quantity("junk") == 0


def test_pod_requests_sum_containers_and_take_init_max():
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}},
                       {"resources": {"requests": {"cpu": "200m"}, "limits": {"memory": "50Mi"}}}],
        "initContainers": [{"resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}],
        "overhead": {"cpu": "10m"},
    }
    req, nz_cpu, nz_mem = pod_requests(spec)
    assert req["cpu"] == 1010            # the init container dominates cpu, plus overhead
    assert req["memory"] == 150 * MI     # limits stand in for a missing request
    assert nz_cpu == 1010
    assert nz_mem == 150 * MI


def test_pod_requests_sidecars_run_beside_the_app():
    spec = {
        "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "300m"}}},
                           {"resources": {"requests": {"cpu": "500m"}}}],
        "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
    }
    req, _, _ = pod_requests(spec)
    # init phase: sidecar 300m + init 500m = 800m; running: 300m + 100m = 400m
    assert req["cpu"] == 800


def test_best_effort_pods_count_with_nonzero_defaults_for_scoring():
    req, nz_cpu, nz_mem = pod_requests({"containers": [{}, {}]})
    assert req == {}
    assert (nz_cpu, nz_mem) == (200, 400 * MI)


# -- the incremental cache ------------------------------------------------------------------

def test_cache_tracks_usage_on_pod_add_update_and_delete():
    c = cluster(node("n1"))
    c.add_pod(pod("a", "500m", "1Gi", node_name="n1", ports=[{"containerPort": 80, "hostPort": 8080}]))
    c.add_pod(pod("b", "250m", node_name="n1", owner="rs1"))
    ni = c.nodes["n1"]
    assert (ni.req_cpu, ni.req_mem, len(ni.pods)) == (750, GI, 2)
    assert ("TCP", 8080) in ni.ports and ni.owners == {"rs1": 1}
    c.add_pod(pod("a", "1", "1Gi", node_name="n1"))   # changed requests, no more ports
    assert ni.req_cpu == 1250 and ni.ports == {}
    c.remove_pod("default/b")
    assert (ni.req_cpu, len(ni.pods), ni.owners) == (1000, 1, {})
    finished = pod("a", "1", "1Gi", node_name="n1")
    finished["status"]["phase"] = "Succeeded"
    c.update_pod(None, finished)
    assert (ni.req_cpu, ni.req_mem, ni.pods) == (0, 0, {})


def test_cache_assume_then_confirm_or_forget():
    c = cluster(node("n1"), node("n2"))
    p = pod("web", "1")
    c.assume(PodInfo(p), "n1")
    assert c.is_assumed("default/web") and c.nodes["n1"].req_cpu == 1000
    c.forget("default/web")
    assert c.nodes["n1"].req_cpu == 0 and "default/web" not in c.pods
    c.assume(PodInfo(p), "n1")
    c.add_pod(pod("web", "1", node_name="n1"))        # the watch confirms the binding
    assert not c.is_assumed("default/web") and c.nodes["n1"].req_cpu == 1000
    c.forget("default/web")                            # a confirmed pod is not forgotten
    assert c.nodes["n1"].req_cpu == 1000


def test_cache_pods_before_their_node_and_node_removal():
    c = ClusterCache()
    c.add_pod(pod("early", "1", node_name="late"))
    assert c.order == [] and c.nodes["late"].req_cpu == 1000
    c.set_node(node("late"))
    assert c.order == ["late"] and c.nodes["late"].req_cpu == 1000
    c.set_node(node("other"))
    c.remove_node("late")
    assert c.order == ["other"] and c.nodes["other"].position == 0
    c.remove_pod("default/early")
    assert "late" not in c.nodes


def test_cache_update_without_changes_skips_reparse():
    c = cluster(node("n1"))
    p = pod("a", "1", node_name="n1")
    c.add_pod(p)
    info = c.pods["default/a"]
    running = {**p, "status": {"phase": "Running"}}
    c.update_pod(p, running)
    assert c.pods["default/a"] is info and info.pod is running
    relabelled = {**running, "metadata": {**running["metadata"], "labels": {"x": "y"}}}
    c.update_pod(running, relabelled)
    assert c.pods["default/a"] is not info and c.pods["default/a"].labels == {"x": "y"}


def test_cache_counts_images_and_owner_zones():
    img = [{"names": ["docker.io/library/nginx:1.25"], "sizeBytes": 100 * MI}]
    c = cluster(node("n1", images=img, labels={"topology.kubernetes.io/zone": "a"}), node("n2", images=img))
    assert c.image_nodes == {"docker.io/library/nginx:1.25": 2}
    c.add_pod(pod("p", node_name="n1", owner="rs"))
    assert c.owner_zone == {"rs": {"a": 1}}
    c.set_node(node("n1", labels={"topology.kubernetes.io/zone": "b"}))
    assert c.owner_zone == {"rs": {"b": 1}}
    assert c.image_nodes == {"docker.io/library/nginx:1.25": 1}
    c.remove_pod("default/p")
    assert c.owner_zone == {}


# -- filters --------------------------------------------------------------------------------

def test_resources_fit_and_usage_from_bound_pods():
    c = cluster(node("n1", cpu="2"), pods=(pod("a", "1500m", node_name="n1"),))
    r = schedule_one(pod("x", "1"), c, random.Random(0))
    assert r.node is None and r.reasons == {"Insufficient cpu": 1}
    assert place(c, pod("y", "500m")) == "n1"


def test_resources_fit_pod_count_memory_and_extended():
    c = cluster(node("n1", pods="1"), pods=(pod("a", node_name="n1"),))
    assert schedule_one(pod("x"), c, random.Random(0)).reasons == {"Too many pods": 1}
    c = cluster(node("n1", mem="1Gi"))
    assert schedule_one(pod("x", mem="2Gi"), c, random.Random(0)).reasons == {"Insufficient memory": 1}
    gpu = pod("g")
    gpu["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    assert schedule_one(gpu, c, random.Random(0)).reasons == {"Insufficient nvidia.com/gpu": 1}


def test_node_unschedulable_unless_tolerated():
    c = cluster(node("n1", unschedulable=True))
    assert schedule_one(pod("x"), c, random.Random(0)).reasons == {"node(s) were unschedulable": 1}
    tol = [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]
    assert place(c, pod("y", tolerations=tol)) == "n1"


def test_node_name_filter():
    c = cluster(node("n1"), node("n2"))
    r = schedule_one(pod("x", node_name="n2"), c, random.Random(0))
    assert r.node == "n2"


def test_taints_and_tolerations():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    c = cluster(node("n1", taints=[taint]), node("n2", taints=[{"key": "k", "effect": "NoExecute"}]))
    r = schedule_one(pod("x"), c, random.Random(0))
    assert r.reasons == {"node(s) had untolerated taint(s)": 2}
    eq = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]
    assert place(c, pod("y", tolerations=eq)) == "n1"
    wrong_value = [{"key": "dedicated", "operator": "Equal", "value": "cpu"}]
    assert place(c, pod("z", tolerations=wrong_value)) is None
    assert place(c, pod("w", tolerations=[{"operator": "Exists"}])) in ("n1", "n2")
    prefer = cluster(node("n1", taints=[{"key": "a", "effect": "PreferNoSchedule"}]))
    assert place(prefer, pod("v")) == "n1"     # PreferNoSchedule never filters


def test_node_selector_and_required_affinity_operators():
    c = cluster(node("n1", labels={"disk": "ssd", "gen": "3"}), node("n2", labels={"disk": "hdd", "gen": "5"}),
                node("n3"))
    assert place(c, pod("a", nodeSelector={"disk": "ssd"})) == "n1"

    def aff(*terms: dict) -> dict:
        return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}

    def expr(key: str, op: str, *values: str) -> dict:
        return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}

    assert place(c, pod("b", affinity=aff(expr("disk", "In", "hdd", "nvme")))) == "n2"
    assert place(c, pod("c", affinity=aff(expr("gen", "Gt", "4")))) == "n2"
    assert place(c, pod("d", affinity=aff(expr("gen", "Lt", "4")))) == "n1"
    assert place(c, pod("e", affinity=aff(expr("disk", "DoesNotExist")))) == "n3"
    assert place(c, pod("f", affinity=aff({"matchExpressions": [
        {"key": "disk", "operator": "Exists"}, {"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}))) == "n2"
    by_name = aff({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]})
    assert place(c, pod("g", affinity=by_name)) == "n3"
    # terms are ORed; nodeSelector and affinity must both hold
    assert place(c, pod("h", nodeSelector={"disk": "ssd"}, affinity=aff(expr("gen", "Gt", "4")))) is None
    r = schedule_one(pod("i", affinity=aff(expr("disk", "In", "tape"), {})), c, random.Random(0))
    assert r.reasons == {"node(s) didn't match Pod's node affinity/selector": 3}


def test_host_ports():
    c = cluster(node("n1"), pods=(pod("a", node_name="n1", ports=[{"containerPort": 80, "hostPort": 80}]),))
    same = pod("x", ports=[{"containerPort": 80, "hostPort": 80}])
    r = schedule_one(same, c, random.Random(0))
    assert r.reasons == {"node(s) didn't have free ports for the requested pod ports": 1}
    assert place(c, pod("udp", ports=[{"containerPort": 80, "hostPort": 80, "protocol": "UDP"}])) == "n1"
    assert place(c, pod("other", ports=[{"containerPort": 80, "hostPort": 81}])) == "n1"
    c2 = cluster(node("n1"), pods=(pod("a", node_name="n1", ports=[{"hostPort": 80, "hostIP": "10.0.0.1"}]),))
    assert place(c2, pod("ip2", ports=[{"hostPort": 80, "hostIP": "10.0.0.2"}])) == "n1"
    assert place(c2, pod("ip1", ports=[{"hostPort": 80, "hostIP": "10.0.0.1"}])) is None
    assert place(c2, pod("any", ports=[{"hostPort": 80}])) is None


def _zoned() -> ClusterCache:
    return cluster(node("a1", labels={"zone": "a"}), node("a2", labels={"zone": "a"}),
                   node("b1", labels={"zone": "b"}),
                   pods=(pod("db", labels={"app": "db"}, node_name="a1"),))


def test_required_pod_affinity():
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
    p = pod("web", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    c = _zoned()
    chosen = {place(c, p, seed) for seed in range(20)}
    assert chosen == {"a2"}       # zone a; a1 is busier with the db pod
    in_b = pod("web-b", nodeSelector={"zone": "b"},
               affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    assert schedule_one(in_b, c, random.Random(0)).reasons == {
        "node(s) didn't match Pod's node affinity/selector": 2, "node(s) didn't match pod affinity rules": 1}
    other_ns = {**term, "namespaces": ["prod"]}
    q = pod("web2", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [other_ns]}})
    r = schedule_one(q, c, random.Random(0))
    assert r.reasons == {"node(s) didn't match pod affinity rules": 3}
    # the first pod of a self-affine group may go anywhere
    self_aff = {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}
    first = pod("cache-0", labels={"app": "cache"},
                affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [self_aff]}})
    assert place(c, first) is not None


def test_required_pod_anti_affinity_both_ways():
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
    anti = pod("web", affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    c = _zoned()
    assert place(c, anti) == "b1"
    # an existing pod's anti-affinity keeps matching newcomers out of its zone
    c2 = _zoned()
    guard = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}
    c2.add_pod(pod("guard", node_name="b1",
                   affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [guard]}}))
    r = schedule_one(pod("w", labels={"app": "web"}, nodeSelector={"zone": "b"}), c2, random.Random(0))
    assert r.reasons == {"node(s) didn't match Pod's node affinity/selector": 2,
                         "node(s) didn't satisfy existing pods anti-affinity rules": 1}
    assert place(c2, pod("w2", labels={"app": "web"})) in ("a1", "a2")
    both = pod("web", labels={"app": "db"},
               affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    c3 = cluster(node("a1", labels={"zone": "a"}), pods=(pod("db", labels={"app": "db"}, node_name="a1"),))
    assert schedule_one(both, c3, random.Random(0)).reasons == {"node(s) didn't match pod anti-affinity rules": 1}


def test_topology_spread_do_not_schedule():
    c = cluster(node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}), node("x"),
                pods=(pod("p1", labels={"app": "w"}, node_name="a1"), pod("p2", labels={"app": "w"}, node_name="a1")))
    constraint = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                  "labelSelector": {"matchLabels": {"app": "w"}}}
    r = schedule_one(pod("p3", labels={"app": "w"}, topologySpreadConstraints=[constraint]), c, random.Random(0))
    assert r.node == "b1"
    c.add_pod(pod("p3", labels={"app": "w"}, node_name="b1"))
    r = schedule_one(pod("p4", labels={"app": "w"}, topologySpreadConstraints=[constraint]), c, random.Random(0))
    assert r.node == "b1"
    c.add_pod(pod("p4", labels={"app": "w"}, node_name="b1"))
    c.add_pod(pod("p5", labels={"app": "w"}, node_name="b1"))
    r = schedule_one(pod("p6", labels={"app": "w"}, topologySpreadConstraints=[constraint]), c, random.Random(0))
    assert r.node == "a1"
    tight = {**constraint, "maxSkew": 1}
    c.add_pod(pod("p6", labels={"app": "w"}, node_name="a1"))  # a=3, b=3
    ok = schedule_one(pod("p7", labels={"app": "w"}, topologySpreadConstraints=[tight]), c, random.Random(0))
    assert ok.node in ("a1", "b1")
    c.add_pod(pod("p7", labels={"app": "w"}, node_name="a1"))  # a=4, b=3
    r = schedule_one(pod("p8", labels={"app": "w"}, nodeSelector={"zone": "a"},
                         topologySpreadConstraints=[{**tight, "nodeAffinityPolicy": "Ignore"}]), c, random.Random(0))
    # zone a would hold 5 against zone b's 3
    assert r.reasons == {"node(s) didn't match Pod's node affinity/selector": 2,
                         "node(s) didn't match pod topology spread constraints": 1}
    r = schedule_one(pod("p9", labels={"app": "w"}, nodeName="x", topologySpreadConstraints=[tight]), c,
                     random.Random(0))
    assert r.reasons["node(s) didn't match pod topology spread constraints (missing required label)"] == 1


# -- scores ---------------------------------------------------------------------------------

def test_least_allocated_prefers_the_emptier_node():
    c = cluster(node("busy"), node("idle"), pods=(pod("a", "2", "4Gi", node_name="busy"),))
    assert all(place(c, pod("x", "100m", "100Mi"), seed) == "idle" for seed in range(5))
    p = PodInfo(pod("x", "1", "2Gi"))
    assert least_allocated_score(p, c.nodes["idle"]) == 75
    assert least_allocated_score(p, c.nodes["busy"]) == 25


def test_balanced_allocation():
    c = cluster(node("n1", cpu="4", mem="4Gi"))
    assert balanced_allocation_score(PodInfo(pod("x", "2", "2Gi")), c.nodes["n1"]) == 100
    assert balanced_allocation_score(PodInfo(pod("y", "4", "0")), c.nodes["n1"]) == 50


def test_preferred_node_affinity_and_prefer_no_schedule_taints():
    c = cluster(node("plain"), node("fast", labels={"disk": "ssd"}))
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}
    assert all(place(c, pod("x", affinity=pref), s) == "fast" for s in range(5))
    tainted = cluster(node("soft", taints=[{"key": "spot", "effect": "PreferNoSchedule"}]), node("clean"))
    assert all(place(tainted, pod("y"), s) == "clean" for s in range(5))
    tol = [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]
    assert {place(tainted, pod("z", tolerations=tol), s) for s in range(20)} == {"soft", "clean"}


def test_default_spread_of_a_replicaset_over_nodes_and_zones():
    nodes = [node(f"n{i}", cpu="64", mem="256Gi", labels={"topology.kubernetes.io/zone": f"z{i % 2}"})
             for i in range(4)]
    c = cluster(*nodes)
    # other pods make n0 slightly emptier than the rest is irrelevant: replicas spread
    rng = random.Random(3)
    for i in range(8):
        p = PodInfo(pod(f"r{i}", "10m", "10Mi", owner="rs1"))
        r = schedule_one(p, c, rng)
        c.assume(p, r.node)
    assert sorted(len(c.nodes[f"n{i}"].pods) for i in range(4)) == [2, 2, 2, 2]
    scores = score_nodes(PodInfo(pod("next", "10m", "10Mi", owner="rs1")), c, c.node_list())
    assert len(set(scores)) == 1


def test_default_spread_scores_in_one_pass_equal_the_per_constraint_scores():
    from kybernetes.scheduler import core

    rng = random.Random(11)
    nodes = [node(f"n{i}", cpu="64", mem="256Gi",
                  labels={"topology.kubernetes.io/zone": f"z{i % 3}"} if i % 7 else {}) for i in range(40)]
    c = cluster(*nodes)
    for i in range(120):
        p = PodInfo(pod(f"r{i}", "10m", "10Mi", owner=rng.choice(["rs1", "rs2"])))
        c.assume(p, f"n{rng.randrange(40)}")
    for owner in ("rs1", "rs2", "rs3"):
        info = PodInfo(pod("next", "10m", "10Mi", owner=owner))
        soft = tuple(x for x in info.spread if not x.hard)
        state = core.spread_state(info, c, soft)
        feasible = c.node_list()[rng.randrange(5):]
        fused = core.spread_scores(info, c, feasible)
        assert fused == core._spread_scores_by_constraint(info, soft, state, feasible)
        assert len(set(fused)) > 1 or owner == "rs3"


def test_spread_score_prefers_the_emptier_domain():
    c = cluster(node("a", cpu="64", mem="64Gi"), node("b", cpu="64", mem="64Gi"),
                pods=(pod("w1", "1m", labels={"app": "w"}, node_name="a"),
                      pod("w2", "1m", labels={"app": "w"}, node_name="a")))
    soft = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": {"app": "w"}}}]
    info = PodInfo(pod("w3", "1m", labels={"app": "w"}, topologySpreadConstraints=soft))
    sa, sb = score_nodes(info, c, [c.nodes["a"], c.nodes["b"]])
    assert sb > sa


def test_image_locality():
    big = [{"names": ["docker.io/library/nginx:1.25", "nginx@sha256:abc"], "sizeBytes": 500 * MI}]
    c = cluster(node("with", images=big), node("without"))
    p = PodInfo(pod("x", image="nginx:1.25"))
    assert normalize_image("nginx:1.25") == "docker.io/library/nginx:1.25"
    assert normalize_image("quay.io/a/b") == "quay.io/a/b:latest"
    with_score = image_locality_score(p, c.nodes["with"], c.image_nodes, 2)
    assert with_score == 100 * (250 * MI - 23 * MI) // (1000 * MI - 23 * MI)
    assert image_locality_score(p, c.nodes["without"], c.image_nodes, 2) == 0
    assert all(place(c, pod("y", image="nginx:1.25"), s) == "with" for s in range(5))


# -- messages -------------------------------------------------------------------------------

def test_failure_message_in_kubernetes_words():
    control = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    c = cluster(node("cp", taints=[control]), node("w1", cpu="1"), node("w2", cpu="1"),
                pods=(pod("a", "900m", node_name="w1"), pod("b", "900m", node_name="w2")))
    r = schedule_one(pod("x", "500m"), c, random.Random(0))
    assert r.node is None
    assert r.reasons == {"Insufficient cpu": 2, "node(s) had untolerated taint(s)": 1}
    assert r.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu. "
        "no new claims to deallocate, preemption: 0/3 nodes are available: "
        "1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.")


def test_failure_message_when_even_an_empty_node_is_too_small():
    c = cluster(node("n1", cpu="1"), node("n2", cpu="1"), node("n3", cpu="1", labels={"x": "y"}))
    r = schedule_one(pod("x", "2", nodeSelector={"x": "z"}), c, random.Random(0))
    assert r.message == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    r = schedule_one(pod("y", "2"), c, random.Random(0))
    assert r.message.endswith("preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")


def test_failure_message_with_lower_priority_pods():
    c = cluster(node("n1", cpu="1"), pods=(pod("low", "500m", node_name="n1"),))
    # evicting the low-priority pod would not free enough
    r = schedule_one(pod("x", "2", priority=100), c, random.Random(0))
    assert r.message.endswith("preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    c.set_node(node("n1", cpu="1"))
    r = schedule_one(pod("y", "800m", priority=100, preemptionPolicy="Never"), c, random.Random(0))
    assert r.message == ("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, "
                         "preemption: not eligible due to preemptionPolicy=Never.")
    c.add_pod(pod("high", "400m", node_name="n1", priority=200))
    # only "low" could be evicted, and 800m still would not fit beside "high"
    r = schedule_one(pod("z", "800m", priority=100), c, random.Random(0))
    assert r.message == ("0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate, "
                         "preemption: 0/1 nodes are available: 1 Insufficient cpu.")
    # evicting would make room: a preemption candidate, so no preemption clause
    r = schedule_one(pod("v", "500m", priority=100), c, random.Random(0))
    assert r.message == "0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate."


def test_message_helpers_and_no_nodes():
    assert nodes_available_message(5, {"b": 1, "a": 4}) == "0/5 nodes are available: 1 b, 4 a."
    assert failure_message(1, {"Insufficient cpu": 1}, None) == \
        "0/1 nodes are available: 1 Insufficient cpu. no new claims to deallocate."
    r = schedule_one(pod("x"), ClusterCache(), random.Random(0))
    assert r.node is None and r.message == "no nodes available to schedule pods"


# -- sampling -------------------------------------------------------------------------------

def test_num_feasible_nodes_to_find():
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(100) == 100
    assert num_feasible_nodes_to_find(1000) == 420
    assert num_feasible_nodes_to_find(5000) == 500
    assert num_feasible_nodes_to_find(6000) == 300          # 50 - 48 < 5: 5% of 6000
    assert num_feasible_nodes_to_find(300) == 144
    assert num_feasible_nodes_to_find(1000, percentage=100) == 1000
    assert num_feasible_nodes_to_find(150, percentage=10) == 100


def test_sampling_rotates_the_start_index():
    c = cluster(*[node(f"n{i}") for i in range(1000)])
    r = schedule_one(pod("a"), c, random.Random(0))
    assert (r.evaluated, r.feasible) == (420, 420) and c.next_start == 420
    chosen_first = r.node
    r = schedule_one(pod("b"), c, random.Random(0))
    assert c.next_start == 840 and r.node != chosen_first
    schedule_one(pod("c"), c, random.Random(0))
    assert c.next_start == 260
    # a pod that fits nowhere makes every node be looked at
    r = schedule_one(pod("huge", "100"), c, random.Random(0))
    assert r.evaluated == 1000 and r.reasons == {"Insufficient cpu": 1000}


def test_throughput_with_1000_nodes():
    nodes = [node(f"node-{i}", cpu="32", mem="128Gi", labels={"topology.kubernetes.io/zone": f"z{i % 3}"})
             for i in range(1000)]
    c = cluster(*nodes)
    pods = [pod(f"web-{i}", "100m", "64Mi", labels={"app": "web"}, owner=f"rs{i % 5}") for i in range(600)]
    rng = random.Random(1)
    start = time.perf_counter()
    for p in pods:
        info = PodInfo(p)
        r = schedule_one(info, c, rng)
        c.assume(info, r.node)
    rate = len(pods) / (time.perf_counter() - start)
    print(f"schedule_one with 1000 nodes: {rate:.0f} pods/s")
    assert rate > 300
    # replicas of one ReplicaSet never share a node while empty nodes remain
    assert max(max(n.owners.values(), default=0) for n in c.node_list()) == 1


# -- the queue ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_duration():
    assert [backoff_duration(n) for n in range(6)] == [0, 1, 2, 4, 8, 10]


def test_queue_orders_by_priority_then_age():
    q = SchedulingQueue(FakeClock())
    old = pod("old")
    young = pod("young")
    young["metadata"]["creationTimestamp"] = "2025-02-01T00:00:00Z"
    vip = pod("vip", priority=1000)
    vip["metadata"]["creationTimestamp"] = "2025-03-01T00:00:00Z"
    for p in (young, old, vip):
        q.add(p)
    order = [q.pop_nowait()[0]["metadata"]["name"] for _ in range(3)]
    assert order == ["vip", "old", "young"]
    assert q.pop_nowait() is None


def test_queue_unschedulable_waits_for_a_cluster_change_then_backoff():
    clock = FakeClock()
    q = SchedulingQueue(clock)
    p = pod("p")
    q.add(p)
    got, attempts = q.pop_nowait()
    assert attempts == 0
    q.unschedulable(got, q.cycle)
    assert q.where["default/p"] == "unschedulable" and q.pop_nowait() is None
    clock.now += 0.5
    q.move_all()
    assert q.where["default/p"] == "backoff"       # still inside its 1 s backoff
    q.flush()
    assert q.pop_nowait() is None
    clock.now += 0.6
    q.flush()
    got, attempts = q.pop_nowait()
    assert attempts == 1
    q.unschedulable(got, q.cycle)
    clock.now += 59
    q.flush()
    assert q.where["default/p"] == "unschedulable"
    clock.now += 1.5
    q.flush()
    assert q.where["default/p"] == "active"        # the 60 s unschedulable timeout


def test_queue_affinity_moves_and_deletes():
    q = SchedulingQueue(FakeClock())
    plain = pod("plain")
    term = {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
    social = pod("social", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    for p in (plain, social):
        q.add(p)
        q.unschedulable(q.pop_nowait()[0], q.cycle)
    q.cycle += 1
    assert q.move_all(only_pod_affinity=True) == 1
    assert q.where == {"default/plain": "unschedulable", "default/social": "backoff"}
    q.delete("default/plain")
    q.unschedulable(plain)      # a deleted pod stays gone
    assert "default/plain" not in q.where


def test_queue_update_of_waiting_pod_reconsiders_it():
    clock = FakeClock()
    q = SchedulingQueue(clock)
    q.add(pod("p"))
    q.unschedulable(q.pop_nowait()[0], q.cycle)
    clock.now += 5
    status_only = pod("p")
    status_only["status"]["conditions"] = [{"type": "PodScheduled", "status": "False"}]
    q.add(status_only)
    assert q.where["default/p"] == "unschedulable" and q.pods["default/p"] is status_only
    q.add(pod("p", tolerations=[{"operator": "Exists"}]))
    got, _ = q.pop_nowait()
    assert got["spec"]["tolerations"]


# -- the shell ------------------------------------------------------------------------------

def test_shell_helpers():
    assert responsible_for(pod("a"), "default-scheduler")
    assert not responsible_for(pod("a", node_name="n1"), "default-scheduler")
    assert not responsible_for(pod("a", schedulerName="other"), "default-scheduler")
    assert responsible_for(pod("a", schedulerName="other"), "other")
    assert not responsible_for(pod("a", schedulingGates=[{"name": "g"}]), "default-scheduler")
    gone = pod("a")
    gone["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not responsible_for(gone, "default-scheduler")
    body = binding_body(pod("web-1"), "node-3")
    assert body == {"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": "web-1", "namespace": "default", "uid": "uid-web-1"},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": "node-3"}}
    p = pod("a")
    patch = scheduled_condition_patch(p, "msg", "T1")
    assert patch == {"status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                                "message": "msg", "lastProbeTime": None,
                                                "lastTransitionTime": "T1"}]}}
    p["status"]["conditions"] = patch["status"]["conditions"]
    assert scheduled_condition_patch(p, "msg", "T2") is None
    again = scheduled_condition_patch(p, "other", "T2")
    assert again["status"]["conditions"][0]["lastTransitionTime"] == "T1"
    n1 = node("n1")
    beat = {**n1, "status": {**n1["status"], "conditions": [{"type": "Ready"}]}}
    assert not node_changed_for_scheduling(n1, beat)
    assert node_changed_for_scheduling(n1, node("n1", cpu="8"))
    assert node_changed_for_scheduling(n1, node("n1", taints=[{"key": "k", "effect": "NoSchedule"}]))


async def test_scheduler_binds_pods_and_reports_failures():
    informers = FakeInformers()
    client = FakeClient(informers)  # a binding reaches the pod informer, as the watch would bring it
    client.react("create_subresource", "pods", lambda _call: asyncio.sleep(0.001))
    client.fail("create_subresource", "pods", ApiError(500, "InternalError", "etcd is sad"), name="web-2")
    sched = Scheduler(client, informers, rng=random.Random(0), max_inflight=4)
    sched.queue.initial_backoff = 0.02   # keep the test quick; the real backoff is 1 s
    sched.flush_interval = 0.01
    client.add(NODES, node("n1", cpu="1"), node("n2", cpu="1"))
    for i in range(3):
        client.add(PODS, pod(f"web-{i}", "400m"))
    client.add(PODS, pod("huge", "4"), pod("other", schedulerName="someone-else"))

    def bindings() -> dict[str, str]:
        return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in client.all(PODS) if p["spec"].get("nodeName")}

    def events() -> list[tuple[str, str, str]]:
        assert all(e.kind == "Pod" and e.component == "default-scheduler" for e in client.events)
        return [(e.type, e.reason, e.message) for e in client.events]

    task = asyncio.create_task(sched.run())
    try:
        await until(lambda: len(bindings()) == 3 and client.calls_of("patch"))
        assert set(bindings().values()) == {"n1", "n2"}
        assert ("Normal", "Scheduled", "Successfully assigned default/web-0 to " + bindings()["web-0"]) in events()
        assert ("Warning", "FailedScheduling", "Binding rejected: etcd is sad") in events()
        patch = client.calls_of("patch")[0]
        assert (patch.name, patch.options["patch_type"], patch.subresource) == ("huge", "strategic", "status")
        cond = patch.body["status"]["conditions"][0]
        assert cond["reason"] == "Unschedulable"
        assert cond["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
        assert sched.cache.nodes["n1"].req_cpu + sched.cache.nodes["n2"].req_cpu == 1200
        assert not sched.cache.assumed
        assert "default/other" not in sched.queue.where
        # a bigger node arrives: the unschedulable pod is retried and placed
        client.add(NODES, node("n3", cpu="8"))
        await until(lambda: bindings().get("huge") == "n3")
        # a pod deleted while waiting is dropped from the queue
        client.add(PODS, pod("late", "100"))
        await until(lambda: sched.queue.where.get("default/late") == "unschedulable")
        client.remove(PODS, "default", "late")
        assert "default/late" not in sched.queue.where
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


# -- scores in one pass, tie breaking, the fast filter path, informer views ------------------

def test_resource_scores_equal_the_two_plugins_weighted():
    nodes = [node(f"n{i}", cpu=str(1 + i), mem=f"{2 + 3 * i}Gi") for i in range(6)]
    c = cluster(*nodes, pods=(pod("busy", "500m", "1Gi", node_name="n2"), pod("big", "3", "9Gi", node_name="n5")))
    for p in (PodInfo(pod("a", "250m", "512Mi")), PodInfo(pod("b")), PodInfo(pod("c", "2", "30Gi"))):
        infos = c.node_list()
        want = [least_allocated_score(p, ni) * WEIGHT_LEAST_ALLOCATED
                + balanced_allocation_score(p, ni) * WEIGHT_BALANCED for ni in infos]
        assert resource_scores(p, infos) == want


def test_select_host_takes_the_best_and_breaks_ties_uniformly():
    names = [node(f"n{i}") for i in range(4)]
    infos = cluster(*names).node_list()
    assert select_host(infos, [1, 7, 3, 2], random.Random(0)).name == "n1"
    rng = random.Random(7)
    picks = [select_host(infos, [5, 9, 9, 9], rng).name for _ in range(3000)]
    assert set(picks) == {"n1", "n2", "n3"}
    assert all(900 < picks.count(n) < 1100 for n in ("n1", "n2", "n3"))


def test_fast_filter_path_still_reports_every_reason():
    c = cluster(node("small", cpu="1"), node("tainted", taints=[{"key": "k", "effect": "NoSchedule"}]),
                node("cordoned", unschedulable=True), node("ok"))
    r = schedule_one(pod("p", "2"), c, random.Random(0))
    assert r.node == "ok"
    r = schedule_one(pod("q", "100"), c, random.Random(0))
    assert r.node is None
    assert r.reasons == {"Insufficient cpu": 2, "node(s) had untolerated taint(s)": 1,
                         "node(s) were unschedulable": 1}


def test_scheduling_view_keeps_what_the_scheduler_reads():
    full = pod("v", "100m", "64Mi", labels={"app": "v"}, owner="rs1",
               tolerations=[{"key": "k", "operator": "Exists"}], nodeSelector={"disk": "ssd"},
               ports=[{"containerPort": 80, "hostPort": 8080}])
    full["spec"]["containers"][0].update({"env": [{"name": "A", "value": "1"}], "command": ["sleep", "1"]})
    full["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    full["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    view = scheduling_view(orjson.loads(orjson.dumps(full)))
    assert view["spec"]["containers"] == [{"name": "c", "image": "busybox",
                                           "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                           "ports": [{"containerPort": 80, "hostPort": 8080}]}]
    assert "volumes" not in view["spec"]
    assert view["status"]["conditions"] == full["status"]["conditions"]
    a, b = PodInfo(full), PodInfo(view)
    for slot in ("key", "uid", "labels", "cpu", "mem", "host_ports", "tolerations", "node_affinity", "owner_uid",
                 "images", "spread"):
        assert getattr(a, slot) == getattr(b, slot), slot
    bound = dict(full, spec={**full["spec"], "nodeName": "n1"},
                 status={"phase": "Running", "podIP": "10.0.0.5", "conditions": [{"type": "Ready"}],
                         "containerStatuses": [{"name": "c", "ready": True}]})
    assert scheduling_view(orjson.loads(orjson.dumps(bound)))["status"] == {"phase": "Running"}


def test_scheduling_node_view_does_not_change_decisions_or_hide_changes():
    full = node("n1", labels={"zone": "a"}, taints=[{"key": "k", "effect": "PreferNoSchedule"}],
                images=[{"names": ["busybox"], "sizeBytes": 100 << 20}])
    full["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]
    full["status"]["nodeInfo"] = {"kubeletVersion": "v1.37.0"}
    view = scheduling_node_view(orjson.loads(orjson.dumps(full)))
    assert "conditions" not in view["status"] and "nodeInfo" not in view["status"]
    a, b = cluster(full), cluster(view)
    ni, nv = a.nodes["n1"], b.nodes["n1"]
    for slot in ("labels", "prefer_taints", "alloc_cpu", "alloc_mem", "alloc_pods", "images"):
        assert getattr(ni, slot) == getattr(nv, slot), slot
    relabelled = orjson.loads(orjson.dumps(full))
    relabelled["metadata"]["labels"]["zone"] = "b"
    assert node_changed_for_scheduling(view, scheduling_node_view(relabelled))


def test_confirmed_binding_keeps_the_assumed_pod_and_its_usage():
    c = cluster(node("n1", cpu="2"))
    p = pod("a", "500m")
    info = c.assume(PodInfo(p), "n1")
    bound = {**p, "spec": {**p["spec"], "nodeName": "n1"}}
    c.confirm(bound)
    assert c.pods["default/a"] is info and info.pod is bound and not c.is_assumed("default/a")
    assert c.nodes["n1"].req_cpu == 500
    # bound elsewhere, or changed on the way: parsed again and counted where it is
    c.assume(PodInfo(pod("b", "300m")), "n1")
    c.set_node(node("n2", cpu="2"))
    c.confirm(pod("b", "300m", node_name="n2"))
    assert c.nodes["n1"].req_cpu == 500 and c.nodes["n2"].req_cpu == 300
    c.assume(PodInfo(pod("d", "300m")), "n1")
    c.confirm(pod("d", "400m", node_name="n1"))
    assert c.nodes["n1"].req_cpu == 900 and c.pods["default/d"].cpu == 400


def test_cache_counts_nodes_with_prefer_no_schedule_taints():
    soft = [{"key": "k", "effect": "PreferNoSchedule"}]
    c = cluster(node("a", taints=soft), node("b"))
    assert c.prefer_tainted == 1
    c.set_node(node("b", taints=soft))
    c.set_node(node("a"))
    c.set_node(node("b", taints=soft))
    assert c.prefer_tainted == 1
    c.remove_node("b")
    assert c.prefer_tainted == 0
    c.set_node(node("b", taints=soft))
    assert c.prefer_tainted == 1
    # the taint still steers pods away from b
    assert place(c, pod("x")) == "a"
