"""The eviction decision (api/disruption.py plan_eviction) and the pods/eviction plan that
uses it: budgets honoured as kube-apiserver's eviction REST honours them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from kybernetes.api.disruption import (
    MULTIPLE_PDBS_MESSAGE,
    VIOLATION_MESSAGE,
    budget_selects,
    plan_eviction,
)
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import ActionContext, DeleteStep, RelatedWrite
from kybernetes.api.kinds.pod import PodStrategy
from kybernetes.testing import fakes

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def pod(name: str = "web-1", phase: str = "Running", ready: bool = True, labels: dict[str, str] | None = None,
        **kw: Any) -> dict[str, Any]:
    p = fakes.pod(name, labels={"app": "web"} if labels is None else labels, node="n1", phase=phase, ready=ready,
                  **kw)
    p["metadata"]["resourceVersion"] = "42"
    return p


def pdb(name: str = "web-pdb", allowed: int = 1, current: int = 3, desired: int = 2, generation: int = 1,
        observed: int = 1, selector: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": "default", "generation": generation, "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": "web"}} if selector is None else selector,
                     "minAvailable": 2, **spec},
            "status": {"disruptionsAllowed": allowed, "currentHealthy": current, "desiredHealthy": desired,
                       "expectedPods": 3, "observedGeneration": observed}}


def test_without_a_budget_the_pod_is_deleted_with_the_requests_options():
    plan = plan_eviction(pod(), [], {"gracePeriodSeconds": 5}, False, NOW)
    assert plan.delete_options == {"gracePeriodSeconds": 5}
    assert plan.pdb is None


def test_a_budget_with_room_takes_one_disruption_and_records_the_pod():
    plan = plan_eviction(pod(), [pdb(allowed=2)], {}, False, NOW)
    status = plan.pdb["status"]
    assert status["disruptionsAllowed"] == 1
    assert status["disruptedPods"] == {"web-1": "2026-01-01T12:00:00Z"}
    # The write is guarded by the budget's resourceVersion as it was read.
    assert plan.pdb["metadata"]["resourceVersion"] == "7"
    assert plan.delete_options == {}


def test_taking_the_last_disruption_turns_the_condition_false():
    status = plan_eviction(pod(), [pdb(allowed=1)], {}, False, NOW).pdb["status"]
    assert status["disruptionsAllowed"] == 0
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "False", "InsufficientPods")


def test_a_budget_allowing_nothing_refuses_with_429_and_the_budgets_message():
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(), [pdb(allowed=0, current=2)], {}, False, NOW)
    err = e.value
    assert err.code == 429 and err.reason == "TooManyRequests"
    assert err.message == VIOLATION_MESSAGE == "Cannot evict pod as it would violate the pod's disruption budget."
    assert err.details["causes"] == [{"reason": "DisruptionBudget",
                                      "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 "
                                                 "currently"}]


def test_a_budget_whose_spec_the_controller_has_not_seen_asks_to_retry_later():
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(), [pdb(generation=2, observed=1)], {}, False, NOW)
    assert e.value.code == 429
    assert e.value.details["retryAfterSeconds"] == 10
    assert e.value.headers == {"Retry-After": "10"}
    assert "still being processed" in e.value.details["causes"][0]["message"]


def test_two_budgets_over_one_pod_is_a_500():
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(), [pdb("a"), pdb("b")], {}, False, NOW)
    assert e.value.code == 500 and e.value.message == MULTIPLE_PDBS_MESSAGE


def test_negative_allowance_and_an_overfull_disrupted_map_are_forbidden():
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(), [pdb(allowed=-1)], {}, False, NOW)
    assert e.value.code == 403
    full = pdb(allowed=5)
    full["status"]["disruptedPods"] = {f"p{i}": "2026-01-01T11:59:00Z" for i in range(2001)}
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(), [full], {}, False, NOW)
    assert e.value.code == 403 and "DisruptedPods map too big" in e.value.message


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Pending"])
def test_pods_that_disrupt_nothing_bypass_the_budget(phase):
    plan = plan_eviction(pod(phase=phase, ready=False), [pdb(allowed=0)], {}, False, NOW)
    assert plan.pdb is None
    pinned = plan.delete_options.get("preconditions", {}).get("resourceVersion")
    # A pending pod could turn ready meanwhile: its delete is pinned to the version judged.
    assert pinned == ("42" if phase == "Pending" else None)


def test_a_pod_already_being_deleted_bypasses_the_budget():
    plan = plan_eviction(pod(deleting=True), [pdb(allowed=0)], {"gracePeriodSeconds": 0}, False, NOW)
    assert plan.pdb is None and plan.delete_options == {"gracePeriodSeconds": 0}


def test_an_unready_pod_goes_without_cost_while_the_budget_is_healthy():
    plan = plan_eviction(pod(ready=False), [pdb(allowed=0, current=2, desired=2)], {}, False, NOW)
    assert plan.pdb is None
    assert plan.delete_options == {"preconditions": {"resourceVersion": "42"}}
    # If the pod changed (turned ready) meanwhile, the client is told to retry.
    assert plan.on_conflict is not None and plan.on_conflict.code == 429


def test_an_unready_pod_under_an_unhealthy_budget_needs_always_allow():
    with pytest.raises(ApiError) as e:
        plan_eviction(pod(ready=False), [pdb(allowed=0, current=1, desired=2)], {}, False, NOW)
    assert e.value.code == 429
    plan = plan_eviction(pod(ready=False), [pdb(allowed=0, current=1, desired=2,
                                                unhealthyPodEvictionPolicy="AlwaysAllow")], {}, False, NOW)
    assert plan.pdb is None and plan.delete_options["preconditions"]["resourceVersion"] == "42"


def test_the_requests_own_preconditions_are_kept():
    options = {"preconditions": {"uid": "u-1", "resourceVersion": "41"}, "gracePeriodSeconds": 3}
    plan = plan_eviction(pod(ready=False), [pdb(allowed=0, current=2, desired=2)], options, False, NOW)
    assert plan.delete_options["preconditions"]["uid"] == "u-1"
    assert plan.delete_options["gracePeriodSeconds"] == 3
    assert plan.on_conflict is None  # the caller pinned a version: its conflict is its own


def test_dry_run_checks_the_budget_but_writes_nothing():
    assert plan_eviction(pod(), [pdb(allowed=1)], {}, True, NOW).pdb is None
    with pytest.raises(ApiError):
        plan_eviction(pod(), [pdb(allowed=0)], {}, True, NOW)


def test_budgets_of_other_namespaces_or_labels_and_empty_selectors_do_not_apply():
    other_ns = pdb(allowed=0)
    other_ns["metadata"]["namespace"] = "other"
    assert plan_eviction(pod(), [other_ns, pdb(allowed=0, selector={"matchLabels": {"app": "db"}}),
                                 pdb(allowed=0, selector={})], {}, False, NOW).pdb is None
    # The controller, unlike eviction, reads an empty selector as the whole namespace (policy/v1).
    assert budget_selects(pdb(selector={}), {"x": "y"}) and not budget_selects(pdb(selector={}), {}, eviction=True)
    assert not budget_selects({"spec": {}}, {"app": "web"})


# -- the pods/eviction plan -----------------------------------------------------------------


def ctx(*budgets: dict[str, Any], dry_run: bool = False) -> ActionContext:
    def related(group: str, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        assert (group, plural, namespace) == ("policy", "poddisruptionbudgets", "default")
        return list(budgets)

    return ActionContext(related, dry_run)


def eviction_body(**options: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1", "namespace": "default"},
            "deleteOptions": options}


def test_the_eviction_subresource_writes_the_budget_before_the_delete():
    action = PodStrategy().actions()["eviction"]
    step = action.plan("web-1", eviction_body(gracePeriodSeconds=1), pod, "2026-01-01T12:00:00Z", ctx(pdb(allowed=2)))
    assert isinstance(step, DeleteStep)
    assert step.options == {"gracePeriodSeconds": 1}
    [write] = step.before
    assert isinstance(write, RelatedWrite)
    assert (write.group, write.plural, write.subresource) == ("policy", "poddisruptionbudgets", "status")
    assert write.obj["status"]["disruptedPods"] == {"web-1": "2026-01-01T12:00:00Z"}
    # Having taken a disruption, a lost race must not take another.
    assert not step.retry_on_conflict


def test_the_eviction_subresource_retries_a_bypassing_delete_that_lost_a_race():
    action = PodStrategy().actions()["eviction"]
    step = action.plan("web-1", eviction_body(), lambda: pod(phase="Pending", ready=False), "2026-01-01T12:00:00Z",
                       ctx(pdb(allowed=0)))
    assert step.before == () and step.retry_on_conflict


def test_the_eviction_subresource_dry_run_from_the_body_or_the_request_writes_no_budget():
    action = PodStrategy().actions()["eviction"]
    step = action.plan("web-1", eviction_body(dryRun=["All"]), pod, "2026-01-01T12:00:00Z", ctx(pdb(allowed=1)))
    assert step.before == () and step.options == {"dryRun": ["All"]}
    step = action.plan("web-1", eviction_body(), pod, "2026-01-01T12:00:00Z", ctx(pdb(allowed=1), dry_run=True))
    assert step.before == ()
    with pytest.raises(ApiError) as e:
        action.plan("web-1", eviction_body(), pod, "2026-01-01T12:00:00Z", ctx(pdb(allowed=0), dry_run=True))
    assert e.value.code == 429


def test_the_eviction_must_name_the_pod_of_its_url():
    action = PodStrategy().actions()["eviction"]
    with pytest.raises(ApiError) as e:
        action.plan("other", eviction_body(), pod, "2026-01-01T12:00:00Z", ctx())
    assert e.value.code == 400 and e.value.message == "name in URL does not match name in Eviction object"


def test_an_evicted_pod_is_marked_as_a_disruption_target_first():
    action = PodStrategy().actions()["eviction"]
    step = action.plan("web-1", eviction_body(), pod, "2026-01-01T12:00:00Z", ctx(pdb(allowed=1)))
    latest = pod()
    latest["status"]["conditions"].append({"type": "DisruptionTarget", "status": "False"})
    marked = step.mark(latest)
    conds = {c["type"]: c for c in marked["status"]["conditions"]}
    assert conds["DisruptionTarget"] == {"type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                                         "lastTransitionTime": "2026-01-01T12:00:00Z",
                                         "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
    assert conds["Ready"]["status"] == "True"
    assert [c["type"] for c in marked["status"]["conditions"]].count("DisruptionTarget") == 1
    # The latest version is rewritten, not the one judged; a dry run marks nothing.
    assert latest["status"]["conditions"][-1]["status"] == "False"
    assert action.plan("web-1", eviction_body(dryRun=["All"]), pod, "2026-01-01T12:00:00Z", ctx()).mark is None
