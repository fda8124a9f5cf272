"""HorizontalPodAutoscalers: autoscaling/v2 (stored) and autoscaling/v1, and the conversion between them."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

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


# -- autoscaling/v1 <-> autoscaling/v2 ------------------------------------------------------
#
# v2 is the stored version. What v1 cannot say (metrics other than a CPU utilization
# target, raw metric statuses, the behavior, the conditions) travels in annotations,
# so a v1 client that reads an object and writes it back loses nothing; the names and
# encodings are upstream's (pkg/apis/autoscaling/annotations.go, v1/conversion.go), so
# objects and clients written against a real server keep working.

METRIC_SPECS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
METRIC_STATUSES_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
_TOLERANCE_ANNOTATIONS = ("autoscaling.alpha.kubernetes.io/scale-down-tolerance",
                          "autoscaling.alpha.kubernetes.io/scale-up-tolerance")
ROUND_TRIP_ANNOTATIONS = (METRIC_SPECS_ANNOTATION, BEHAVIOR_ANNOTATION, *_TOLERANCE_ANNOTATIONS,
                          METRIC_STATUSES_ANNOTATION, CONDITIONS_ANNOTATION)
DEFAULT_CPU_UTILIZATION = 80


def _present(d: Any, key: str) -> Any:
    return d.get(key) if isinstance(d, Mapping) else None


def _put(out: Obj, key: str, value: Any) -> None:
    """Set `key` when `value` is set (Go's omitempty on a pointer)."""
    if value is not None:
        out[key] = value


def _ref(ref: Any) -> Obj:
    """A CrossVersionObjectReference: kind and name always, apiVersion when set."""
    out: Obj = {"kind": _present(ref, "kind") or "", "name": _present(ref, "name") or ""}
    _put(out, "apiVersion", _present(ref, "apiVersion"))
    return out


def _is_cpu_utilization(metric: Any) -> bool:
    return (_present(metric, "type") == "Resource" and _present(_present(metric, "resource"), "name") == "cpu"
            and _present(get_path(metric, "resource", "target"), "averageUtilization") is not None)


def _identifier(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _put(out, "selector", selector)
    return out


# The four metric converters below look alike but follow four Go structs: a spec's and a
# status's fields come in different orders (the wire samples pin them byte for byte), a v2
# target names its type, and v1 status quantities are values, not pointers ("0" when unset).
def _metric_spec_to_v1(m: Mapping[str, Any]) -> Obj:
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), Mapping):
        src, target = m["object"], dict_at(m, "object", "target")
        obj: Obj = {"target": _ref(src.get("describedObject")), "metricName": get_path(src, "metric", "name") or "",
                    "targetValue": target.get("value") or "0"}
        _put(obj, "selector", get_path(src, "metric", "selector"))
        _put(obj, "averageValue", target.get("averageValue"))
        out["object"] = obj
    if isinstance(m.get("pods"), Mapping):
        src = m["pods"]
        pods: Obj = {"metricName": get_path(src, "metric", "name") or "",
                     "targetAverageValue": get_path(src, "target", "averageValue") or "0"}
        _put(pods, "selector", get_path(src, "metric", "selector"))
        out["pods"] = pods
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), Mapping):
            src, target = m[key], dict_at(m, key, "target")
            res: Obj = {"name": src.get("name") or ""}
            _put(res, "targetAverageUtilization", target.get("averageUtilization"))
            _put(res, "targetAverageValue", target.get("averageValue"))
            if key == "containerResource":
                res["container"] = src.get("container") or ""
            out[key] = res
    if isinstance(m.get("external"), Mapping):
        src, target = m["external"], dict_at(m, "external", "target")
        ext: Obj = {"metricName": get_path(src, "metric", "name") or ""}
        _put(ext, "metricSelector", get_path(src, "metric", "selector"))
        _put(ext, "targetValue", target.get("value"))
        _put(ext, "targetAverageValue", target.get("averageValue"))
        out["external"] = ext
    return out


