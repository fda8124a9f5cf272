"""A pod's scheduling fields, pure decisions: the API server's rules for schedulingGates,
topologySpreadConstraints and matchLabelKeys (kybernetes/api/podscheduling.py and the
Pod strategy), and the scheduler plugins behind them: InterPodAffinity scoring with
preferred terms, PodTopologySpread, overhead in NodeResourcesFit, nodeName."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import UpdateStep
from kybernetes.api.kinds.pod import PodBinding, PodStrategy, pod_summary
from kybernetes.api.podscheduling import GATED_MESSAGE, merge_match_label_keys
from kybernetes.api.registry import Registry
from kybernetes.scheduler import core
from kybernetes.scheduler.cache import ClusterCache, PodInfo
from kybernetes.scheduler.core import schedule_one, score_nodes
from kybernetes.scheduler.scheduler import responsible_for
from kybernetes.testing import fakes

PODS = Registry().get("", "v1", "pods")
ZONE = "topology.kubernetes.io/zone"


# -- API server ------------------------------------------------------------------------------

def created(**spec) -> dict:
    """A pod as the server stores it on create: defaulted, server-set fields, validated."""
    s = PodStrategy()
    pod = {"metadata": {"name": "p", "namespace": "default", "labels": spec.pop("labels", {"app": "w"})},
           "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    s.default(PODS, pod)
    s.prepare_for_create(PODS, pod)
    s.prepare_write(PODS, pod, None)
    return pod


def errors(pod: dict) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in PodStrategy().validate(PODS, pod)]


def update_errors(old: dict, new: dict) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in PodStrategy().validate_update(PODS, new, old)]


def test_a_gated_pod_is_created_with_the_scheduling_gated_condition():
    pod = created(schedulingGates=[{"name": "example.com/quota"}])
    (cond,) = pod["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("PodScheduled", "False", "SchedulingGated", GATED_MESSAGE)
    assert cond["lastTransitionTime"]
    assert errors(pod) == []
    assert pod_summary(pod, datetime(2026, 1, 1, tzinfo=UTC))[1] == "SchedulingGated"
    assert "conditions" not in created()["status"]


def test_gates_may_only_be_removed():
    old = created(schedulingGates=[{"name": "a"}, {"name": "b"}])
    grown = copy.deepcopy(old)
    grown["spec"]["schedulingGates"].append({"name": "c"})
    assert update_errors(old, grown) == [
        "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'c'"]
    fewer = copy.deepcopy(old)
    fewer["spec"]["schedulingGates"] = [{"name": "b"}]
    assert update_errors(old, fewer) == []
    none = copy.deepcopy(old)
    del none["spec"]["schedulingGates"]
    assert update_errors(old, none) == []
    ungated = created()
    added = copy.deepcopy(ungated)
    added["spec"]["schedulingGates"] = [{"name": "late"}]
    assert update_errors(ungated, added) == [
        "spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'late'"]


def test_a_gated_pods_node_selector_may_only_grow():
    old = created(schedulingGates=[{"name": "a"}], nodeSelector={"disk": "ssd"})
    grown = copy.deepcopy(old)
    grown["spec"]["nodeSelector"]["zone"] = "z1"
    assert update_errors(old, grown) == []
    changed = copy.deepcopy(old)
    changed["spec"]["nodeSelector"] = {"disk": "hdd"}
    assert update_errors(old, changed) == [
        'spec.nodeSelector: Invalid value: {"disk":"hdd"}: only additions to spec.nodeSelector are allowed '
        "(no mutations or deletions)"]
    # Once released, the nodeSelector is as immutable as the rest of the spec.
    released = created(nodeSelector={"disk": "ssd"})
    grown = copy.deepcopy(released)
    grown["spec"]["nodeSelector"]["zone"] = "z1"
    (msg,) = update_errors(released, grown)
    assert msg.startswith("spec: Forbidden: pod updates may not change fields") and "spec.nodeSelector.zone" in msg


def _required_affinity(*terms: list) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(t)} for t in terms]}}}


def test_a_gated_pods_required_node_affinity_may_only_narrow():
    disk = {"key": "disk", "operator": "In", "values": ["ssd"]}
    zone = {"key": "zone", "operator": "In", "values": ["a"]}
    path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
    unconstrained = created(schedulingGates=[{"name": "a"}])
    anything = copy.deepcopy(unconstrained)
    anything["spec"]["affinity"] = _required_affinity([disk])
    assert update_errors(unconstrained, anything) == []
    old = created(schedulingGates=[{"name": "a"}], affinity=_required_affinity([disk]))
    narrowed = copy.deepcopy(old)
    narrowed["spec"]["affinity"] = _required_affinity([disk, zone])
    assert update_errors(old, narrowed) == []
    swapped = copy.deepcopy(old)
    swapped["spec"]["affinity"] = _required_affinity([zone])
    (msg,) = update_errors(old, swapped)
    assert msg.startswith(f"{path}[0]: Invalid value: ") and msg.endswith(
        "only additions are allowed (no mutations or deletions)")
    more_terms = copy.deepcopy(old)
    more_terms["spec"]["affinity"] = _required_affinity([disk], [zone])
    (msg,) = update_errors(old, more_terms)
    assert msg.startswith(f"{path}: Invalid value: ") and msg.endswith(
        "no additions/deletions to non-empty NodeSelectorTerms list are allowed")
    released = created(affinity=_required_affinity([disk]))
    narrowed = copy.deepcopy(released)
    narrowed["spec"]["affinity"] = _required_affinity([disk, zone])
    (msg,) = update_errors(released, narrowed)
    assert msg.startswith("spec: Forbidden: pod updates may not change fields")


def test_gate_names_and_node_name_with_gates_are_validated():
    pod = created(schedulingGates=[{"name": "ok"}, {"name": "ok"}, {"name": "-bad-"}], nodeName="n1")
    msgs = errors(pod)
    assert 'spec.schedulingGates[1]: Duplicate value: "ok"' in msgs
    assert any(m.startswith('spec.schedulingGates[2]: Invalid value: "-bad-": name part must consist of')
               for m in msgs)
    assert "spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared" in msgs


def test_binding_a_gated_pod_conflicts():
    pod = created(schedulingGates=[{"name": "a"}])
    with pytest.raises(ApiError) as e:
        PodBinding().plan("p", {"target": {"name": "n1"}}, lambda: pod, "2026-01-01T00:00:00Z")
    assert e.value.code == 409
    assert "pod p has non-empty .spec.schedulingGates" in e.value.message
    step = PodBinding().plan("p", {"target": {"name": "n1"}}, created, "2026-01-01T00:00:00Z")
    assert isinstance(step, UpdateStep)


def test_topology_spread_constraints_are_validated_as_upstream():
    good = {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "w"}}}
    assert errors(created(topologySpreadConstraints=[good])) == []
    bad = [{"maxSkew": 0, "topologyKey": "", "whenUnsatisfiable": "Maybe", "nodeAffinityPolicy": "Sometimes",
            "matchLabelKeys": ["app"]},
           {**good, "minDomains": 0}, {**good, "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2}, good]
    msgs = errors(created(topologySpreadConstraints=bad))
    assert msgs == [
        "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
        "spec.topologySpreadConstraints[0].topologyKey: Required value: can not be empty",
        'spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: "Maybe": supported values: '
        '"DoNotSchedule", "ScheduleAnyway"',
        'spec.topologySpreadConstraints[0].nodeAffinityPolicy: Unsupported value: "Sometimes": supported values: '
        '"Honor", "Ignore"',
        "spec.topologySpreadConstraints[0].matchLabelKeys: Forbidden: must not be specified when labelSelector "
        "is not set",
        'spec.topologySpreadConstraints[1].{topologyKey, whenUnsatisfiable}: Duplicate value: '
        f'"{{{ZONE}, DoNotSchedule}}"',
        "spec.topologySpreadConstraints[1].minDomains: Invalid value: 0: must be greater than zero",
        "spec.topologySpreadConstraints[2].minDomains: Invalid value: 2: can only use minDomains if "
        "whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
    ]


def test_match_label_keys_are_merged_into_the_selectors_at_create():
    spread = {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
              "labelSelector": {"matchLabels": {"app": "w"}}, "matchLabelKeys": ["pod-template-hash", "missing"]}
    term = {"labelSelector": {"matchLabels": {"app": "w"}}, "topologyKey": ZONE,
            "matchLabelKeys": ["pod-template-hash"], "mismatchLabelKeys": ["tenant"]}
    pod = created(labels={"app": "w", "pod-template-hash": "abc", "tenant": "t1"},
                  topologySpreadConstraints=[spread],
                  affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                      {"weight": 10, "podAffinityTerm": term}]}})
    assert pod["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchExpressions"] == [
        {"key": "pod-template-hash", "operator": "In", "values": ["abc"]}]
    merged = pod["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert merged["podAffinityTerm"]["labelSelector"]["matchExpressions"] == [
        {"key": "pod-template-hash", "operator": "In", "values": ["abc"]},
        {"key": "tenant", "operator": "NotIn", "values": ["t1"]}]
    assert errors(pod) == []
    # A constraint without a selector selects nothing, merged or not.
    bare = {"metadata": {"labels": {"a": "b"}},
            "spec": {"topologySpreadConstraints": [{"topologyKey": ZONE, "matchLabelKeys": ["a"]}]}}
    merge_match_label_keys(bare)
    assert "labelSelector" not in bare["spec"]["topologySpreadConstraints"][0]


# -- scheduler -------------------------------------------------------------------------------

def node(name: str, zone: str = "", cpu: str = "4", mem: str = "8Gi", **labels: str) -> dict:
    if zone:
        labels[ZONE] = zone
    labels.setdefault("kubernetes.io/hostname", name)
    return fakes.node(name, labels=labels,
                      allocatable={"cpu": cpu, "memory": mem, "pods": "110", "ephemeral-storage": "100Gi"})


def pod(name: str, labels: dict | None = None, node_name: str = "", cpu: str = "100m", **spec) -> dict:
    return fakes.pod(name, "default", labels=labels or {}, node=node_name, phase="Pending",
                     requests={"cpu": cpu, "memory": "100Mi"}, image="busybox", **spec)


def cluster(*nodes: dict, pods: tuple = ()) -> ClusterCache:
    c = ClusterCache()
    for n in nodes:
        c.set_node(n)
    for p in pods:
        c.add_pod(p)
    return c


def term(app: str, key: str = ZONE) -> dict:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}


def preferred(kind: str, *weighted: tuple[int, dict]) -> dict:
    return {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": w, "podAffinityTerm": t} for w, t in weighted]}}


def three_zones() -> ClusterCache:
    return cluster(node("a1", "a"), node("b1", "b"), node("c1", "c"),
                   pods=(pod("db", {"app": "db"}, "a1"), pod("cache", {"app": "cache"}, "b1")))


def test_preferred_pod_affinity_scores_the_zone_of_matching_pods():
    c = three_zones()
    p = PodInfo(pod("web", {"app": "web"}, affinity=preferred("podAffinity", (80, term("db")), (20, term("cache")))))
    nodes = c.node_list()
    assert core.inter_pod_affinity_scores(p, c, nodes) == [100, 25, 0]
    assert all(schedule_one(p, c, random.Random(s)).node == "a1" for s in range(10))


def test_preferred_anti_affinity_subtracts_and_scores_are_normalized_min_max():
    c = three_zones()
    p = PodInfo(pod("web", {"app": "web"},
                    affinity=preferred("podAntiAffinity", (50, term("db")), (100, term("cache")))))
    # raw a=-50, b=-100, c=0: min-max normalized
    assert core.inter_pod_affinity_scores(p, c, c.node_list()) == [50, 0, 100]
    assert all(schedule_one(p, c, random.Random(s)).node == "c1" for s in range(10))


def test_existing_pods_terms_score_the_incoming_pod():
    # The db pods want web pods near them (preferred) and the cache pod keeps them away
    # (preferred anti-affinity); a required affinity term counts with weight 1.
    c = cluster(node("a1", "a"), node("b1", "b"), node("c1", "c"))
    c.add_pod(pod("db", {"app": "db"}, "a1", affinity=preferred("podAffinity", (30, term("web")))))
    c.add_pod(pod("cache", {"app": "cache"}, "b1", affinity=preferred("podAntiAffinity", (60, term("web")))))
    c.add_pod(pod("tail", {"app": "tail"}, "c1",
                  affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}))
    web = PodInfo(pod("web", {"app": "web"}))
    assert core.inter_pod_affinity_topology(web, c) == {ZONE: {"a": 30, "b": -60, "c": 1}}
    assert core.inter_pod_affinity_scores(web, c, c.node_list()) == [100, 0, 67]
    assert all(schedule_one(web, c, random.Random(s)).node == "a1" for s in range(10))
    # Pods the terms do not select are not affected; nor pods of another namespace.
    other = PodInfo(pod("other", {"app": "other"}))
    assert core.inter_pod_affinity_scores(other, c, c.node_list()) is None


def test_no_terms_anywhere_costs_nothing():
    c = three_zones()
    assert not c.affinity_pods
    assert core.inter_pod_affinity_scores(PodInfo(pod("x", {"app": "x"})), c, c.node_list()) is None
    # The count follows pods with terms in and out of the cache.
    c.add_pod(pod("t", {"app": "t"}, "a1", affinity=preferred("podAffinity", (1, term("x")))))
    assert set(c.affinity_pods) == {"default/t"}
    c.remove_pod("default/t")
    assert not c.affinity_pods
    # Required anti-affinity only filters: it is not a reason to score.
    c.add_pod(pod("anti", {"app": "anti"}, "a1",
                  affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("x")]}}))
    assert not c.affinity_pods and c.anti_pods


def test_affinity_score_weight_is_two_in_the_total():
    c = cluster(node("a1", "a"), node("b1", "b"), pods=(pod("db", {"app": "db"}, "a1"),))
    p = PodInfo(pod("web", {"app": "web"}, affinity=preferred("podAffinity", (1, term("db")))))
    plain = PodInfo(pod("web", {"app": "web"}))
    with_aff = score_nodes(p, c, c.node_list())
    without = score_nodes(plain, c, c.node_list())
    assert [w - o for w, o in zip(with_aff, without, strict=True)] == [200, 0]


def spread(key: str = ZONE, skew: int = 1, when: str = "DoNotSchedule", **extra) -> dict:
    return {"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "w"}}, **extra}


def test_spread_min_domains_counts_missing_domains_as_empty():
    c = cluster(node("a1", "a"), node("b1", "b"),
                pods=(pod("w1", {"app": "w"}, "a1"), pod("w2", {"app": "w"}, "b1")))
    # Two domains with one pod each: a third pod fits either...
    assert schedule_one(pod("w3", {"app": "w"}, topologySpreadConstraints=[spread()]), c,
                        random.Random(0)).node in ("a1", "b1")
    # ...but wanting three domains, the global minimum is 0 and each domain is already at the skew.
    r = schedule_one(pod("w3", {"app": "w"}, topologySpreadConstraints=[spread(minDomains=3)]), c, random.Random(0))
    assert r.node is None
    assert r.message.startswith("0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints.")


def test_spread_node_taints_policy_honor_leaves_tainted_domains_out():
    tainted = node("c1", "c")
    tainted["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]
    c = cluster(node("a1", "a"), node("b1", "b"), tainted,
                pods=(pod("w1", {"app": "w"}, "a1"), pod("w2", {"app": "w"}, "b1")))
    # Ignore (the default): the empty tainted zone c holds the minimum at 0, so a and b are full.
    r = schedule_one(pod("w3", {"app": "w"}, topologySpreadConstraints=[spread()]), c, random.Random(0))
    assert r.reasons == {"node(s) didn't match pod topology spread constraints": 2,
                         "node(s) had untolerated taint(s)": 1}
    honored = pod("w3", {"app": "w"}, topologySpreadConstraints=[spread(nodeTaintsPolicy="Honor")])
    assert schedule_one(honored, c, random.Random(0)).node in ("a1", "b1")


def test_spread_counts_only_nodes_with_every_constraints_key():
    c = cluster(node("a1", "a", rack="r1"), node("b1", "b"),
                pods=(pod("w1", {"app": "w"}, "a1"), pod("w2", {"app": "w"}, "a1")))
    both = [spread(), spread("rack", skew=5)]
    # b1 has no rack label: it can neither take the pod nor count as an empty zone for the
    # zone constraint, so zone a is the only domain and may take another pod.
    r = schedule_one(pod("w4", {"app": "w"}, topologySpreadConstraints=both), c, random.Random(0))
    assert r.node == "a1"


def test_schedule_anyway_and_the_default_constraints():
    c = cluster(node("a1", "a"), node("a2", "a"), node("b1", "b"),
                pods=tuple(pod(f"w{i}", {"app": "w"}, "a1" if i % 2 else "a2") for i in range(4)))
    soft = pod("w9", {"app": "w"}, topologySpreadConstraints=[spread(when="ScheduleAnyway")])
    assert all(schedule_one(soft, c, random.Random(s)).node == "b1" for s in range(5))
    # A ReplicaSet's pods without constraints get the system defaults (per host, per zone).
    owned = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid"}
    c2 = cluster(node("a1", "a"), node("a2", "a"), node("b1", "b"),
                 pods=tuple(fakes.pod(f"r{i}", "default", node="a1" if i % 2 else "a2", phase="Running",
                                      requests={"cpu": "100m", "memory": "100Mi"}, owner=owned) for i in range(4)))
    nxt = PodInfo(fakes.pod("r9", "default", phase="Pending", requests={"cpu": "100m", "memory": "100Mi"},
                            owner=owned))
    assert [x.topology_key for x in nxt.spread] == ["kubernetes.io/hostname", ZONE]
    assert all(schedule_one(nxt, c2, random.Random(s)).node == "b1" for s in range(5))


def test_overhead_counts_in_the_fit_and_the_scores():
    c = cluster(node("n1", cpu="1"))
    base = pod("x", cpu="700m")
    assert schedule_one(base, c, random.Random(0)).node == "n1"
    heavy = pod("x", cpu="700m", overhead={"cpu": "400m", "memory": "64Mi"})
    r = schedule_one(heavy, c, random.Random(0))
    assert r.node is None and r.reasons == {"Insufficient cpu": 1}
    info = PodInfo(heavy)
    assert (info.cpu, info.nz_cpu) == (1100, 1100)
    # The overhead makes the same pod weigh more on the node it lands on.
    c2 = cluster(node("n1", cpu="4"), node("n2", cpu="4"), pods=(pod("busy", cpu="1", node_name="n1"),))
    light = PodInfo(pod("y", cpu="100m"))
    loaded = PodInfo(pod("y", cpu="100m", overhead={"cpu": "1"}))
    assert core.least_allocated_score(loaded, c2.nodes["n2"]) < core.least_allocated_score(light, c2.nodes["n2"])


def test_node_name_set_by_hand_and_gates_bypass_the_scheduler():
    assert not responsible_for(pod("x", node_name="n1"), "default-scheduler")
    gated = pod("g")
    gated["spec"]["schedulingGates"] = [{"name": "a"}]
    assert not responsible_for(gated, "default-scheduler")
    del gated["spec"]["schedulingGates"]
    assert responsible_for(gated, "default-scheduler")


def test_a_pod_waiting_on_its_spread_constraints_is_retried_when_a_pod_lands():
    from kybernetes.scheduler.queue import SchedulingQueue

    q = SchedulingQueue(lambda: 1000.0)
    plain, spreading = pod("plain"), pod("spreading", topologySpreadConstraints=[spread()])
    for p in (plain, spreading):
        q.add(p)
        q.unschedulable(q.pop_nowait()[0], q.cycle)
    q.cycle += 1
    assert q.move_all(only_pod_affinity=True) == 1
    assert q.where["default/plain"] == "unschedulable" and q.where["default/spreading"] != "unschedulable"


def test_a_pod_templates_scheduling_fields_are_validated_too():
    from kybernetes.api.kinds import new_strategies

    info = Registry().get("apps", "v1", "deployments")
    template_spec = {"containers": [{"name": "c", "image": "busybox"}], "schedulingGates": [{"name": "a"}],
                     "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": ZONE,
                                                    "whenUnsatisfiable": "DoNotSchedule",
                                                    "labelSelector": {"matchLabels": {"app": "w"}}}]}
    deployment = {"metadata": {"name": "d", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"app": "w"}},
                           "template": {"metadata": {"labels": {"app": "w"}}, "spec": template_spec}}}
    strategy = new_strategies().for_info(info)
    strategy.default(info, deployment)
    assert strategy.validate(info, deployment) == []
    template_spec["topologySpreadConstraints"][0]["maxSkew"] = 0
    template_spec["schedulingGates"].append({"name": "a"})
    assert [f"{e.field}: {e.message()}" for e in strategy.validate(info, deployment)] == [
        'spec.template.spec.schedulingGates[1]: Duplicate value: "a"',
        "spec.template.spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"]
