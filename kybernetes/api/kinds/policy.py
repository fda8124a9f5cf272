"""Policy kinds: LimitRanges, ResourceQuotas, PodDisruptionBudgets and PriorityClasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api import priority
from kybernetes.api.defaults import as_map, child_map, dicts, set_default
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, required
from kybernetes.api.kinds.base import CreatedAtStrategy, KindRef, KindStrategy
from kybernetes.api.names import qualified_name_errors
from kybernetes.api.quantity import parse_quantity
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
    int_or_string,
    name_column,
    name_of,
)
from kybernetes.api.validation import (
    GoValue,
    _resource_name_errors,
    as_dict,
    as_list,
    canonical_quantity,
    enum_errors,
    immutable,
    is_int,
    validate_int_or_percent,
    validate_label_selector,
    validate_resource_list,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


def _limit_resource_name_errors(kind: Any) -> Any:
    """Upstream's validateLimitRangeResourceName: a Container or Pod item names container
    resources; a claim's item any standard resource."""
    def rule(name: str) -> list[str]:
        msgs = _resource_name_errors(name)
        if kind in ("Container", "Pod") and "/" not in name and name not in _CONTAINER_RESOURCES \
                and not name.startswith("hugepages-"):
            msgs.append("must be a standard resource for containers")
        return msgs
    return rule


def _go_float(value: float) -> str:
    return f"{value:f}"


def _limit_item_errors(p: str, item: Obj) -> Errors:
    """The cross-field rules of one item (upstream's ValidateLimitRange), per resource name."""
    errs: Errors = []
    amounts: dict[str, dict[str, Any]] = {}
    for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        for name, value in as_dict(item.get(key)).items():
            q = parse_quantity(value)
            if q is not None:
                amounts.setdefault(name, {})[key] = (q, value)
    for name in sorted(amounts):
        a = amounts[name]
        mn, mx, df, dr, ratio = (a.get(k) for k in ("min", "max", "default", "defaultRequest",
                                                    "maxLimitRequestRatio"))
        text = {k: canonical_quantity(v[1]) or str(v[1]) for k, v in a.items()}
        if mn and mx and mn[0] > mx[0]:
            errs.append(invalid(f"{p}.min[{name}]", text["min"],
                                f"min value {text['min']} is greater than max value {text['max']}"))
        if dr and mn and mn[0] > dr[0]:
            errs.append(invalid(f"{p}.defaultRequest[{name}]", text["defaultRequest"],
                                f"min value {text['min']} is greater than default request value "
                                f"{text['defaultRequest']}"))
        if dr and mx and dr[0] > mx[0]:
            errs.append(invalid(f"{p}.defaultRequest[{name}]", text["defaultRequest"],
                                f"default request value {text['defaultRequest']} is greater than max value "
                                f"{text['max']}"))
        if dr and df and dr[0] > df[0]:
            errs.append(invalid(f"{p}.defaultRequest[{name}]", text["defaultRequest"],
                                f"default request value {text['defaultRequest']} is greater than default limit "
                                f"value {text['default']}"))
        if df and mn and mn[0] > df[0]:
            errs.append(invalid(f"{p}.default[{name}]", text["min"],
                                f"min value {text['min']} is greater than default value {text['default']}"))
        if df and mx and df[0] > mx[0]:
            errs.append(invalid(f"{p}.default[{name}]", text["max"],
                                f"default value {text['default']} is greater than max value {text['max']}"))
        if ratio and ratio[0] < 1:
            errs.append(invalid(f"{p}.maxLimitRequestRatio[{name}]", text["maxLimitRequestRatio"],
                                f"ratio {text['maxLimitRequestRatio']} is less than 1"))
        if ratio and mn and mx and mn[0] > 0:
            bound = float(mx[0] / mn[0])
            if float(ratio[0]) > bound:
                errs.append(invalid(f"{p}.maxLimitRequestRatio[{name}]", text["maxLimitRequestRatio"],
                                    f"ratio {text['maxLimitRequestRatio']} is greater than max/min = "
                                    f"{_go_float(bound)}"))
        # Resources that cannot be overcommitted (extended ones, hugepages) need
        # default == defaultRequest.
        overcommit = name in _CONTAINER_RESOURCES or name == "storage" or (
            "/" in name and "kubernetes.io/" in name)
        if not overcommit and df and dr and df[0] != dr[0]:
            errs.append(invalid(f"{p}.defaultRequest[{name}]", text["defaultRequest"],
                                f"default value {text['default']} must equal to defaultRequest value "
                                f"{text['defaultRequest']} in {name}"))
    return errs


