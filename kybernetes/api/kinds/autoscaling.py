"""HorizontalPodAutoscalers."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map
from kybernetes.api.errors import FieldError, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_int,
    as_str,
    column,
    dict_at,
    doc,
    get_path,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import as_list, enum_errors, is_int

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_hpa(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
    for key in ("kind", "name"):
        if not ref.get(key):
            errs.append(required(f"spec.scaleTargetRef.{key}"))
    min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas")
    if min_replicas is not None and (not is_int(min_replicas) or min_replicas < 1):
        errs.append(invalid("spec.minReplicas", min_replicas, "must be greater than or equal to 1"))
    if not is_int(max_replicas) or max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    elif is_int(min_replicas) and max_replicas < min_replicas:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"))
    for i, metric in enumerate(as_list(spec.get("metrics"))):
        if isinstance(metric, dict):
            errs += enum_errors(f"spec.metrics[{i}].type", metric.get("type"),
                          ["ContainerResource", "External", "Object", "Pods", "Resource"])
    return errs


def _hpa_rules(given: Any, defaults: Obj) -> Obj:
    rules = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
            if given.get(key) is not None:
                rules[key] = given[key]
    return rules


_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                          {"type": "Percent", "value": 100, "periodSeconds": 15}]}


# No stabilization window: the controller's command-line default applies then.
_SCALE_DOWN = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _default_hpa(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _hpa_rules(behavior.get("scaleUp"), _SCALE_UP)
        behavior["scaleDown"] = _hpa_rules(behavior.get("scaleDown"), _SCALE_DOWN)


def _columns_hpa() -> list[dict[str, Any]]:
    spec, status = "autoscaling.v2.HorizontalPodAutoscalerSpec", "autoscaling.v2.HorizontalPodAutoscalerStatus"
    return [
        name_column(),
        column("Reference", doc(spec, "scaleTargetRef")),
        column("Targets", doc(spec, "metrics")),
        column("MinPods", doc(spec, "minReplicas")),
        column("MaxPods", doc(spec, "maxReplicas")),
        column("Replicas", doc(status, "currentReplicas")),
        age_column(),
    ]


def _cells_hpa(obj: Obj, now: datetime) -> Cells:
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    ref = dict_at(spec, "scaleTargetRef")
    min_pods = "<unset>" if spec.get("minReplicas") is None else str(as_int(spec.get("minReplicas")))
    return [name_of(obj), f"{as_str(ref.get('kind'))}/{as_str(ref.get('name'))}",
            hpa_targets(list_at(spec, "metrics"), list_at(status, "currentMetrics")), min_pods,
            as_int(spec.get("maxReplicas")), as_int(status.get("currentReplicas")), age_of(obj, now)]


def _metric_target(target: Mapping[str, Any], current: Mapping[str, Any] | None, prefix: str,
                   utilization: bool) -> str:
    if target.get("averageValue") is not None:
        now_value = as_str((current or {}).get("averageValue")) or "<unknown>"
        return f"{prefix}{now_value}/{target['averageValue']}" + ("" if prefix else " (avg)")
    if utilization:
        cur = (current or {}).get("averageUtilization")
        want = target.get("averageUtilization")
        return f"{prefix}{'<unknown>' if cur is None else f'{cur}%'}/{'<auto>' if want is None else f'{want}%'}"
    now_value = as_str((current or {}).get("value")) or "<unknown>"
    return f"{prefix}{now_value}/{as_str(target.get('value'))}"


def hpa_targets(specs: list[Any], statuses: list[Any]) -> str:
    """The TARGETS column of an autoscaling/v2 HorizontalPodAutoscaler."""
    if not specs:
        return "<none>"
    items: list[str] = []
    for i, spec in enumerate(specs):
        status = statuses[i] if i < len(statuses) and isinstance(statuses[i], Mapping) else {}
        mtype = spec.get("type") if isinstance(spec, Mapping) else None
        if mtype == "Pods":
            cur = get_path(status, "pods", "current", "averageValue")
            items.append(f"{as_str(cur) or '<unknown>'}/{as_str(get_path(spec, 'pods', 'target', 'averageValue'))}")
        elif mtype in ("Object", "External"):
            key = mtype.lower()
            items.append(_metric_target(dict_at(spec, key, "target"), dict_at(status, key, "current") or None, "", False))
        elif mtype in ("Resource", "ContainerResource"):
            key = "resource" if mtype == "Resource" else "containerResource"
            prefix = f"{as_str(get_path(spec, key, 'name'))}: "
            items.append(_metric_target(dict_at(spec, key, "target"), dict_at(status, key, "current") or None, prefix, True))
        else:
            items.append("<unknown type>")
    text = ", ".join(items[:2])
    return f"{text} + {len(items) - 2} more..." if len(items) > 2 else text


# -- strategies ---------------------------------------------------------------------------

class HorizontalPodAutoscalerStrategy(KindStrategy):
    refs = (KindRef("autoscaling", "HorizontalPodAutoscaler"),)
    always_present = {("status", "desiredReplicas"): 0}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_hpa(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_hpa(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_hpa()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_hpa(obj, now)
