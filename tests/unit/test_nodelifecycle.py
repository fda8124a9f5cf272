"""Node lifecycle decisions with an injected clock: heartbeats, condition taints,
NoExecute evictions, pods marked not ready, pod CIDR allocation."""

from __future__ import annotations

import datetime as dt

import pytest

from kybernetes.api.pods import toleration_matches
from kybernetes.controllers.nodelifecycle import (
    NEVER_POSTED,
    STOPPED_POSTING,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    CidrAllocator,
    desired_taints,
    eviction_time,
    heartbeat_expired,
    node_cidrs,
    not_ready_patch,
    observe_heartbeat,
    pods_to_mark_not_ready,
    unknown_conditions,
)
from kybernetes.testing import fakes

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def node(name="n1", ready="True", taints=None, unschedulable=False, extra_conditions=None):
    conds = []
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "kubelet is posting",
                      "lastHeartbeatTime": "2026-01-01T11:59:50Z", "lastTransitionTime": "2026-01-01T10:00:00Z"})
    n = fakes.node(name, ready=None, taints=taints, unschedulable=unschedulable,
                   conditions=conds + list(extra_conditions or []))
    if taints is not None:
        n["spec"]["taints"] = taints
    n["metadata"]["creationTimestamp"] = "2026-01-01T09:00:00Z"
    return n