def _validate_limit_range(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    seen: set[Any] = set()
    for i, item in enumerate(as_list(as_dict(obj.get("spec")).get("limits"))):
        if not isinstance(item, dict):
            continue
        p = f"spec.limits[{i}]"
        kind = item.get("type")
        errs += enum_errors(f"{p}.type", kind, ["Container", "Pod", "PersistentVolumeClaim"])
        if kind in seen and isinstance(kind, str):
            errs.append(duplicate(f"{p}.type", kind))
        seen.add(kind if isinstance(kind, str) else None)
        rule = _limit_resource_name_errors(kind)
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            if kind == "Pod" and key in ("default", "defaultRequest"):
                if as_dict(item.get(key)):
                    errs.append(forbidden(f"{p}.{key}", "may not be specified when `type` is 'Pod'"))
                continue
            errs += validate_resource_list(f"{p}.{key}", item.get(key), name_rule=rule)
        if kind == "PersistentVolumeClaim" and "storage" not in as_dict(item.get("min")) \
                and "storage" not in as_dict(item.get("max")):
            errs.append(required(f"{p}.limits", "either minimum or maximum storage value is required, "
                                                "but neither was provided"))
        errs += _limit_item_errors(p, item)
    return errs


# Upstream's two name sets: what the system knows at all, and what quota can track. A name
# without a "/" must be in both; qualified names ("count/deployments.apps", "<class>.storageclass
# .storage.k8s.io/requests.storage", "requests.nvidia.com/gpu") only need to be qualified names.
_COUNTED_RESOURCES = frozenset({
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
})
_QUOTA_RESOURCES = _COUNTED_RESOURCES | {
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
}
_KNOWN_RESOURCES = _QUOTA_RESOURCES | {"storage"}


def _is_quota_hugepages(name: str) -> bool:
    return name.startswith(("hugepages-", "requests.hugepages-"))


def quota_resource_name_errors(name: str) -> list[str]:
    """Messages for a ResourceQuota `spec.hard` key, in upstream's order."""
    msgs = qualified_name_errors(name)
    if msgs or "/" in name:
        return msgs
    if name not in _KNOWN_RESOURCES and not _is_quota_hugepages(name):
        msgs.append("must be a standard resource type or fully qualified")
    if name not in _QUOTA_RESOURCES and not _is_quota_hugepages(name):
        msgs.append("must be a standard resource for quota")
    return msgs


def _is_extended_resource(name: str) -> bool:
    native = "/" not in name or "kubernetes.io/" in name
    return not native and not name.startswith("requests.") and not qualified_name_errors("requests." + name)


def is_integer_quota_resource(name: str) -> bool:
    """Object counts and extended resources (count/*, vendor.com/gpu) only take whole numbers."""
    return name in _COUNTED_RESOURCES or _is_extended_resource(name)


def _validate_resource_quota(info: ResourceInfo, obj: Obj) -> Errors:
    return validate_resource_list("spec.hard", as_dict(obj.get("spec")).get("hard"),
                                  name_rule=quota_resource_name_errors, integer_rule=is_integer_quota_resource)


def _validate_pdb(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(invalid("spec", GoValue("policy.PodDisruptionBudgetSpec{...}"),
                            "minAvailable and maxUnavailable cannot be both set"))
    errs += validate_int_or_percent("spec.minAvailable", spec.get("minAvailable"))
    errs += validate_int_or_percent("spec.maxUnavailable", spec.get("maxUnavailable"))
    if spec.get("selector") is not None:
        errs += validate_label_selector("spec.selector", spec.get("selector"))
    errs += enum_errors("spec.unhealthyPodEvictionPolicy", spec.get("unhealthyPodEvictionPolicy"),
                  ["AlwaysAllow", "IfHealthyBudget"], required_when_empty=False)
    return errs


_MAX_USER_PRIORITY = 1_000_000_000


def _validate_priority_class(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    name = as_dict(obj.get("metadata")).get("name") or ""
    value = obj.get("value")
    if not is_int(value):
        errs.append(required("value"))
    elif name.startswith(priority.SYSTEM_PREFIX):
        errs += priority.system_class_errors(name, value, obj.get("globalDefault"))
    elif value > _MAX_USER_PRIORITY:
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is {_MAX_USER_PRIORITY}"))
    errs += enum_errors("preemptionPolicy", obj.get("preemptionPolicy"), ["Never", "PreemptLowerPriority"],
                  required_when_empty=False)
    return errs


def _validate_priority_class_update(new: Obj, old: Obj) -> Errors:
    errs: Errors = []
    if new.get("value") != old.get("value"):
        errs.append(forbidden("value", "may not be changed in an update."))
    errs += immutable("preemptionPolicy", new.get("preemptionPolicy"), old.get("preemptionPolicy"))
    return errs


def _default_limit_range(obj: Obj) -> None:
    for item in dicts(child_map(obj, "spec").get("limits")):
        if item.get("type") != "Container":
            continue
        default = child_map(item, "default")
        request = child_map(item, "defaultRequest")
        for name, value in as_map(item.get("max")).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in as_map(item.get("min")).items():
            request.setdefault(name, value)


def _default_priority_class(obj: Obj) -> None:
    set_default(obj, "preemptionPolicy", "PreemptLowerPriority")
    if obj.get("globalDefault") is False:
        del obj["globalDefault"]  # omitempty: kube-apiserver never writes a false one


def _columns_pdb() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Min Available", "The minimum number of pods that must be available."),
        column("Max Unavailable", "The maximum number of pods that may be unavailable."),
        column("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", "integer"),
        age_column(),
    ]


def _columns_resourcequota() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
        column("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent "
                      "of contention on the node."),
        age_column(),
    ]


def _columns_priorityclass() -> list[dict[str, Any]]:
    pc = "scheduling.v1.PriorityClass"
    return [
        name_column(),
        column("Value", doc(pc, "value"), "integer"),
        column("Global-Default", doc(pc, "globalDefault"), "boolean"),
        age_column(),
        column("PreemptionPolicy", doc(pc, "preemptionPolicy")),
    ]


def _cells_pdb(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    min_available = "N/A" if spec.get("minAvailable") is None else int_or_string(spec["minAvailable"])
    max_unavailable = "N/A" if spec.get("maxUnavailable") is None else int_or_string(spec["maxUnavailable"])
    return [name_of(obj), min_available, max_unavailable, as_int(get_path(obj, "status", "disruptionsAllowed")),
            age_of(obj, now)]


def _cells_resourcequota(obj: Obj, now: datetime) -> Cells:
    hard, used = dict_at(obj, "status", "hard"), dict_at(obj, "status", "used")
    requests, limits = [], []
    for resource in sorted(hard):
        text = f"{resource}: {as_str(used.get(resource)) or '0'}/{as_str(hard[resource])}"
        (limits if resource.split(".")[0] == "limits" and "." in resource else requests).append(text)
    return [name_of(obj), ", ".join(requests), ", ".join(limits), age_of(obj, now)]


def _cells_priorityclass(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), as_int(obj.get("value")), bool(obj.get("globalDefault")), age_of(obj, now),
            as_str(obj.get("preemptionPolicy"))]


# -- strategies ---------------------------------------------------------------------------

class LimitRangeStrategy(CreatedAtStrategy):
    refs = (KindRef("", "LimitRange"),)
    counts_generation = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_limit_range(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_limit_range(info, obj)


class ResourceQuotaStrategy(KindStrategy):
    refs = (KindRef("", "ResourceQuota"),)
    counts_generation = False
    delete_returns_object = True

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_resource_quota(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_resourcequota()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_resourcequota(obj, now)


class PodDisruptionBudgetStrategy(KindStrategy):
    refs = (KindRef("policy", "PodDisruptionBudget"),)
    always_present = {
        ("status", "disruptionsAllowed"): 0,
        ("status", "currentHealthy"): 0,
        ("status", "desiredHealthy"): 0,
        ("status", "expectedPods"): 0,
    }

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_pdb(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_pdb()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_pdb(obj, now)


class PriorityClassStrategy(KindStrategy):
    refs = (KindRef("scheduling.k8s.io", "PriorityClass"),)
    counts_generation = True
    always_present = {("value",): 0}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_priority_class(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_priority_class(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_priority_class_update(new, old)

    def check_delete(self, obj: Obj) -> None:
        priority.check_priority_class_delete(as_dict(obj.get("metadata")).get("name") or "")

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_priorityclass()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_priorityclass(obj, now)
