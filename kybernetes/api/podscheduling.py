"""The API server's rules for a pod's scheduling fields: the `PodScheduled=False /
SchedulingGated` condition and the `matchLabelKeys` selector merges a new pod gets
(upstream's pod strategy, PrepareForCreate), and what an update may change of the
scheduling fields (gates are only removed; a gated pod's nodeSelector may only grow, its
required node affinity only narrow). The fields themselves are validated in
`schedulingspec`, with every pod spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kybernetes.api.errors import FieldError, forbidden, invalid
from kybernetes.api.validation import as_dict, as_list, json_value

Obj = dict[str, Any]
Errors = list[FieldError]

GATED_REASON = "SchedulingGated"
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


# -- on create ------------------------------------------------------------------------------

def apply_scheduling_gated_condition(pod: Obj, now: str) -> None:
    """A new pod with gates says why it waits, unless its creator already wrote a
    PodScheduled condition."""
    spec = as_dict(pod.get("spec"))
    if not as_list(spec.get("schedulingGates")):
        return
    status = pod.get("status")
    if not isinstance(status, dict):
        status = pod["status"] = {}
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        conditions = status["conditions"] = []
    if any(isinstance(c, dict) and c.get("type") == "PodScheduled" for c in conditions):
        return
    conditions.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                       "lastTransitionTime": now, "reason": GATED_REASON, "message": GATED_MESSAGE})


def _merge_label_keys(selector: Any, keys: Any, operator: str, labels: Mapping[str, Any]) -> None:
    # A missing selector selects nothing, and stays so.
    if not isinstance(selector, dict):
        return
    extra = [{"key": k, "operator": operator, "values": [labels[k]]}
             for k in as_list(keys) if isinstance(k, str) and isinstance(labels.get(k), str)]
    if extra:
        selector["matchExpressions"] = as_list(selector.get("matchExpressions")) + extra


def merge_match_label_keys(pod: Obj) -> None:
    """Fold `matchLabelKeys` / `mismatchLabelKeys` into the label selectors of the pod's
    inter-pod (anti-)affinity terms and topology spread constraints, with the values of
    the pod's own labels: a pod's selectors then say on their own which pods they mean
    (MatchLabelKeysInPodAffinity, MatchLabelKeysInPodTopologySpreadSelectorMerge)."""
    spec = as_dict(pod.get("spec"))
    labels = as_dict(as_dict(pod.get("metadata")).get("labels"))
    if not labels:
        return
    affinity = as_dict(spec.get("affinity"))
    for kind in ("podAffinity", "podAntiAffinity"):
        section = as_dict(affinity.get(kind))
        terms = [t for t in as_list(section.get("requiredDuringSchedulingIgnoredDuringExecution"))
                 if isinstance(t, dict)]
        terms += [as_dict(w.get("podAffinityTerm")) for w in
                  as_list(section.get("preferredDuringSchedulingIgnoredDuringExecution")) if isinstance(w, dict)]
        for term in terms:
            _merge_label_keys(term.get("labelSelector"), term.get("matchLabelKeys"), "In", labels)
            _merge_label_keys(term.get("labelSelector"), term.get("mismatchLabelKeys"), "NotIn", labels)
    for c in as_list(spec.get("topologySpreadConstraints")):
        if isinstance(c, dict):
            _merge_label_keys(c.get("labelSelector"), c.get("matchLabelKeys"), "In", labels)


# -- validation -----------------------------------------------------------------------------

def validate_pod_scheduling(spec: Any) -> Errors:
    """What a Pod, unlike a pod template, may not combine: a node given by hand and gates
    (the gates and spread constraints themselves are checked with every pod spec, in
    `schedulingspec`)."""
    spec = as_dict(spec)
    if spec.get("nodeName") and as_list(spec.get("schedulingGates")):
        return [forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared")]
    return []


def validate_gates_update(new_spec: Mapping[str, Any], old_spec: Mapping[str, Any]) -> Errors:
    """Gates may be removed, never added (validateOnlyDeletedSchedulingGates)."""
    old_names = {as_dict(g).get("name") for g in as_list(old_spec.get("schedulingGates"))}
    errs: Errors = []
    for i, gate in enumerate(as_list(new_spec.get("schedulingGates"))):
        name = as_dict(gate).get("name")
        if name not in old_names:
            errs.append(forbidden(f"spec.schedulingGates[{i}].name",
                                  f"only deletion is allowed, but found new scheduling gate '{name}'"))
    return errs


def _required_terms(node_affinity: Any) -> list[Any] | None:
    required_sel = as_dict(node_affinity).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required_sel is None:
        return None
    return as_list(as_dict(required_sel).get("nodeSelectorTerms"))


def _requirement_counts(term: Any, key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for req in as_list(as_dict(term).get(key)):
        canonical = json_value(req).text
        counts[canonical] = counts.get(canonical, 0) + 1
    return counts


def _only_additions(new_term: Any, old_term: Any) -> bool:
    for key in ("matchExpressions", "matchFields"):
        new, old = _requirement_counts(new_term, key), _requirement_counts(old_term, key)
        if any(new.get(req, 0) < n for req, n in old.items()):
            return False
    return True


def gated_node_affinity_update(new_spec: Mapping[str, Any], old_spec: Mapping[str, Any]) -> tuple[bool, Errors]:
    """While a pod is gated its node affinity may change, but required terms only narrow:
    none added or removed once there are some, and each keeps its requirements, gaining
    more (validateNodeAffinityMutation). Returns (whether the update's node affinity is to
    be taken as allowed, errors)."""
    if not as_list(old_spec.get("schedulingGates")):
        return False, []
    new_aff = as_dict(new_spec.get("affinity")).get("nodeAffinity")
    old_aff = as_dict(old_spec.get("affinity")).get("nodeAffinity")
    if new_aff == old_aff:
        return False, []
    old_terms = _required_terms(old_aff)
    if not old_terms:
        return True, []
    new_terms = _required_terms(new_aff) or []
    path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
    if len(new_terms) != len(old_terms):
        return True, [invalid(path, json_value(new_terms),
                              "no additions/deletions to non-empty NodeSelectorTerms list are allowed")]
    return True, [invalid(f"{path}[{i}]", json_value(new), "only additions are allowed (no mutations or deletions)")
                  for i, (new, old) in enumerate(zip(new_terms, old_terms, strict=True))
                  if not _only_additions(new, old)]


def gated_node_selector_update(new_spec: Mapping[str, Any], old_spec: Mapping[str, Any]) -> tuple[bool, Errors]:
    """While a pod is gated its nodeSelector may gain entries (how queueing systems pick
    where a batch runs before releasing it): (whether the update's nodeSelector is to be
    taken as allowed, errors for changed or removed entries)."""
    if not as_list(old_spec.get("schedulingGates")):
        return False, []
    new_sel, old_sel = new_spec.get("nodeSelector"), as_dict(old_spec.get("nodeSelector"))
    if new_sel is None or new_sel == old_spec.get("nodeSelector"):
        return False, []
    new_sel = as_dict(new_sel)
    for key, value in old_sel.items():
        if new_sel.get(key) != value:
            return True, [invalid("spec.nodeSelector", json_value(new_sel),
                                  "only additions to spec.nodeSelector are allowed (no mutations or deletions)")]
    return True, []
