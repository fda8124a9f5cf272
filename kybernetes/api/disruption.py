"""The rules of PodDisruptionBudgets shared by the API server and the disruption controller:
which pods a budget selects, its DisruptionAllowed condition, and the eviction decision
(`plan_eviction`), as upstream's eviction REST and `pdbhelper` make them.

Everything here is pure: the server's eviction handler feeds `plan_eviction` the pod and the
budgets of its namespace and carries out what it returns (a budget status write guarded by
the budget's resourceVersion, then the pod's delete).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.pods import pod_is_ready
from kybernetes.api.selectors import selector_from_label_selector_object
from kybernetes.api.timefmt import rfc3339

Obj = dict[str, Any]

DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
# A pod an eviction approved is expected gone within this; after it, the budget counts it again.
DELETION_TIMEOUT = dt.timedelta(minutes=2)
# Evictions approved but not yet seen by the controller beyond this refuse further ones.
MAX_DISRUPTED_POD_SIZE = 2000
VIOLATION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS_MESSAGE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
DISRUPTION_TARGET = "DisruptionTarget"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def budget_selects(pdb: Mapping[str, Any], labels: Mapping[str, str], *, eviction: bool = False) -> bool:
    """Whether `pdb` covers a pod with `labels`. A null selector selects nothing; an empty one
    selects every pod of the namespace for the controller (policy/v1) but none for an
    eviction, which refuses to let an empty selector guard everything."""
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return not eviction
    try:
        return selector_from_label_selector_object(selector).matches(labels)
    except ApiError:
        return False  # an invalid selector matches no pod


def set_condition(conditions: list[Obj], new: Obj, now: dt.datetime) -> list[Obj]:
    """`conditions` with `new` set as apimachinery's SetStatusCondition does: the transition
    time changes only when the status does."""
    out: list[Obj] = []
    found = False
    for cond in conditions:
        if cond.get("type") != new["type"]:
            out.append(cond)
            continue
        found = True
        merged = {**cond, **{k: v for k, v in new.items() if k != "lastTransitionTime"}}
        if cond.get("status") != new["status"] or not cond.get("lastTransitionTime"):
            merged["lastTransitionTime"] = rfc3339(now)
        out.append(merged)
    if not found:
        out.append({**new, "lastTransitionTime": rfc3339(now)})
    return out


def with_disruption_allowed_condition(status: Obj, now: dt.datetime) -> Obj:
    """`status` with its DisruptionAllowed condition matching its disruptionsAllowed."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    cond: Obj = {"type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
                 "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": ""}
    if status.get("observedGeneration"):
        cond["observedGeneration"] = status["observedGeneration"]
    return {**status, "conditions": set_condition(list(status.get("conditions") or []), cond, now)}


def conditions_up_to_date(pdb: Mapping[str, Any]) -> bool:
    status = pdb.get("status") or {}
    cond = next((c for c in status.get("conditions") or () if c.get("type") == DISRUPTION_ALLOWED), None)
    if cond is None or int(status.get("observedGeneration") or 0) != int(_meta(pdb).get("generation") or 0):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS
    return cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS


# -- eviction -------------------------------------------------------------------------------


def too_many_requests(cause: str, retry_after: int = 0) -> ApiError:
    """The 429 an eviction gets while a budget forbids it; clients (kubectl drain) retry."""
    details: Obj = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    headers: dict[str, str] = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return ApiError(429, "TooManyRequests", VIOLATION_MESSAGE, details, headers)


def still_processing(pdb_name: str) -> ApiError:
    return too_many_requests(f"The disruption budget {pdb_name} is still being processed by the server.", 10)


@dataclass
class EvictionPlan:
    """What an eviction does: write `pdb` (its new status, guarded by the resourceVersion it
    carries) when set, then delete the pod with `delete_options`. When the delete's
    resourceVersion precondition (added here) fails, `on_conflict` is the answer."""

    delete_options: Obj = field(default_factory=dict)
    pdb: Obj | None = None
    on_conflict: ApiError | None = None


