"""In-place pod resize (`pods/resize`, GA in Kubernetes 1.35): what a write through the
subresource takes from the request (container resources and resize policies only, as
upstream's dropNonResizeUpdates), the rules it must pass (ValidatePodResize), and the
requests a pod being resized holds on its node (max of desired, allocated and actual,
as component-helpers' PodRequests with status resources), which the scheduler and the
node agent both count."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from kybernetes.api.pods import qos_class
from kybernetes.api.quantity import parse_quantity

Obj = dict[str, Any]
Errors = list[FieldError]

CPU, MEMORY = "cpu", "memory"
RESIZABLE = (CPU, MEMORY)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# Conditions the node reports about a resize (KEP 1287, 1.33+).
PENDING, IN_PROGRESS = "PodResizePending", "PodResizeInProgress"
DEFERRED, INFEASIBLE = "Deferred", "Infeasible"


def _dicts(value: Any) -> list[Obj]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _spec(pod: Obj) -> Obj:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """A restartable init container: it runs beside the app, so it may be resized."""
    return container.get("restartPolicy") == "Always"


# -- what a resize write takes from the request ---------------------------------------------

def merge_resize(old: Obj, new: Obj) -> Obj:
    """The pod a resize stores: the stored one, with each named container's (and init
    container's) `resources` and `resizePolicy` from the request. Everything else the
    request changed (an image, labels) is dropped, not refused, as upstream does; a
    renamed or added container matches nothing."""
    merged = dict(old)
    merged["metadata"] = dict(old["metadata"])
    spec = dict(_spec(old))
    new_spec = _spec(new)
    for key in ("containers", "initContainers"):
        if key not in spec:
            continue
        wanted = {c.get("name"): c for c in _dicts(new_spec.get(key))}
        out = []
        for c in spec.get(key) or []:
            w = wanted.get(c.get("name")) if isinstance(c, dict) else None
            if w is None:
                out.append(c)
                continue
            c = dict(c)
            for field in ("resources", "resizePolicy"):
                if field in w:
                    c[field] = copy.deepcopy(w[field])
                else:
                    c.pop(field, None)
            out.append(c)
        spec[key] = out
    merged["spec"] = spec
    return merged


# -- resizePolicy in any pod spec --------------------------------------------------------------

_POLICIES = ["NotRequired", "RestartContainer"]


def resize_policy_errors(spec: Any) -> Errors:
    """validateResizePolicy for each container: cpu and memory once each, a known restart
    policy, and only NotRequired in a pod that never restarts containers."""
    if not isinstance(spec, dict):
        return []
    errs: Errors = []
    for key in ("containers", "initContainers"):
        for i, c in enumerate(_dicts(spec.get(key))):
            path = f"spec.{key}[{i}].resizePolicy"
            seen: set[Any] = set()
            for j, p in enumerate(_dicts(c.get("resizePolicy"))):
                name, policy = p.get("resourceName"), p.get("restartPolicy")
                if name in seen:
                    errs.append(duplicate(f"{path}[{j}]", name))
                seen.add(name)
                if not name:
                    errs.append(required(path))
                elif name not in RESIZABLE:
                    errs.append(not_supported(path, name, list(RESIZABLE)))
                if not policy:
                    errs.append(required(path))
                elif policy not in _POLICIES:
                    errs.append(not_supported(path, policy, _POLICIES))
                if spec.get("restartPolicy") == "Never" and policy != "NotRequired":
                    errs.append(invalid(path, policy, "must be 'NotRequired' when `restartPolicy` is 'Never'"))
    return errs


# -- ValidatePodResize ------------------------------------------------------------------------

def _quantities(resources: Any) -> dict[str, Decimal | Any]:
    """A resource list with values compared as quantities ("1" == "1000m")."""
    if not isinstance(resources, dict):
        return {}
    out: dict[str, Decimal | Any] = {}
    for name, value in resources.items():
        q = parse_quantity(value)
        out[name] = q if q is not None else value
    return out


def _removed(new: Any, old: Any) -> bool:
    new_d = new if isinstance(new, dict) else {}
    return any(name not in new_d for name in (old if isinstance(old, dict) else {}))


def _resources(container: Mapping[str, Any]) -> Obj:
    res = container.get("resources")
    return res if isinstance(res, dict) else {}


def _without_cpu_memory(container: Obj, old: Obj) -> Obj:
    """`container` with cpu/memory requests and limits and the resize policy put back as
    `old` has them (upstream's dropCPUMemoryResourcesFromContainer), quantities
    normalised, so what still differs from `old` is a change a resize may not make."""
    res, old_res = _resources(container), _resources(old)
    out = {k: v for k, v in container.items() if k not in ("resources", "resizePolicy")}
    munged: Obj = {}
    for part in ("limits", "requests"):
        old_list = old_res.get(part)
        if not isinstance(old_list, dict):
            continue
        kept = {k: v for k, v in _quantities(res.get(part)).items() if k not in RESIZABLE}
        kept.update({k: v for k, v in _quantities(old_list).items() if k in RESIZABLE})
        munged[part] = kept
    out["resources"] = munged
    out["resizePolicy"] = old.get("resizePolicy")
    return out


def _normalised(container: Obj) -> Obj:
    res = _resources(container)
    out = {k: v for k, v in container.items() if k != "resources"}
    out["resources"] = {part: _quantities(res.get(part)) for part in ("limits", "requests")
                        if isinstance(res.get(part), dict)}
    out.setdefault("resizePolicy", None)
    return out


def _ordering_errors(new_spec: Obj, old_spec: Obj) -> Errors:
    errs: Errors = []
    for key in ("containers", "initContainers"):
        new_list, old_list = _dicts(new_spec.get(key)), _dicts(old_spec.get(key))
        if len(new_list) != len(old_list):
            errs.append(forbidden(f"spec.{key}", f"{key} may not be added or removed on resize"))
            continue
        for i, (n, o) in enumerate(zip(new_list, old_list, strict=True)):
            if n.get("name") != o.get("name"):
                errs.append(forbidden(f"spec.{key}[{i}].name", "containers may not be renamed or reordered on resize"))
    return errs


def resize_supported(pod: Obj) -> bool:
    """Whether the pod's node resizes in place: judged from the first running container,
    which such a node reports with its `resources` (a pod not running yet is accepted
    and left to the node)."""
    for cs in _dicts((pod.get("status") or {}).get("containerStatuses")):
        if isinstance(cs.get("state"), dict) and cs["state"].get("running") is not None:
            return cs.get("resources") is not None
    return True


def validate_pod_resize(new: Obj, old: Obj) -> Errors:
    """ValidatePodResize: the change from `old` to `new` (already merged by
    `merge_resize`) may touch only cpu and memory of regular and sidecar containers and
    their resize policies, remove no request or limit, and keep the pod's QoS class. (The
    resized pod's spec is validated as any pod's besides.)"""
    annotations = (old.get("metadata") or {}).get("annotations") or {}
    if MIRROR_ANNOTATION in annotations:
        return [forbidden("", "static pods cannot be resized")]
    old_spec, new_spec = _spec(old), _spec(new)
    if ((old_spec.get("os") or {}).get("name")) == "windows":
        return [forbidden("", "windows pods cannot be resized")]
    errs: Errors = []
    new_qos = qos_class(new)
    if qos_class(old) != new_qos:
        errs.append(invalid("spec", new_qos, "Pod QOS Class may not change as a result of resizing"))
    if not resize_supported(old):
        errs.append(forbidden("spec", "Pod running on node without support for resize"))
    ordering = _ordering_errors(new_spec, old_spec)
    if ordering:
        return errs + ordering
    pairs = [("containers", i, n, o) for i, (n, o) in enumerate(zip(
        _dicts(new_spec.get("containers")), _dicts(old_spec.get("containers")), strict=True))]
    pairs += [("initContainers", i, n, o) for i, (n, o) in enumerate(zip(
        _dicts(new_spec.get("initContainers")), _dicts(old_spec.get("initContainers")), strict=True))]
    for key, i, n, o in pairs:
        if key == "initContainers" and not is_sidecar(o):
            continue
        path = f"spec.{key}[{i}].resources"
        if _removed(_resources(n).get("requests"), _resources(o).get("requests")):
            errs.append(forbidden(f"{path}.requests", "resource requests cannot be removed"))
        if _removed(_resources(n).get("limits"), _resources(o).get("limits")):
            errs.append(forbidden(f"{path}.limits", "resource limits cannot be removed"))
    for key, _i, n, o in pairs:
        if key == "containers":
            if _without_cpu_memory(n, o) != _normalised(o):
                errs.append(forbidden("spec", "only cpu and memory resources are mutable"))
        elif is_sidecar(o):
            if _without_cpu_memory(n, o) != _normalised(o):
                errs.append(forbidden("spec", "only cpu and memory resources for sidecar containers are mutable"))
        elif _normalised(n) != _normalised(o):
            errs.append(forbidden("spec", "resources for non-sidecar init containers are immutable"))
    return errs


def resources_changed(new: Obj, old: Obj) -> bool:
    """Whether any container's resources or resize policy differ: what only a resize may
    change."""
    new_spec, old_spec = _spec(new), _spec(old)
    if new_spec is old_spec:
        return False  # status writes share the stored spec: asked on every one of them
    for key in ("containers", "initContainers"):
        if new_spec.get(key) is old_spec.get(key):
            continue
        old_by_name = {c.get("name"): c for c in _dicts(old_spec.get(key))}
        for c in _dicts(new_spec.get(key)):
            o = old_by_name.get(c.get("name"))
            if o is not None and (_normalised(c)["resources"] != _normalised(o)["resources"]
                                  or c.get("resizePolicy") != o.get("resizePolicy")):
                return True
    return False


# -- what a pod being resized holds -------------------------------------------------------------

def _condition_reason(pod: Obj, type_: str) -> str | None:
    for c in _dicts((pod.get("status") or {}).get("conditions")):
        if c.get("type") == type_ and c.get("status") == "True":
            return str(c.get("reason") or "")
    return None


def resize_infeasible(pod: Obj) -> bool:
    return _condition_reason(pod, PENDING) == INFEASIBLE


def _larger(a: Any, b: Any) -> bool:
    qa, qb = parse_quantity(a), parse_quantity(b)
    return qa is not None and (qb is None or qa > qb)


def accounted_spec(pod: Obj) -> Obj:
    """The pod's spec with each container's requests as its node holds them: the largest
    of what the spec asks, what the node allocated and what the runtime applied, or only
    the last two while the resize is Infeasible (upstream's determineContainerReqs). The
    spec itself (no copy) when the status reports nothing that differs, as for nearly
    every pod."""
    spec = _spec(pod)
    status = pod.get("status")
    if not isinstance(status, dict):
        return spec
    statuses = {s.get("name"): s for key in ("containerStatuses", "initContainerStatuses")
                for s in _dicts(status.get(key)) if "allocatedResources" in s or "resources" in s}
    if not statuses:
        return spec
    infeasible = resize_infeasible(pod)
    out: Obj | None = None
    for key in ("containers", "initContainers"):
        new_list = []
        changed = False
        for c in _dicts(spec.get(key)):
            cs = statuses.get(c.get("name"))
            if cs is None:
                new_list.append(c)
                continue
            desired = _resources(c).get("requests") or {}
            held: Obj = {} if infeasible else dict(desired)
            for source in ((cs.get("resources") or {}).get("requests") or {}, cs.get("allocatedResources") or {}):
                for name, value in source.items():
                    have = held.get(name)
                    # Mostly the very strings of the spec: no quantity to parse.
                    if have != value and (have is None or _larger(value, have)):
                        held[name] = value
            if held != desired:
                c = dict(c)
                c["resources"] = {**_resources(c), "requests": held}
                changed = True
            new_list.append(c)
        if changed:
            out = dict(spec) if out is None else out
            out[key] = new_list
    return spec if out is None else out
