"""Pod priority: the Priority admission rules (kybernetes/api/priority.py) and the
PriorityClass strategy's validation of system classes."""

from __future__ import annotations

import pytest

from kybernetes.api import priority
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import new_strategies
from kybernetes.api.registry import Registry

PCS = Registry().get("scheduling.k8s.io", "v1", "priorityclasses")


def pc(name: str, value: int, global_default: bool = False, policy: str | None = None) -> dict:
    obj: dict = {"metadata": {"name": name}, "value": value}
    if global_default:
        obj["globalDefault"] = True
    if policy:
        obj["preemptionPolicy"] = policy
    return obj


def new_pod(**spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c"}], **spec}}


def classes(*objs: dict) -> dict:
    return {o["metadata"]["name"]: o for o in objs}


def test_pod_without_class_gets_zero_and_preempt_lower_priority():
    pod = new_pod()
    priority.resolve_pod_priority(pod, {})
    assert pod["spec"]["priority"] == 0
    assert pod["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert "priorityClassName" not in pod["spec"]


def test_pod_without_class_gets_the_global_default_class():
    pod = new_pod()
    priority.resolve_pod_priority(pod, classes(pc("low", 10), pc("dflt", 500, True, "Never")))
    assert pod["spec"]["priorityClassName"] == "dflt"
    assert pod["spec"]["priority"] == 500
    assert pod["spec"]["preemptionPolicy"] == "Never"


def test_two_default_classes_after_a_race_pick_the_lowest_value():
    assert priority.default_class([pc("a", 9, True), pc("b", 3, True), pc("c", 1)])["metadata"]["name"] == "b"


def test_named_class_resolves_value_and_policy():
    pod = new_pod(priorityClassName="high")
    priority.resolve_pod_priority(pod, classes(pc("high", 1000, policy="PreemptLowerPriority")))
    assert pod["spec"]["priority"] == 1000


def test_unknown_class_is_forbidden():
    with pytest.raises(ApiError) as e:
        priority.resolve_pod_priority(new_pod(priorityClassName="nope"), {})
    assert e.value.code == 403
    assert e.value.message == 'pods "p" is forbidden: no PriorityClass with name nope was found'


def test_priority_given_by_the_user_must_match_the_class():
    with pytest.raises(ApiError) as e:
        priority.resolve_pod_priority(new_pod(priority=5), {})
    assert e.value.code == 403
    assert "the integer value of priority (5) must not be provided in pod spec" in e.value.message
    with pytest.raises(ApiError):
        priority.resolve_pod_priority(new_pod(priority=5, priorityClassName="high"), classes(pc("high", 7)))
    pod = new_pod(priority=7, priorityClassName="high")
    priority.resolve_pod_priority(pod, classes(pc("high", 7)))
    assert pod["spec"]["priority"] == 7


def test_preemption_policy_given_by_the_user_must_match_the_class():
    with pytest.raises(ApiError) as e:
        priority.resolve_pod_priority(new_pod(preemptionPolicy="Never"), {})
    assert "the string value of PreemptionPolicy (Never) must not be provided" in e.value.message
    pod = new_pod(preemptionPolicy="Never", priorityClassName="bg")
    priority.resolve_pod_priority(pod, classes(pc("bg", 1, policy="Never")))
    assert pod["spec"]["preemptionPolicy"] == "Never"


def test_pod_update_keeps_resolved_fields():
    old = new_pod(priority=100, preemptionPolicy="Never", priorityClassName="x")
    new = new_pod(priorityClassName="x")
    priority.admit("", "pods", new, old, lambda: pytest.fail("pod updates need no classes"))
    assert new["spec"]["priority"] == 100 and new["spec"]["preemptionPolicy"] == "Never"


def test_only_one_global_default():
    existing = [pc("a", 1, True), pc("b", 2)]
    with pytest.raises(ApiError) as e:
        priority.check_priority_class(pc("c", 3, True), existing)
    assert e.value.code == 403
    assert "PriorityClass a is already marked as default. Only one default can exist" in e.value.message
    priority.check_priority_class(pc("a", 1, True), existing)  # updating the default itself
    with pytest.raises(ApiError):
        priority.admit("scheduling.k8s.io", "priorityclasses", pc("b", 2, True), pc("b", 2), lambda: classes(*existing))
    priority.check_priority_class(pc("d", 3), existing)


def test_system_classes_are_as_upstream_and_cannot_be_deleted():
    objs = {o["metadata"]["name"]: o for o in priority.system_priority_classes()}
    assert objs["system-cluster-critical"]["value"] == 2_000_000_000
    assert objs["system-node-critical"]["value"] == 2_000_001_000
    strategy = new_strategies().for_info(PCS)
    for obj in objs.values():
        assert strategy.validate(PCS, obj) == []
        with pytest.raises(ApiError) as e:
            strategy.check_delete(obj)
        assert e.value.code == 403 and "this is a system priority class and cannot be deleted" in e.value.message
    strategy.check_delete(pc("mine", 5))


def test_system_prefix_and_values_are_reserved():
    strategy = new_strategies().for_info(PCS)
    msgs = [e.message() for e in strategy.validate(PCS, pc("system-mine", 5))]
    assert any("system-mine is not a known system priority class" in m for m in msgs)
    msgs = [e.message() for e in strategy.validate(PCS, pc("system-node-critical", 5))]
    assert any("value of system-node-critical PriorityClass must be 2000001000" in m for m in msgs)
    msgs = [e.message() for e in strategy.validate(PCS, pc("system-cluster-critical", 2_000_000_000, True))]
    assert any("globalDefault of system-cluster-critical PriorityClass must be false" in m for m in msgs)
    msgs = [e.message() for e in strategy.validate(PCS, pc("huge", 1_000_000_001))]
    assert any("maximum allowed value of a user defined priority is 1000000000" in m for m in msgs)


def test_value_and_preemption_policy_are_immutable():
    strategy = new_strategies().for_info(PCS)
    old = pc("x", 5, policy="PreemptLowerPriority")
    fields = {e.field for e in strategy.validate_update(PCS, pc("x", 6, policy="Never"), old)}
    assert fields == {"value", "preemptionPolicy"}
    assert strategy.validate_update(PCS, {**old, "description": "d"}, old) == []
