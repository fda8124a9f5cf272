"""resource.k8s.io/v1, dynamic resource allocation: DeviceClasses, ResourceClaims,
ResourceClaimTemplates, ResourceSlices and DeviceTaintRules (GA in 1.37), defaulted,
validated and printed as upstream does. No DRA driver or allocator acts on them here yet: claims stay pending
until something writes their status.

CEL selector expressions are required but not compiled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.defaults import set_default
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    qualified_name_errors,
)
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_str,
    column,
    doc,
    get_path,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.timefmt import now_rfc3339
from kybernetes.api.validation import as_dict, as_list, enum_errors, immutable, name_errors

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

GROUP = "resource.k8s.io"
_ALLOCATION_MODES = ["All", "ExactCount"]
_TOLERATION_OPERATORS = ["Equal", "Exists"]
_TAINT_EFFECTS = ["NoExecute", "NoSchedule", "None"]
_MAX_REQUESTS = 32
_MAX_DEVICES_PER_SLICE = 128
_DRIVER_NAME_MAX = 63


# -- defaulting ---------------------------------------------------------------------------


def _default_request_body(body: Obj) -> None:
    set_default(body, "allocationMode", "ExactCount")
    if body.get("allocationMode") == "ExactCount":
        set_default(body, "count", 1)
    for tol in as_list(body.get("tolerations")):
        if isinstance(tol, dict):
            set_default(tol, "operator", "Equal")


def default_claim_spec(spec: Any) -> None:
    for request in as_list(get_path(spec, "devices", "requests")):
        if not isinstance(request, dict):
            continue
        if isinstance(request.get("exactly"), dict):
            _default_request_body(request["exactly"])
        for sub in as_list(request.get("firstAvailable")):
            if isinstance(sub, dict):
                _default_request_body(sub)


# -- validation ---------------------------------------------------------------------------


def _driver_errors(path: str, driver: Any) -> Errors:
    if not driver:
        return [required(path)]
    errs = name_errors(dns1123_subdomain_errors, path, driver)
    if len(str(driver)) > _DRIVER_NAME_MAX:
        errs.append(invalid(path, driver, f"must be no more than {_DRIVER_NAME_MAX} characters"))
    return errs


def _selectors_errors(path: str, selectors: Any) -> Errors:
    errs: Errors = []
    for i, sel in enumerate(as_list(selectors)):
        cel = as_dict(sel).get("cel")
        if cel is None:
            errs.append(required(f"{path}[{i}].cel"))
        elif not as_dict(cel).get("expression"):
            errs.append(required(f"{path}[{i}].cel.expression"))
    return errs


def _opaque_config_errors(path: str, config: Any) -> Errors:
    errs: Errors = []
    for i, entry in enumerate(as_list(config)):
        opaque = as_dict(entry).get("opaque")
        if opaque is None:
            errs.append(required(f"{path}[{i}].opaque"))
            continue
        errs += _driver_errors(f"{path}[{i}].opaque.driver", as_dict(opaque).get("driver"))
        if as_dict(opaque).get("parameters") is None:
            errs.append(required(f"{path}[{i}].opaque.parameters"))
    return errs


def _request_body_errors(path: str, body: Obj) -> Errors:
    errs: Errors = []
    klass = body.get("deviceClassName")
    if not klass:
        errs.append(required(f"{path}.deviceClassName"))
    else:
        errs += name_errors(dns1123_subdomain_errors, f"{path}.deviceClassName", klass)
    errs += _selectors_errors(f"{path}.selectors", body.get("selectors"))
    mode = body.get("allocationMode")
    errs += enum_errors(f"{path}.allocationMode", mode, _ALLOCATION_MODES, required_when_empty=False)
    count = body.get("count")
    if mode == "ExactCount" and isinstance(count, int) and count <= 0:
        errs.append(invalid(f"{path}.count", count, "must be greater than zero"))
    elif mode == "All" and count not in (None, 0):
        errs.append(invalid(f"{path}.count", count, "must not be specified when allocationMode is 'All'"))
    for i, tol in enumerate(as_list(body.get("tolerations"))):
        errs += enum_errors(f"{path}.tolerations[{i}].operator", as_dict(tol).get("operator"),
                            _TOLERATION_OPERATORS, required_when_empty=False)
    return errs


def validate_claim_spec(path: str, spec: Any) -> Errors:
    devices = as_dict(as_dict(spec).get("devices"))
    requests = as_list(devices.get("requests"))
    errs: Errors = []
    if len(requests) > _MAX_REQUESTS:
        errs.append(invalid(f"{path}.devices.requests", len(requests), f"must have at most {_MAX_REQUESTS} items"))
    names: set[str] = set()
    subnames: set[str] = set()
    for i, request in enumerate(requests):
        rpath = f"{path}.devices.requests[{i}]"
        r = as_dict(request)
        name = r.get("name")
        if not name:
            errs.append(required(f"{rpath}.name"))
        else:
            errs += name_errors(dns1123_label_errors, f"{rpath}.name", name)
            if name in names:
                errs.append(duplicate(f"{rpath}.name", name))
            names.add(str(name))
        exactly, first = r.get("exactly"), as_list(r.get("firstAvailable"))
        if (exactly is None) == (not first):
            errs.append(invalid(rpath, "", "exactly one of `exactly` or `firstAvailable` is required"))
        if isinstance(exactly, dict):
            errs += _request_body_errors(f"{rpath}.exactly", exactly)
        for j, sub in enumerate(first):
            spath = f"{rpath}.firstAvailable[{j}]"
            s = as_dict(sub)
            if not s.get("name"):
                errs.append(required(f"{spath}.name"))
            else:
                errs += name_errors(dns1123_label_errors, f"{spath}.name", s["name"])
                subnames.add(f"{name}/{s['name']}")
            errs += _request_body_errors(spath, s)
    known = names | subnames
    for key in ("constraints", "config"):
        for i, entry in enumerate(as_list(devices.get(key))):
            for j, ref in enumerate(as_list(as_dict(entry).get("requests"))):
                if ref not in known:
                    errs.append(invalid(f"{path}.devices.{key}[{i}].requests[{j}]", ref,
                                        "must be the name of a request in the claim or the name of a request and "
                                        "the subrequest separated with '/'"))
    errs += _opaque_config_errors(f"{path}.devices.config", devices.get("config"))
    return errs


def validate_device_class(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs = _selectors_errors("spec.selectors", spec.get("selectors"))
    errs += _opaque_config_errors("spec.config", spec.get("config"))
    return errs


def validate_resource_slice(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs = _driver_errors("spec.driver", spec.get("driver"))
    pool = as_dict(spec.get("pool"))
    if not pool.get("name"):
        errs.append(required("spec.pool.name"))
    count = pool.get("resourceSliceCount")
    if not isinstance(count, int) or count <= 0:
        errs.append(invalid("spec.pool.resourceSliceCount", count, "must be greater than zero"))
    generation = pool.get("generation")
    if isinstance(generation, int) and generation < 0:
        errs.append(invalid("spec.pool.generation", generation, "must be greater than or equal to 0"))
    selectors = [k for k in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection")
                 if spec.get(k) not in (None, "", False)]
    if len(selectors) != 1:
        message = "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"
        errs.append(required("spec", message) if not selectors else invalid("spec", "{...}", message))
    if spec.get("nodeName"):
        errs += name_errors(dns1123_subdomain_errors, "spec.nodeName", spec["nodeName"])
    devices = as_list(spec.get("devices"))
    if len(devices) > _MAX_DEVICES_PER_SLICE:
        errs.append(invalid("spec.devices", len(devices), f"must have at most {_MAX_DEVICES_PER_SLICE} items"))
    seen: set[str] = set()
    for i, device in enumerate(devices):
        name = as_dict(device).get("name")
        if not name:
            errs.append(required(f"spec.devices[{i}].name"))
            continue
        errs += name_errors(dns1123_label_errors, f"spec.devices[{i}].name", name)
        if name in seen:
            errs.append(duplicate(f"spec.devices[{i}].name", name))
        seen.add(str(name))
    return errs


def validate_resource_slice_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs: Errors = []
    for key in ("driver", "nodeName"):
        errs += immutable(f"spec.{key}", new_spec.get(key), old_spec.get(key))
    return errs


def validate_claim_status(obj: Obj) -> Errors:
    errs: Errors = []
    status = as_dict(obj.get("status"))
    reserved = as_list(status.get("reservedFor"))
    if reserved and status.get("allocation") is None:
        errs.append(forbidden("status.reservedFor", "may not be specified when `allocated` is not set"))
    uids: set[str] = set()
    for i, ref in enumerate(reserved):
        r = as_dict(ref)
        for key in ("resource", "name", "uid"):
            if not r.get(key):
                errs.append(required(f"status.reservedFor[{i}].{key}"))
        if r.get("uid") in uids:
            errs.append(duplicate(f"status.reservedFor[{i}].uid", r.get("uid")))
        uids.add(str(r.get("uid")))
    return errs


def validate_device_taint_rule(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = []
    selector = spec.get("deviceSelector")
    if selector is not None:
        sel = as_dict(selector)
        if sel.get("driver"):
            errs += _driver_errors("spec.deviceSelector.driver", sel["driver"])
        if sel.get("device"):
            errs += name_errors(dns1123_label_errors, "spec.deviceSelector.device", sel["device"])
    taint = spec.get("taint")
    if not isinstance(taint, dict):
        return errs + [required("spec.taint")]
    key = taint.get("key")
    if not key:
        errs.append(required("spec.taint.key"))
    else:
        errs += [invalid("spec.taint.key", key, m) for m in qualified_name_errors(str(key))]
    if taint.get("value"):
        errs += [invalid("spec.taint.value", taint["value"], m) for m in label_value_errors(str(taint["value"]))]
    errs += enum_errors("spec.taint.effect", taint.get("effect"), _TAINT_EFFECTS)
    return errs


def stamp_taint_time(obj: Obj, now: str) -> None:
    """The server records when a taint was added, unless the writer did."""
    taint = get_path(obj, "spec", "taint")
    if isinstance(taint, dict) and not taint.get("timeAdded"):
        taint["timeAdded"] = now


def claim_state(obj: Obj) -> str:
    """The State column of a ResourceClaim."""
    states: list[str] = []
    deleting = bool(get_path(obj, "metadata", "deletionTimestamp"))
    if deleting:
        states.append("deleted")
    if get_path(obj, "status", "allocation") is None:
        if not deleting:
            states.append("pending")
    else:
        states.append("allocated")
        if list_at(obj, "status", "reservedFor"):
            states.append("reserved")
    return ",".join(states)


# -- strategies ---------------------------------------------------------------------------


class DeviceClassStrategy(KindStrategy):
    refs = (KindRef(GROUP, "DeviceClass"),)
    delete_returns_object = True  # resource.k8s.io's registries all return the deleted object

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_device_class(obj)


class ResourceClaimStrategy(KindStrategy):
    refs = (KindRef(GROUP, "ResourceClaim"),)
    counts_generation = False  # upstream's PrepareForCreate sets no generation
    delete_returns_object = True
    status_metadata = ()  # metav1.ResetObjectMetaForStatus

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_claim_spec(obj.get("spec"))

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_claim_spec("spec", obj.get("spec")) + validate_claim_status(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return immutable("spec", new.get("spec"), old.get("spec"), shown="")

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("State", "A summary of the current state (allocated, pending, reserved, etc.)."),
                age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), claim_state(obj), age_of(obj, now)]


class ResourceClaimTemplateStrategy(KindStrategy):
    refs = (KindRef(GROUP, "ResourceClaimTemplate"),)
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_claim_spec(get_path(obj, "spec", "spec"))

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_claim_spec("spec.spec", get_path(obj, "spec", "spec"))

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return immutable("spec", new.get("spec"), old.get("spec"), shown="")


class ResourceSliceStrategy(KindStrategy):
    refs = (KindRef(GROUP, "ResourceSlice"),)
    delete_returns_object = True

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_resource_slice(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return validate_resource_slice_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "resource.v1.ResourceSliceSpec"
        return [name_column(), column("Node", doc(spec, "nodeName")), column("Driver", doc(spec, "driver")),
                column("Pool", doc("resource.v1.ResourcePool", "name")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), as_str(get_path(obj, "spec", "nodeName")), as_str(get_path(obj, "spec", "driver")),
                as_str(get_path(obj, "spec", "pool", "name")), age_of(obj, now)]


class DeviceTaintRuleStrategy(KindStrategy):
    refs = (KindRef(GROUP, "DeviceTaintRule"),)

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        stamp_taint_time(obj, now_rfc3339())

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_device_taint_rule(obj)
