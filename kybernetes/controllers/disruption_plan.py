"""The disruption controller's decisions: a PodDisruptionBudget's status from a snapshot of
the pods it selects and the scale of their controllers, as kube-controller-manager's
disruption controller computes it.

Pure functions only; `kybernetes.controllers.disruption` feeds them informer state and writes
what they return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.disruption import (
    DELETION_TIMEOUT,
    DISRUPTION_ALLOWED,
    DISRUPTION_TARGET,
    SYNC_FAILED,
    budget_selects,
    conditions_up_to_date,
    set_condition,
    with_disruption_allowed_condition,
)
from kybernetes.api.pods import pod_is_ready, pod_is_terminal
from kybernetes.controllers.deployment_plan import scaled_value
from kybernetes.controllers.podutil import controller_ref, format_time, parse_time

Obj = dict[str, Any]
# A DisruptionTarget condition on a pod still not being deleted after this is stale.
STALE_DISRUPTION_TIMEOUT = dt.timedelta(minutes=2)
# A pod's controller reference and namespace -> (the uid of the controller whose scale counts,
# that scale), or None when no workload with a scale owns the pod.
ScaleOf = Callable[[Mapping[str, Any], str], tuple[str, int] | None]


class NoController(Exception):
    """A selected pod's controller has no scale the budget can be measured against."""


@dataclass
class BudgetPlan:
    """One sync of a budget: the status to write (None when it is up to date), when to look
    again (an approved eviction's deadline), events to record, and an error to report."""

    status: Obj | None = None
    recheck_after: float | None = None
    events: list[tuple[Obj, str, str, str]] = field(default_factory=list)
    error: str | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def selected_pods(pdb: Mapping[str, Any], pods: Iterable[Obj]) -> list[Obj]:
    ns = _meta(pdb).get("namespace")
    return [p for p in pods if _meta(p).get("namespace") == ns and budget_selects(pdb, _meta(p).get("labels") or {})]


def expected_scale(pods: Iterable[Obj], scale_of: ScaleOf) -> tuple[int, list[str]]:
    """The sum of the scales of the controllers of `pods` (each counted once) and the names
    of pods without a controller. Raises NoController for a controller without a scale."""
    scales: dict[str, int] = {}
    seen_refs: set[str] = set()
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(_meta(pod).get("name") or "")
            continue
        if ref.get("uid") in seen_refs:
            continue
        found = scale_of(ref, _meta(pod).get("namespace") or "")
        if found is None:
            raise NoController(f'found no controllers for pod "{_meta(pod).get("name")}"')
        seen_refs.add(ref.get("uid") or "")
        scales[found[0]] = found[1]
    return sum(scales.values()), unmanaged


def expected_and_desired(pdb: Mapping[str, Any], pods: list[Obj], scale_of: ScaleOf) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, unmanaged pod names): an integer minAvailable counts the
    selected pods; a percentage or maxUnavailable counts the controllers' scale, percentages
    rounding up."""
    spec = pdb.get("spec") or {}
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected, unmanaged = expected_scale(pods, scale_of)
        desired = max(expected - scaled_value(max_unavailable, expected, True), 0)
        return expected, desired, unmanaged
    if min_available is not None:
        if isinstance(min_available, int) and not isinstance(min_available, bool):
            return len(pods), min_available, []
        expected, unmanaged = expected_scale(pods, scale_of)
        return expected, scaled_value(min_available, expected, True), unmanaged
    return 0, 0, []


def still_disrupted(pdb: Mapping[str, Any], pods: Iterable[Obj], now: dt.datetime) -> tuple[Obj, dt.datetime | None]:
    """The disruptedPods entries that still hold (pod present, not yet being deleted, within
    the deletion timeout) and the earliest moment one of them expires."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: Obj = {}
    recheck: dt.datetime | None = None
    for pod in pods:
        meta = _meta(pod)
        if meta.get("deletionTimestamp") or meta.get("name") not in recorded:
            continue
        at = parse_time(recorded[meta["name"]])
        if at is None:
            continue
        deadline = at + DELETION_TIMEOUT
        if deadline < now:
            continue  # the eviction's delete never came: count the pod again
        kept[meta["name"]] = recorded[meta["name"]]
        recheck = deadline if recheck is None or deadline < recheck else recheck
    return kept, recheck


def count_healthy(pods: Iterable[Obj], disrupted: Mapping[str, Any], now: dt.datetime) -> int:
    healthy = 0
    for pod in pods:
        meta = _meta(pod)
        if meta.get("deletionTimestamp"):
            continue
        at = parse_time(disrupted.get(meta.get("name") or "")) if meta.get("name") in disrupted else None
        if at is not None and at + DELETION_TIMEOUT > now:
            continue
        if pod_is_ready(pod):
            healthy += 1
    return healthy