def _metric_spec_to_v2(m: Mapping[str, Any]) -> Obj:
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), Mapping):
        src = m["object"]
        target: Obj = {"type": "Value" if src.get("averageValue") is None else "AverageValue",
                       "value": src.get("targetValue") or "0"}
        _put(target, "averageValue", src.get("averageValue"))
        out["object"] = {"describedObject": _ref(src.get("target")),
                         "target": target, "metric": _identifier(src.get("metricName"), src.get("selector"))}
    if isinstance(m.get("pods"), Mapping):
        src = m["pods"]
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "target": {"type": "AverageValue", "averageValue": src.get("targetAverageValue") or "0"}}
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), Mapping):
            src = m[key]
            utilization = src.get("targetAverageUtilization")
            target = {"type": "AverageValue" if utilization is None else "Utilization"}
            _put(target, "averageValue", src.get("targetAverageValue"))
            _put(target, "averageUtilization", utilization)
            res: Obj = {"name": src.get("name") or "", "target": target}
            if key == "containerResource":
                res["container"] = src.get("container") or ""
            out[key] = res
    if isinstance(m.get("external"), Mapping):
        src = m["external"]
        target = {"type": "AverageValue" if src.get("targetValue") is None else "Value"}
        _put(target, "value", src.get("targetValue"))
        _put(target, "averageValue", src.get("targetAverageValue"))
        out["external"] = {"metric": _identifier(src.get("metricName"), src.get("metricSelector")),
                           "target": target}
    return out


def _metric_status_to_v1(m: Mapping[str, Any]) -> Obj:
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), Mapping):
        src, cur = m["object"], dict_at(m, "object", "current")
        obj: Obj = {"target": _ref(src.get("describedObject")), "metricName": get_path(src, "metric", "name") or "",
                    "currentValue": cur.get("value") or "0"}
        _put(obj, "selector", get_path(src, "metric", "selector"))
        _put(obj, "averageValue", cur.get("averageValue"))
        out["object"] = obj
    if isinstance(m.get("pods"), Mapping):
        src = m["pods"]
        pods: Obj = {"metricName": get_path(src, "metric", "name") or "",
                     "currentAverageValue": get_path(src, "current", "averageValue") or "0"}
        _put(pods, "selector", get_path(src, "metric", "selector"))
        out["pods"] = pods
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), Mapping):
            src, cur = m[key], dict_at(m, key, "current")
            res: Obj = {"name": src.get("name") or ""}
            _put(res, "currentAverageUtilization", cur.get("averageUtilization"))
            res["currentAverageValue"] = cur.get("averageValue") or "0"
            if key == "containerResource":
                res["container"] = src.get("container") or ""
            out[key] = res
    if isinstance(m.get("external"), Mapping):
        src, cur = m["external"], dict_at(m, "external", "current")
        ext: Obj = {"metricName": get_path(src, "metric", "name") or ""}
        _put(ext, "metricSelector", get_path(src, "metric", "selector"))
        ext["currentValue"] = cur.get("value") or "0"
        _put(ext, "currentAverageValue", cur.get("averageValue"))
        out["external"] = ext
    return out


def _metric_status_to_v2(m: Mapping[str, Any]) -> Obj:
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), Mapping):
        src = m["object"]
        cur: Obj = {"value": src.get("currentValue") or "0"}
        _put(cur, "averageValue", src.get("averageValue"))
        out["object"] = {"metric": _identifier(src.get("metricName"), src.get("selector")), "current": cur,
                         "describedObject": _ref(src.get("target"))}
    if isinstance(m.get("pods"), Mapping):
        src = m["pods"]
        out["pods"] = {"metric": _identifier(src.get("metricName"), src.get("selector")),
                       "current": {"averageValue": src.get("currentAverageValue") or "0"}}
    for key in ("resource", "containerResource"):
        if isinstance(m.get(key), Mapping):
            src = m[key]
            cur = {"averageValue": src.get("currentAverageValue") or "0"}
            _put(cur, "averageUtilization", src.get("currentAverageUtilization"))
            res: Obj = {"name": src.get("name") or "", "current": cur}
            if key == "containerResource":
                res["container"] = src.get("container") or ""
            out[key] = res
    if isinstance(m.get("external"), Mapping):
        src = m["external"]
        cur = {"value": src.get("currentValue") or "0"}
        _put(cur, "averageValue", src.get("currentAverageValue"))
        out["external"] = {"metric": _identifier(src.get("metricName"), src.get("metricSelector")), "current": cur}
    return out


