"""Resource quota accounting: what one object uses of a quota, which quotas see it, and
what a namespace uses in total.

Pure functions over plain objects; the API server (`apiserver/quota.py`) feeds them
the objects of a namespace to keep each ResourceQuota's `status` and to refuse a
create that would go over a quota's `spec.hard`.

Names follow upstream's evaluators: `pods`, `services`, `configmaps`, ... and their
`count/<resource>[.<group>]` forms; a pod's `cpu`/`memory`/`ephemeral-storage`
(= `requests.*`), `limits.*` and extended `requests.<domain>/<name>`; a Service's
`services.nodeports` and `services.loadbalancers`; a claim's `requests.storage`, per
storage class too. Any other resource is counted as `count/<plural>.<group>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kybernetes.api.pods import qos_class
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.validation import canonical_quantity

Obj = dict[str, Any]
Usage = dict[str, Decimal]

# The legacy names of the core object counts (upstream's `ResourcePods`, ...).
_LEGACY_COUNTS = {
    "pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
    "replicationcontrollers": "replicationcontrollers", "resourcequotas": "resourcequotas",
    "persistentvolumeclaims": "persistentvolumeclaims",
}
_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
# Requests of these are not "extended" resources.
_NATIVE_PREFIXES = ("kubernetes.io/", "requests.", "limits.")

POD_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
              "CrossNamespacePodAffinity")


def count_name(group: str, plural: str) -> str:
    """`count/pods`, `count/replicasets.apps`."""
    return f"count/{plural}" if not group else f"count/{plural}.{group}"


def parse_count_name(name: str) -> tuple[str, str] | None:
    """`count/replicasets.apps` → ("apps", "replicasets"); `count/pods` → ("", "pods")."""
    if not name.startswith("count/"):
        return None
    rest = name[len("count/"):]
    plural, _, group = rest.partition(".")
    return (group, plural) if plural else None


def _is_extended(name: str) -> bool:
    return "/" in name and not name.startswith(_NATIVE_PREFIXES)


def _container_totals(spec: Mapping[str, Any], which: str) -> Usage:
    """A pod's effective requests or limits: containers summed, against the largest
    init container, plus the pod overhead, as the scheduler and quota compute them."""
    total: Usage = {}
    for c in spec.get("containers") or ():
        for name, value in (((c.get("resources") or {}).get(which)) or {}).items():
            q = parse_quantity(value)
            if q is not None:
                total[name] = total.get(name, Decimal(0)) + q
    for c in spec.get("initContainers") or ():
        for name, value in (((c.get("resources") or {}).get(which)) or {}).items():
            q = parse_quantity(value)
            if q is not None and q > total.get(name, Decimal(0)):
                total[name] = q
    for name, value in (spec.get("overhead") or {}).items():
        q = parse_quantity(value)
        if q is not None and name in total:
            total[name] += q
    return total


def pod_counts(pod: Obj) -> bool:
    """Whether a pod still uses quota: not once it has finished, nor once its deletion
    can no longer be waited for."""
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    return not (meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == 0)


def pod_usage(pod: Obj) -> Usage:
    if not pod_counts(pod):
        # `count/pods` counts every stored pod; `pods` and compute only live ones.
        return {"count/pods": Decimal(1)}
    spec = pod.get("spec") or {}
    out: Usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    requests = _container_totals(spec, "requests")
    limits = _container_totals(spec, "limits")
    for name, q in requests.items():
        if name in _COMPUTE:
            out[name] = q
            out["requests." + name] = q
        elif _is_extended(name) or name.startswith("hugepages-"):
            out["requests." + name] = q
    for name, q in limits.items():
        if name in _COMPUTE:
            out["limits." + name] = q
    return out


def service_usage(svc: Obj) -> Usage:
    spec = svc.get("spec") or {}
    out: Usage = {"services": Decimal(1), "count/services": Decimal(1)}
    kind = spec.get("type") or "ClusterIP"
    ports = len(spec.get("ports") or ())
    if kind == "NodePort":
        out["services.nodeports"] = Decimal(ports)
    elif kind == "LoadBalancer":
        out["services.loadbalancers"] = Decimal(1)
        if spec.get("allocateLoadBalancerNodePorts") is not False:
            out["services.nodeports"] = Decimal(ports)
    return out


def claim_usage(pvc: Obj) -> Usage:
    spec = pvc.get("spec") or {}
    out: Usage = {"persistentvolumeclaims": Decimal(1), "count/persistentvolumeclaims": Decimal(1)}
    storage = parse_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    if storage is not None:
        out["requests.storage"] = storage
    cls = spec.get("storageClassName")
    if cls:
        out[cls + _STORAGE_CLASS_SUFFIX + "persistentvolumeclaims"] = Decimal(1)
        if storage is not None:
            out[cls + _STORAGE_CLASS_SUFFIX + "requests.storage"] = storage
    return out


def object_usage(group: str, plural: str, obj: Obj) -> Usage:
    """What one object of resource (group, plural) uses."""
    if not group:
        if plural == "pods":
            return pod_usage(obj)
        if plural == "services":
            return service_usage(obj)
        if plural == "persistentvolumeclaims":
            return claim_usage(obj)
    out = {count_name(group, plural): Decimal(1)}
    if not group and plural in _LEGACY_COUNTS:
        out[_LEGACY_COUNTS[plural]] = Decimal(1)
    return out


def tracks(group: str, plural: str, resource_name: str) -> bool:
    """Whether objects of (group, plural) can use `resource_name` at all."""
    if resource_name == count_name(group, plural):
        return True
    if group:
        return False
    if plural in _LEGACY_COUNTS and resource_name == _LEGACY_COUNTS[plural]:
        return True
    if plural == "pods":
        return (resource_name in _COMPUTE or resource_name.startswith(("requests.", "limits."))) \
            and resource_name != "requests.storage"
    if plural == "services":
        return resource_name in ("services.nodeports", "services.loadbalancers")
    if plural == "persistentvolumeclaims":
        return resource_name == "requests.storage" or _STORAGE_CLASS_SUFFIX in resource_name
    return False


def resources_of_hard(hard: Iterable[str]) -> set[tuple[str, str]]:
    """The (group, plural) resources whose objects a quota with these hard names counts."""
    out: set[tuple[str, str]] = set()
    for name in hard:
        parsed = parse_count_name(name)
        if parsed is not None:
            out.add(parsed)
        elif name in _LEGACY_COUNTS:
            out.add(("", _LEGACY_COUNTS[name]))
        elif name in ("services.nodeports", "services.loadbalancers"):
            out.add(("", "services"))
        elif name == "requests.storage" or _STORAGE_CLASS_SUFFIX in name:
            out.add(("", "persistentvolumeclaims"))
        elif name in _COMPUTE or name.startswith(("requests.", "limits.")):
            out.add(("", "pods"))
    return out


# -- scopes ------------------------------------------------------------------------------

def _scope_requirements(quota: Obj) -> list[tuple[str, str, list[str]]]:
    spec = quota.get("spec") or {}
    out = [(s, "Exists", []) for s in spec.get("scopes") or ()]
    for req in ((spec.get("scopeSelector") or {}).get("matchExpressions")) or ():
        out.append((req.get("scopeName") or "", req.get("operator") or "", list(req.get("values") or ())))
    return out


def _pod_matches_scope(pod: Obj, scope: str, operator: str, values: list[str]) -> bool:
    spec = pod.get("spec") or {}
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        if operator == "Exists":
            return bool(name)
        if operator == "DoesNotExist":
            return not name
        if operator == "In":
            return name in values
        if operator == "NotIn":
            return name not in values
        return False
    if scope == "Terminating":
        matched = spec.get("activeDeadlineSeconds") is not None
    elif scope == "NotTerminating":
        matched = spec.get("activeDeadlineSeconds") is None
    elif scope == "BestEffort":
        matched = qos_class(pod) == "BestEffort"
    elif scope == "NotBestEffort":
        matched = qos_class(pod) != "BestEffort"
    elif scope == "CrossNamespacePodAffinity":
        matched = _cross_namespace_affinity(spec)
    else:
        return False
    return matched if operator != "DoesNotExist" else not matched


def _cross_namespace_affinity(spec: Mapping[str, Any]) -> bool:
    affinity = spec.get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = affinity.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or ())
        terms += [t.get("podAffinityTerm") or {} for t in a.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def quota_sees(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether `quota` counts this object: with scopes, only pods matching every scope."""
    reqs = _scope_requirements(quota)
    if not reqs:
        return True
    if group or plural != "pods":
        return False
    return all(_pod_matches_scope(obj, s, op, vals) for s, op, vals in reqs)