def failed_status(pdb: Mapping[str, Any], message: str, now: dt.datetime) -> Obj:
    """The fail-safe status when the budget cannot be computed: no disruption allowed."""
    status = dict(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    cond: Obj = {"type": DISRUPTION_ALLOWED, "status": "False", "reason": SYNC_FAILED, "message": message}
    if status.get("observedGeneration"):
        cond["observedGeneration"] = status["observedGeneration"]
    status["conditions"] = set_condition(list(status.get("conditions") or []), cond, now)
    return status


def _same(old: Mapping[str, Any], key: str, value: Any) -> bool:
    return (old.get(key) or 0) == value


def plan_budget(pdb: Mapping[str, Any], pods: Iterable[Obj], scale_of: ScaleOf, now: dt.datetime) -> BudgetPlan:
    """Decide one sync of `pdb` from the pods of its namespace."""
    plan = BudgetPlan()
    selected = selected_pods(pdb, pods)
    if not selected:
        plan.events.append((dict(pdb), "Normal", "NoPods", "No matching pods found"))
    try:
        expected, desired, unmanaged = expected_and_desired(pdb, selected, scale_of)
    except NoController as e:
        plan.error = str(e)
        plan.events.append((dict(pdb), "Warning", "CalculateExpectedPodCountFailed",
                            f"Failed to calculate the number of expected pods: {e}"))
        status = failed_status(pdb, str(e), now)
        plan.status = status if status != (pdb.get("status") or {}) else None
        return plan
    if unmanaged:
        selector = (pdb.get("spec") or {}).get("selector")
        plan.events.append((dict(pdb), "Warning", "UnmanagedPods",
                            f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be "
                            "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which "
                            "may result in undefined behavior. To account for these pods please set "
                            '".spec.minAvailable" field of the PDB to an integer value.'))
    disrupted, recheck = still_disrupted(pdb, selected, now)
    if recheck is not None:
        plan.recheck_after = max((recheck - now).total_seconds(), 0.0) + 0.05
    healthy = count_healthy(selected, disrupted, now)
    # A budget that expects no pods allows nothing: its first pods may appear before this sync.
    allowed = max(healthy - desired, 0) if expected > 0 else 0
    generation = int(_meta(pdb).get("generation") or 0)
    old = pdb.get("status") or {}
    if (_same(old, "currentHealthy", healthy) and _same(old, "desiredHealthy", desired)
            and _same(old, "expectedPods", expected) and _same(old, "disruptionsAllowed", allowed)
            and (old.get("disruptedPods") or {}) == disrupted and _same(old, "observedGeneration", generation)
            and conditions_up_to_date(pdb)):
        return plan
    status: Obj = {"disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
                   "expectedPods": expected}
    if disrupted:
        status["disruptedPods"] = disrupted
    if generation:
        status["observedGeneration"] = generation
    if old.get("conditions"):
        status["conditions"] = list(old["conditions"])
    plan.status = with_disruption_allowed_condition(status, now)
    return plan


def workload_scale(ref: Mapping[str, Any], namespace: str,
                   get: Callable[[str, str, str], Obj | None]) -> tuple[str, int] | None:
    """The scale a pod's controller stands for, as upstream's finders read it: a ReplicaSet
    owned by a Deployment counts as the Deployment; ReplicaSets, ReplicationControllers and
    StatefulSets count as themselves. `get(kind, namespace, name)` reads a workload."""
    kind, name, uid = ref.get("kind"), ref.get("name") or "", ref.get("uid")
    group = str(ref.get("apiVersion") or "").rpartition("/")[0]
    if kind not in ("ReplicaSet", "ReplicationController", "StatefulSet", "Deployment"):
        return None
    if (kind == "ReplicationController") != (group == ""):
        return None
    obj = get(kind, namespace, name)
    if obj is None or _meta(obj).get("uid") != uid:
        return None
    if kind == "ReplicaSet":
        owner = controller_ref(obj)
        if owner is not None and owner.get("kind") == "Deployment":
            dep = get("Deployment", namespace, owner.get("name") or "")
            if dep is None or _meta(dep).get("uid") != owner.get("uid"):
                return None
            return _meta(dep).get("uid") or "", _replicas(dep)
    return _meta(obj).get("uid") or "", _replicas(obj)


def _replicas(obj: Mapping[str, Any]) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


# -- stale DisruptionTarget conditions -------------------------------------------------------


def _disruption_target(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == DISRUPTION_TARGET:
            return cond
    return None


def stale_disruption_in(pod: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds until the pod's DisruptionTarget condition counts as stale (0: it does now), or
    None when there is nothing to clear: an eviction marked the pod but its delete never came.
    The kubelet's own marks and finished pods are left alone, as upstream does."""
    if _meta(pod).get("deletionTimestamp") or pod_is_terminal(dict(pod)):
        return None
    cond = _disruption_target(pod)
    if cond is None or cond.get("status") != "True" or cond.get("reason") == "TerminationByKubelet":
        return None
    since = parse_time(cond.get("lastTransitionTime"))
    if since is None:
        return 0.0
    return max((since + STALE_DISRUPTION_TIMEOUT - now).total_seconds(), 0.0)


def cleared_disruption(pod: Obj, now: dt.datetime) -> Obj:
    """`pod` with its DisruptionTarget condition turned False (reason and message cleared)."""
    status = dict(pod.get("status") or {})
    conditions = []
    for cond in status.get("conditions") or ():
        if cond.get("type") == DISRUPTION_TARGET:
            cond = {"type": DISRUPTION_TARGET, "status": "False", "lastProbeTime": cond.get("lastProbeTime"),
                    "lastTransitionTime": format_time(now)}
        conditions.append(cond)
    status["conditions"] = conditions
    return {**pod, "status": status}
