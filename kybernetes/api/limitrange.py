"""The LimitRanger admission rules: a namespace's LimitRanges fill in a new pod's
container requests and limits, and bound what pods and PersistentVolumeClaims may ask.

Pure functions over plain objects; the API server's shell (`apiserver/limitranger.py`)
hands them the namespace's LimitRanges from the watch cache. Messages are worded as
upstream's plugin (plugin/pkg/admission/limitranger) words them; where upstream
iterates a Go map (random order), resource names are taken in sorted order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kybernetes.api.quantity import parse_quantity
from kybernetes.api.quota import format_quantity
from kybernetes.api.validation import canonical_quantity

Obj = dict[str, Any]

ANNOTATION = "kubernetes.io/limit-ranger"
CONTAINER = "Container"
POD = "Pod"
CLAIM = "PersistentVolumeClaim"
# Go's resource.MaxMilliValue: beyond it, amounts are compared in whole units.
_MAX_MILLI = (2**63 - 1) // 1000


def applies(group: str, plural: str) -> bool:
    """Whether LimitRanger looks at objects of this resource at all."""
    return not group and plural in ("pods", "persistentvolumeclaims")


def _items(limit_range: Obj) -> list[Obj]:
    limits = (limit_range.get("spec") or {}).get("limits")
    return [i for i in limits if isinstance(i, dict)] if isinstance(limits, list) else []


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A quantity as Go's Quantity.String() prints it."""
    return canonical_quantity(value) or str(value)


# -- defaults ------------------------------------------------------------------------------