def scoped_names(quota: Obj, hard: Iterable[str]) -> list[str]:
    """The hard names a quota tracks. A BestEffort-scoped quota tracks pods only, as
    such pods request nothing; other pod scopes track pods and compute resources."""
    reqs = _scope_requirements(quota)
    names = list(hard)
    if not reqs:
        return names
    if any(s == "BestEffort" and op != "DoesNotExist" for s, op, _ in reqs):
        return [n for n in names if n in ("pods", "count/pods")]
    return [n for n in names if tracks("", "pods", n)]


# -- totals ------------------------------------------------------------------------------

def hard_of(quota: Obj) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name, value in (((quota.get("spec") or {}).get("hard")) or {}).items():
        q = parse_quantity(value)
        if q is not None:
            out[name] = q
    return out


def _is_binary(name: str) -> bool:
    return name in ("memory", "ephemeral-storage") or name.endswith(
        ("memory", "storage", "ephemeral-storage")) or "hugepages-" in name


def format_quantity(name: str, value: Decimal) -> str:
    """A used amount as the server writes quantities: counts plain, memory and storage
    in binary units when exact, cpu in millicores."""
    if value == 0:
        return "0"
    if _is_binary(name) and value == value.to_integral_value() and int(value) % 1024 == 0:
        return canonical_quantity(f"{int(value) // 1024}Ki") or format(value, "f")
    return canonical_quantity(format(value.normalize(), "f")) or format(value, "f")