def lease(renew):
    return {"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"renewTime": renew}}


def pod(name="p", tolerations=None, ready="True", node_name="n1", phase="Running"):
    return fakes.pod(name, node=node_name, phase=phase, tolerations=tolerations or [],
                     conditions=[{"type": "Ready", "status": ready}])


# -- heartbeats --------------------------------------------------------------------------------

def test_probe_time_moves_only_when_a_heartbeat_changes():
    n = node()
    hb = observe_heartbeat(None, n, lease("2026-01-01T12:00:00.000000Z"), at(0))
    assert hb.probe_time == at(0)
    same = observe_heartbeat(hb, n, lease("2026-01-01T12:00:00.000000Z"), at(30))
    assert same.probe_time == at(0)
    renewed = observe_heartbeat(same, n, lease("2026-01-01T12:00:10.000000Z"), at(31))
    assert renewed.probe_time == at(31)
    n2 = node()
    n2["status"]["conditions"][0]["lastHeartbeatTime"] = "2026-01-01T12:01:00Z"
    assert observe_heartbeat(renewed, n2, lease("2026-01-01T12:00:10.000000Z"), at(50)).probe_time == at(50)


def test_expiry_uses_grace_period_and_startup_grace_for_never_ready_nodes():
    hb = observe_heartbeat(None, node(), lease("x"), at(0))
    assert not heartbeat_expired(hb, node(), at(40), 40, 60)
    assert heartbeat_expired(hb, node(), at(40.5), 40, 60)
    fresh = node(ready=None)
    assert not heartbeat_expired(hb, fresh, at(50), 40, 60)
    assert heartbeat_expired(hb, fresh, at(61), 40, 60)


def test_unknown_conditions_for_a_silent_kubelet():
    n = node(extra_conditions=[{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
                                "lastHeartbeatTime": "2026-01-01T11:59:50Z"}])
    changed = {c["type"]: c for c in unknown_conditions(n, at(45))}
    assert set(changed) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    ready = changed["Ready"]
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == STOPPED_POSTING
    assert ready["lastTransitionTime"] == "2026-01-01T12:00:45Z"
    assert ready["lastHeartbeatTime"] == "2026-01-01T11:59:50Z"
    assert changed["DiskPressure"]["message"] == NEVER_POSTED
    assert changed["DiskPressure"]["lastHeartbeatTime"] == "2026-01-01T09:00:00Z"
    # Already Unknown everywhere: nothing to write.
    n["status"]["conditions"] = list(changed.values())
    assert unknown_conditions(n, at(90)) == []


# -- taints ------------------------------------------------------------------------------------

def ids(taints):
    return sorted((t["key"], t["effect"]) for t in taints)


def test_unknown_node_gets_unreachable_taints_stamped_now():
    taints = desired_taints(node(ready="Unknown", taints=[{"key": "custom", "effect": "NoSchedule"}]), at(5))
    assert ids(taints) == [("custom", "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute"),
                           (TAINT_UNREACHABLE, "NoSchedule")]
    noexec = next(t for t in taints if t["effect"] == "NoExecute")
    assert noexec["timeAdded"] == "2026-01-01T12:00:05Z"


def test_not_ready_swaps_for_unreachable_and_ready_removes_both():
    unreachable = [{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T11:00:00Z"},
                   {"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]
    swapped = desired_taints(node(ready="False", taints=unreachable), at(0))
    assert ids(swapped) == [(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")]
    assert desired_taints(node(ready="True", taints=unreachable + [{"key": "keep", "effect": "NoExecute"}]),
                          at(0)) == [{"key": "keep", "effect": "NoExecute"}]
    # Already right: no write, and the original timeAdded is never touched.
    assert desired_taints(node(ready="Unknown", taints=unreachable), at(100)) is None
    assert desired_taints(node(ready="True"), at(0)) is None


def test_unschedulable_and_pressure_taints_follow_spec_and_conditions():
    n = node(unschedulable=True, extra_conditions=[{"type": "DiskPressure", "status": "True"}])
    assert ids(desired_taints(n, at(0))) == [("node.kubernetes.io/disk-pressure", "NoSchedule"),
                                             (TAINT_UNSCHEDULABLE, "NoSchedule")]


# -- taint manager -----------------------------------------------------------------------------

UNREACHABLE_NOEXEC = {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T12:00:00Z"}


def test_toleration_matching():
    taint = {"key": "k", "value": "v", "effect": "NoExecute"}
    assert toleration_matches({"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"}, taint)
    assert toleration_matches({"key": "k", "value": "v"}, taint)
    assert toleration_matches({"key": "k", "operator": "Exists"}, taint)
    assert toleration_matches({"operator": "Exists"}, taint)
    assert not toleration_matches({"key": "k", "value": "w"}, taint)
    assert not toleration_matches({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not toleration_matches({"key": "other", "operator": "Exists"}, taint)
    assert not toleration_matches({"key": "", "operator": "Equal"}, taint)


def test_eviction_after_toleration_seconds_from_the_taint_time():
    p = pod(tolerations=[{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                          "tolerationSeconds": 30}])
    assert eviction_time(p, [UNREACHABLE_NOEXEC], 300, at(10)) == at(30)


def test_default_toleration_seconds_for_pods_without_one_and_immediate_for_other_taints():
    assert eviction_time(pod(), [UNREACHABLE_NOEXEC], 120, at(1)) == at(120)
    other = {"key": "dedicated", "value": "x", "effect": "NoExecute", "timeAdded": "2026-01-01T12:00:00Z"}
    assert eviction_time(pod(), [other], 300, at(1)) == at(0)
    # A taint without timeAdded counts from now.
    assert eviction_time(pod(), [{"key": "dedicated", "effect": "NoExecute"}], 300, at(7)) == at(7)


def test_forever_tolerations_and_noschedule_taints_never_evict():
    p = pod(tolerations=[{"operator": "Exists"}])
    assert eviction_time(p, [UNREACHABLE_NOEXEC], 300, at(0)) is None
    assert eviction_time(pod(), [{"key": "x", "effect": "NoSchedule"}], 300, at(0)) is None
    assert eviction_time(pod(), [], 300, at(0)) is None


def test_smallest_toleration_seconds_wins_and_negative_means_now():
    p = pod(tolerations=[{"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 50},
                         {"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 20}])
    assert eviction_time(p, [UNREACHABLE_NOEXEC], 300, at(0)) == at(20)
    neg = pod(tolerations=[{"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": -5}])
    assert eviction_time(neg, [UNREACHABLE_NOEXEC], 300, at(0)) == at(0)


def test_pods_on_unknown_node_are_marked_not_ready():
    pods = [pod("a"), pod("b", ready="False"), pod("c", node_name="n2"), pod("d", phase="Succeeded")]
    assert [p["metadata"]["name"] for p in pods_to_mark_not_ready(node(ready="Unknown"), pods)] == ["a"]
    assert pods_to_mark_not_ready(node(ready="False"), pods) == []
    patch = not_ready_patch(pods[0], at(3))
    assert patch == {"status": {"conditions": [{"type": "Ready", "status": "False",
                                                "lastTransitionTime": "2026-01-01T12:00:03Z"}]}}


# -- pod CIDRs ---------------------------------------------------------------------------------

def test_cidr_allocation_in_order_skipping_used_and_round_robin_after_release():
    a = CidrAllocator("10.42.0.0/16", 24)
    assert a.occupy("10.42.1.0/24")
    assert not a.occupy("10.99.0.0/24") and not a.occupy("10.42.2.0/25") and not a.occupy("junk")
    assert [a.allocate() for _ in range(3)] == ["10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    a.release("10.42.0.0/24")
    assert a.allocate() == "10.42.4.0/24"


def test_cidr_exhaustion_and_wraparound():
    a = CidrAllocator("10.0.0.0/30", 31)
    first, second = a.allocate(), a.allocate()
    assert (first, second) == ("10.0.0.0/31", "10.0.0.2/31")
    assert a.allocate() is None
    a.release(first)
    assert a.allocate() == "10.0.0.0/31"


def test_cidr_mask_must_fit():
    with pytest.raises(ValueError):
        CidrAllocator("10.42.0.0/16", 8)


def test_node_cidrs_reads_either_field():
    assert node_cidrs({"spec": {"podCIDR": "10.42.3.0/24"}}) == ["10.42.3.0/24"]
    assert node_cidrs({"spec": {"podCIDR": "10.42.3.0/24", "podCIDRs": ["10.42.3.0/24", "fd00::/64"]}}) == [
        "10.42.3.0/24", "fd00::/64"]
    assert node_cidrs({"spec": {}}) == []