def _container_defaults(limit_range: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    """(requests, limits) a Container-type item gives containers that leave them unset."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for item in _items(limit_range):
        if item.get("type") != CONTAINER:
            continue
        limits.update(_map(item.get("default")))
        requests.update(_map(item.get("defaultRequest")))
    return requests, limits


def _merge_container(container: Obj, requests: Mapping[str, Any], limits: Mapping[str, Any],
                     prefix: str) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = container["resources"] = {}
    have_limits = resources.get("limits")
    if not isinstance(have_limits, dict):
        have_limits = {}
    have_requests = resources.get("requests")
    if not isinstance(have_requests, dict):
        have_requests = {}
    set_limits = sorted(k for k in limits if k not in have_limits)
    set_requests = sorted(k for k in requests if k not in have_requests)
    for k in set_limits:
        have_limits[k] = limits[k]
    for k in set_requests:
        have_requests[k] = requests[k]
    if have_limits:
        resources["limits"] = have_limits
    if have_requests:
        resources["requests"] = have_requests
    name = container.get("name") or ""
    notes = []
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {prefix} {name}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {prefix} {name}")
    return notes


def default_pod(pod: Obj, limit_range: Obj) -> bool:
    """Fills in the defaults of one LimitRange (mutating `pod`); records what it set in
    the `kubernetes.io/limit-ranger` annotation. Whether anything was set."""
    requests, limits = _container_defaults(limit_range)
    if not requests and not limits:
        return False
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return False
    notes: list[str] = []
    for key, prefix in (("containers", "container"), ("initContainers", "init container")):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                notes += _merge_container(c, requests, limits, prefix)
    if not notes:
        return False
    meta = pod.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return True


# -- constraints ---------------------------------------------------------------------------

def _scaled(request: Decimal | None, limit: Decimal | None, enforced: Decimal) -> tuple[int, int, int]:
    """Upstream's requestLimitEnforcedValues: milli-units (rounded up) when every amount
    fits, whole units otherwise."""
    values = [request or Decimal(0), limit or Decimal(0), enforced]
    whole = [math.ceil(v) for v in values]
    if all(v <= _MAX_MILLI for v in whole):
        r, lim, e = (math.ceil(v * 1000) for v in values)
        return r, lim, e
    return whole[0], whole[1], whole[2]


def _amount(values: Mapping[str, Any], name: str) -> tuple[bool, Decimal | None, Any]:
    if name not in values:
        return False, None, None
    return True, parse_quantity(values[name]), values[name]


def min_constraint(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                   limits: Mapping[str, Any]) -> str | None:
    has_req, req, req_raw = _amount(requests, name)
    has_lim, lim, lim_raw = _amount(limits, name)
    want = parse_quantity(enforced) or Decimal(0)
    r, lv, e = _scaled(req, lim, want)
    if not has_req:
        return f"minimum {name} usage per {kind} is {_text(enforced)}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {kind} is {_text(enforced)}, but request is {_text(req_raw)}"
    if has_lim and lv < e:
        return f"minimum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(lim_raw)}"
    return None


def max_constraint(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                   limits: Mapping[str, Any]) -> str | None:
    has_req, req, req_raw = _amount(requests, name)
    has_lim, lim, lim_raw = _amount(limits, name)
    want = parse_quantity(enforced) or Decimal(0)
    r, lv, e = _scaled(req, lim, want)
    if not has_lim:
        return f"maximum {name} usage per {kind} is {_text(enforced)}.  No limit is specified"
    if lv > e:
        return f"maximum {name} usage per {kind} is {_text(enforced)}, but limit is {_text(lim_raw)}"
    if has_req and r > e:
        return f"maximum {name} usage per {kind} is {_text(enforced)}, but request is {_text(req_raw)}"
    return None


def max_request_constraint(kind: str, name: str, enforced: Any, requests: Mapping[str, Any]) -> str | None:
    has_req, req, req_raw = _amount(requests, name)
    want = parse_quantity(enforced) or Decimal(0)
    r, _, e = _scaled(req, None, want)
    if not has_req:
        return f"maximum {name} usage per {kind} is {_text(enforced)}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {kind} is {_text(enforced)}, but request is {_text(req_raw)}"
    return None


def ratio_constraint(kind: str, name: str, enforced: Any, requests: Mapping[str, Any],
                     limits: Mapping[str, Any]) -> str | None:
    has_req, req, _ = _amount(requests, name)
    has_lim, lim, _ = _amount(limits, name)
    want = parse_quantity(enforced) or Decimal(0)
    r, lv, _ = _scaled(req, lim, want)
    if not has_req or r == 0:
        return (f"{name} max limit to request ratio per {kind} is {_text(enforced)}, "
                "but no request is specified or request is 0")
    if not has_lim or lv == 0:
        return (f"{name} max limit to request ratio per {kind} is {_text(enforced)}, "
                "but no limit is specified or limit is 0")
    observed = lv / r
    shown = observed
    whole = math.ceil(want)
    allowed = float(whole)
    if whole <= _MAX_MILLI:
        observed *= 1000
        allowed = float(math.ceil(want * 1000))
    if observed > allowed:
        return (f"{name} max limit to request ratio per {kind} is {_text(enforced)}, "
                f"but provided ratio is {shown:f}")
    return None


def _resources(container: Obj) -> tuple[dict[str, Any], dict[str, Any]]:
    res = _map(container.get("resources"))
    return _map(res.get("requests")), _map(res.get("limits"))


def _check_item(item: Obj, kind: str, requests: Mapping[str, Any], limits: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in sorted(_map(item.get("min")).items()):
        if (msg := min_constraint(kind, name, value, requests, limits)) is not None:
            out.append(msg)
    for name, value in sorted(_map(item.get("max")).items()):
        if (msg := max_constraint(kind, name, value, requests, limits)) is not None:
            out.append(msg)
    for name, value in sorted(_map(item.get("maxLimitRequestRatio")).items()):
        if (msg := ratio_constraint(kind, name, value, requests, limits)) is not None:
            out.append(msg)
    return out


def _pod_totals(spec: Obj, which: str) -> dict[str, Any]:
    """The pod's sum over containers, at least each init container's (upstream's
    podRequests / podLimits), as Decimal amounts."""
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or ():
        if isinstance(c, dict):
            for name, value in _map(_map(c.get("resources")).get(which)).items():
                q = parse_quantity(value)
                if q is not None:
                    total[name] = total.get(name, Decimal(0)) + q
    for c in spec.get("initContainers") or ():
        if isinstance(c, dict):
            for name, value in _map(_map(c.get("resources")).get(which)).items():
                q = parse_quantity(value)
                if q is not None and (name not in total or q > total[name]):
                    total[name] = q
    return {name: _decimal_text(name, q) for name, q in total.items()}


def _decimal_text(name: str, value: Decimal) -> str:
    return format_quantity(name, value)


def pod_violations(pod: Obj, limit_range: Obj) -> list[str]:
    """What a pod breaks of one LimitRange, in upstream's order (each container, then
    init containers, then the pod's sums)."""
    spec = _map(pod.get("spec"))
    out: list[str] = []
    for item in _items(limit_range):
        kind = item.get("type")
        if kind == CONTAINER:
            for key in ("containers", "initContainers"):
                for c in spec.get(key) or ():
                    if isinstance(c, dict):
                        requests, limits = _resources(c)
                        out += _check_item(item, CONTAINER, requests, limits)
        elif kind == POD:
            out += _check_item(item, POD, _pod_totals(spec, "requests"), _pod_totals(spec, "limits"))
    return out


def claim_violations(claim: Obj, limit_range: Obj) -> list[str]:
    """What a PersistentVolumeClaim's storage request breaks of one LimitRange."""
    requests = _map(_map(_map(claim.get("spec")).get("resources")).get("requests"))
    out: list[str] = []
    for item in _items(limit_range):
        if item.get("type") != CLAIM:
            continue
        for name, value in sorted(_map(item.get("min")).items()):
            if (msg := min_constraint(CLAIM, name, value, requests, {})) is not None:
                out.append(msg)
        for name, value in sorted(_map(item.get("max")).items()):
            if (msg := max_request_constraint(CLAIM, name, value, requests)) is not None:
                out.append(msg)
    return out


def admit(group: str, plural: str, obj: Obj, limit_ranges: Iterable[Obj]) -> list[str]:
    """Every violation of the namespace's LimitRanges, duplicates dropped."""
    check = pod_violations if plural == "pods" else claim_violations
    seen: dict[str, None] = {}
    for lr in limit_ranges:
        for msg in check(obj, lr):
            seen.setdefault(msg, None)
    return list(seen)


def aggregate(messages: list[str]) -> str:
    """Go's utilerrors aggregate: one message alone, several in brackets."""
    if len(messages) == 1:
        return messages[0]
    return "[" + ", ".join(messages) + "]"