def namespace_usage(quota: Obj, objects: Mapping[tuple[str, str], Iterable[Obj]]) -> dict[str, str]:
    """`status.used` of `quota`: for each name it tracks, the sum over the namespace's
    objects (`objects`: (group, plural) → its objects) that the quota sees."""
    names = scoped_names(quota, hard_of(quota))
    totals = {n: Decimal(0) for n in names}
    for (group, plural), objs in objects.items():
        wanted = [n for n in names if tracks(group, plural, n)]
        if not wanted:
            continue
        for obj in objs:
            if not quota_sees(quota, group, plural, obj):
                continue
            usage = object_usage(group, plural, obj)
            for n in wanted:
                if n in usage:
                    totals[n] += usage[n]
    return {n: format_quantity(n, v) for n, v in totals.items()}


# If a quota limits cpu or memory, every container must ask for it (upstream keeps this for
# compatibility; it never added other resources to the list).
_MUST_SPECIFY = frozenset({"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"})


def _container_names(c: Mapping[str, Any]) -> set[str]:
    """The quota names one container's resources give (upstream's podComputeUsageHelper)."""
    res = c.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    out = set()
    for r in ("cpu", "memory", "ephemeral-storage"):
        if r in requests:
            out |= {r, "requests." + r}
        if r in limits:
            out.add("limits." + r)
    return out


def missing_requests(quota: Obj, pod: Obj, names: Iterable[str] | None = None) -> list[str]:
    """What a pod leaves unset of the cpu/memory a quota limits, per resource with the
    containers that miss it (`cpu for: a,b`): such a pod cannot be admitted. `names`:
    the quota's scoped names, when the caller has them."""
    required = set(scoped_names(quota, hard_of(quota)) if names is None else names) & _MUST_SPECIFY
    if not required:
        return []
    spec = pod.get("spec") or {}
    containers = list(spec.get("containers") or ()) + list(spec.get("initContainers") or ())
    missing: dict[str, set[str]] = {}
    for c in containers:
        if isinstance(c, dict):
            for name in required - _container_names(c):
                missing.setdefault(name, set()).add(str(c.get("name") or ""))
    return [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]


def exceeded(quota: Obj, used: Mapping[str, Decimal], delta: Usage,
             hard: Mapping[str, Decimal] | None = None,
             names: Iterable[str] | None = None) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(name, requested, used, hard) for each name the request would push over `quota`
    (`hard` and its scoped `names`, when the caller has them)."""
    if hard is None:
        hard = hard_of(quota)
    out = []
    # Named in sorted order, as upstream's prettyPrint does.
    for name in sorted(scoped_names(quota, hard) if names is None else names):
        want = delta.get(name)
        if want is None or want <= 0:
            continue
        have = used.get(name, Decimal(0))
        if have + want > hard[name]:
            out.append((name, want, have, hard[name]))
    return out