# The behavior annotation holds upstream's internal Go struct marshalled without json
# tags: Go field names, nil pointers as null. Go reads keys back case-insensitively.
_RULE_FIELDS = (("StabilizationWindowSeconds", "stabilizationWindowSeconds"), ("SelectPolicy", "selectPolicy"),
                ("Policies", "policies"), ("Tolerance", "tolerance"))
_POLICY_FIELDS = (("Type", "type"), ("Value", "value"), ("PeriodSeconds", "periodSeconds"))


def _behavior_to_annotation(behavior: Mapping[str, Any]) -> Obj:
    def rules(r: Any) -> Obj | None:
        if not isinstance(r, Mapping):
            return None
        out: Obj = {go: r.get(js) for go, js in _RULE_FIELDS}
        if isinstance(out["Policies"], list):
            out["Policies"] = [{go: p.get(js, "" if js == "type" else 0) for go, js in _POLICY_FIELDS}
                               for p in out["Policies"] if isinstance(p, Mapping)]
        return out
    return {"ScaleUp": rules(behavior.get("scaleUp")), "ScaleDown": rules(behavior.get("scaleDown"))}


def _get_ci(d: Any, name: str) -> Any:
    if not isinstance(d, Mapping):
        return None
    if name in d:
        return d[name]
    lowered = name.lower()
    return next((v for k, v in d.items() if isinstance(k, str) and k.lower() == lowered), None)


def _behavior_from_annotation(raw: str) -> Obj | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None

    def rules(r: Any) -> Obj | None:
        if not isinstance(r, Mapping):
            return None
        out: Obj = {}
        for go, js in _RULE_FIELDS:
            value = _get_ci(r, go)
            if value is None:
                continue
            if js == "policies":
                if not isinstance(value, list):
                    continue
                value = [{js2: _get_ci(p, go2) if _get_ci(p, go2) is not None else ("" if js2 == "type" else 0)
                          for go2, js2 in _POLICY_FIELDS} for p in value if isinstance(p, Mapping)]
            out[js] = value
        return out
    out: Obj = {}
    for go, js in (("ScaleUp", "scaleUp"), ("ScaleDown", "scaleDown")):
        converted = rules(_get_ci(data, go))
        if converted is not None:
            out[js] = converted
    return out or None


def _annotation_list(annotations: Mapping[str, Any], key: str) -> list[Any] | None:
    raw = annotations.get(key)
    if not isinstance(raw, str):
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # upstream ignores an annotation it cannot decode
    return [m for m in data if isinstance(m, Mapping)] if isinstance(data, list) else None