def mark_disruption_target(pod: Obj, now: dt.datetime) -> Obj:
    """`pod` with the DisruptionTarget condition an eviction sets before deleting it, which a
    Job's podFailurePolicy (onPodConditions) and the pod's owner can read."""
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or () if isinstance(c, dict)]
    cond = {"type": DISRUPTION_TARGET, "status": "True", "lastProbeTime": None,
            "lastTransitionTime": rfc3339(now), "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"}
    for i, old in enumerate(conditions):
        if old.get("type") == DISRUPTION_TARGET:
            if old.get("status") == "True":
                cond["lastTransitionTime"] = old.get("lastTransitionTime") or cond["lastTransitionTime"]
            conditions[i] = cond
            break
    else:
        conditions.append(cond)
    status["conditions"] = conditions
    return {**pod, "status": status}


def can_ignore_budget(pod: Mapping[str, Any]) -> bool:
    """Pods whose loss disrupts nothing more: finished, never started, or already going."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(_meta(pod).get("deletionTimestamp"))


def _enforces_resource_version(pod: Mapping[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not _meta(pod).get("deletionTimestamp")


def _rv_unset(options: Mapping[str, Any]) -> bool:
    return not (options.get("preconditions") or {}).get("resourceVersion")


def _pinned(options: Obj, pod: Mapping[str, Any]) -> Obj:
    pre = dict(options.get("preconditions") or {})
    pre["resourceVersion"] = str(_meta(pod).get("resourceVersion") or "")
    return {**options, "preconditions": pre}


def plan_eviction(pod: Mapping[str, Any], pdbs: Iterable[Mapping[str, Any]], options: Obj, dry_run: bool,
                  now: dt.datetime) -> EvictionPlan:
    """Decide the eviction of `pod` given the budgets of its namespace, as kube-apiserver's
    eviction REST does. Raises ApiError when it must be refused: 429 while a budget allows
    no disruption (or has not seen its latest spec), 500 for a pod under two budgets, 403
    for a budget in a state that forbids evictions."""
    if can_ignore_budget(pod):
        if _enforces_resource_version(pod) and _rv_unset(options):
            # Not racing a pending pod that becomes ready (and counted) meanwhile.
            return EvictionPlan(_pinned(options, pod))
        return EvictionPlan(options)
    labels = _meta(pod).get("labels") or {}
    namespace = _meta(pod).get("namespace")
    matching = [p for p in pdbs if _meta(p).get("namespace") == namespace and budget_selects(p, labels, eviction=True)]
    if len(matching) > 1:
        raise ApiError(500, "", MULTIPLE_PDBS_MESSAGE)
    if not matching:
        return EvictionPlan(options)
    pdb = matching[0]
    name = _meta(pdb).get("name") or ""
    spec = pdb.get("spec") or {}
    status = pdb.get("status") or {}
    current, desired = int(status.get("currentHealthy") or 0), int(status.get("desiredHealthy") or 0)
    if not pod_is_ready(pod):
        # An unready pod does not count as healthy: taking it costs the budget nothing.
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow" or (current >= desired and desired > 0):
            conflict = still_processing(name) if _rv_unset(options) else None
            return EvictionPlan(_pinned(options, pod), on_conflict=conflict)
    return EvictionPlan(options, pdb=decrement(pdb, _meta(pod).get("name") or "", dry_run, now))


def decrement(pdb: Mapping[str, Any], pod_name: str, dry_run: bool, now: dt.datetime) -> Obj | None:
    """`pdb` with one disruption taken for `pod_name` (None for a dry run, which writes
    nothing); raises the refusal when it allows none."""
    meta = _meta(pdb)
    name = meta.get("name") or ""
    status = dict(pdb.get("status") or {})
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        raise still_processing(name)
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise ApiError.forbidden(f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed '
                                 "is negative", "policy", "poddisruptionbudgets", name)
    disrupted = dict(status.get("disruptedPods") or {})
    if len(disrupted) > MAX_DISRUPTED_POD_SIZE:
        raise ApiError.forbidden(f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map too big - '
                                 "too many evictions not confirmed by PDB controller",
                                 "policy", "poddisruptionbudgets", name)
    if allowed == 0:
        raise too_many_requests(f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} "
                                f"healthy pods and has {int(status.get('currentHealthy') or 0)} currently")
    status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        status = with_disruption_allowed_condition(status, now)
    if dry_run:
        return None
    # Tells the controller the pod is on its way out, so it is not counted healthy meanwhile.
    disrupted[pod_name] = rfc3339(now)
    status["disruptedPods"] = disrupted
    return {**pdb, "status": status}