def _without_round_trip(meta: Obj) -> Obj:
    """`meta` with the round-trip annotations gone (and no empty annotations left)."""
    annotations = meta.get("annotations")
    if not isinstance(annotations, Mapping) or not any(k in annotations for k in ROUND_TRIP_ANNOTATIONS):
        return meta
    meta = dict(meta)
    kept = {k: v for k, v in annotations.items() if k not in ROUND_TRIP_ANNOTATIONS}
    if kept:
        meta["annotations"] = kept
    else:
        meta.pop("annotations", None)
    return meta


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def hpa_to_v1(obj: Obj) -> Obj:
    """An autoscaling/v2 HorizontalPodAutoscaler as autoscaling/v1 (upstream's
    Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler). Shares
    unchanged subtrees with `obj`; `obj` itself is not modified."""
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    metrics = [m for m in list_at(spec, "metrics") if isinstance(m, Mapping)]
    current = [m for m in list_at(status, "currentMetrics") if isinstance(m, Mapping)]
    conditions = [c for c in list_at(status, "conditions") if isinstance(c, Mapping)]
    out_spec: Obj = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(out_spec, "minReplicas", spec.get("minReplicas"))
    out_spec["maxReplicas"] = spec.get("maxReplicas") or 0
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    if cpu is not None:
        out_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"]["averageUtilization"]
    out_status: Obj = {}
    _put(out_status, "observedGeneration", status.get("observedGeneration"))
    _put(out_status, "lastScaleTime", status.get("lastScaleTime"))
    out_status["currentReplicas"] = status.get("currentReplicas") or 0
    out_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    for m in current:  # no break upstream: the last CPU utilization wins
        if m.get("type") == "Resource" and get_path(m, "resource", "name") == "cpu":
            _put(out_status, "currentCPUUtilizationPercentage", get_path(m, "resource", "current", "averageUtilization"))
    meta = _without_round_trip(dict_at(obj, "metadata"))
    extra: Obj = {}
    others = [_metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        extra[METRIC_SPECS_ANNOTATION] = _dumps(others)
    if current:
        extra[METRIC_STATUSES_ANNOTATION] = _dumps([_metric_status_to_v1(m) for m in current])
    if isinstance(spec.get("behavior"), Mapping):
        extra[BEHAVIOR_ANNOTATION] = _dumps(_behavior_to_annotation(spec["behavior"]))
    if conditions:
        extra[CONDITIONS_ANNOTATION] = _dumps([_condition(c) for c in conditions])
    if extra:
        meta = dict(meta)
        meta["annotations"] = {**(meta.get("annotations") or {}), **extra}
    out: Obj = {k: v for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"] = "autoscaling/v1"
    out["metadata"] = meta
    out["spec"] = out_spec
    out["status"] = out_status
    return out


def _condition(c: Mapping[str, Any]) -> Obj:
    out: Obj = {"type": c.get("type") or "", "status": c.get("status") or ""}
    for key in ("lastTransitionTime", "reason", "message"):
        _put(out, key, c.get(key))
    return out


def hpa_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HorizontalPodAutoscaler as autoscaling/v2 (upstream's
    Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler, v1
    defaulting included); the round-trip annotations become fields again."""
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    meta = dict_at(obj, "metadata")
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    out_spec: Obj = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    out_spec["minReplicas"] = spec.get("minReplicas") if spec.get("minReplicas") is not None else 1
    out_spec["maxReplicas"] = spec.get("maxReplicas") or 0
    metrics: list[Obj] = []
    others = _annotation_list(annotations, METRIC_SPECS_ANNOTATION)
    if others is not None:
        metrics = [_metric_spec_to_v2(m) for m in others]
    target = spec.get("targetCPUUtilizationPercentage")
    if target is not None:
        metrics.append(_cpu_metric(target))
    out_spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    raw_behavior = annotations.get(BEHAVIOR_ANNOTATION)
    behavior = _behavior_from_annotation(raw_behavior) if isinstance(raw_behavior, str) else None
    if behavior is not None:
        out_spec["behavior"] = behavior
    out_status: Obj = {}
    _put(out_status, "observedGeneration", status.get("observedGeneration"))
    _put(out_status, "lastScaleTime", status.get("lastScaleTime"))
    if status.get("currentReplicas"):
        out_status["currentReplicas"] = status["currentReplicas"]
    out_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    current = _annotation_list(annotations, METRIC_STATUSES_ANNOTATION)
    if current is not None:
        out_status["currentMetrics"] = [_metric_status_to_v2(m) for m in current]
    elif status.get("currentCPUUtilizationPercentage") is not None:
        out_status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    else:
        out_status["currentMetrics"] = None
    conditions = _annotation_list(annotations, CONDITIONS_ANNOTATION)
    if conditions:
        out_status["conditions"] = [_condition(c) for c in conditions]
    out: Obj = {k: v for k, v in obj.items() if k not in ("spec", "status")}
    out["apiVersion"] = "autoscaling/v2"
    out["metadata"] = _without_round_trip(meta)
    out["spec"] = out_spec
    out["status"] = out_status
    return out


def _cpu_metric(utilization: Any) -> Obj:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": utilization}}}


# -- strategies ---------------------------------------------------------------------------

class HorizontalPodAutoscalerStrategy(KindStrategy):
    refs = (KindRef("autoscaling", "HorizontalPodAutoscaler"),)
    # v2's currentMetrics has no omitempty: a new HPA reads `currentMetrics: null`.
    always_present = {("status", "desiredReplicas"): 0, ("status", "currentMetrics"): None}
    counts_generation = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_hpa(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_hpa(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_hpa()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_hpa(obj, now)

    def convert(self, obj: Obj, version: str, group: str | None = None) -> Obj:
        current = str(obj.get("apiVersion") or "").rpartition("/")[2]
        if current == version:
            return obj
        if version == "v1":
            return hpa_to_v1(obj)
        return hpa_to_v2(obj)
