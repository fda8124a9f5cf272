"""Pod priority: the system PriorityClasses and the rules of upstream's Priority admission
plugin, as pure functions on dicts.

* `SYSTEM_PRIORITY_CLASSES`: `system-cluster-critical` and `system-node-critical`, which
  the API server keeps in the store and which cannot be deleted or changed;
* `resolve_pod_priority`: on create, a pod's `spec.priorityClassName` (or the
  `globalDefault` class, or none) becomes `spec.priority` and `spec.preemptionPolicy`;
  a priority or policy the user wrote that differs from the class's is refused;
* `check_priority_class`: at most one `globalDefault` class;
* `system_class_errors`: a `system-` name must be one of the system classes, as they are.

Refusals are 403 Forbidden with upstream's words (`<plural> "<name>" is forbidden: ...`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kybernetes.api.errors import ApiError, FieldError, forbidden

Obj = dict[str, Any]

GROUP = "scheduling.k8s.io"
SYSTEM_PREFIX = "system-"
SYSTEM_CLUSTER_CRITICAL = "system-cluster-critical"
SYSTEM_NODE_CRITICAL = "system-node-critical"
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
# Upstream's scheduling.DefaultPriorityWhenNoDefaultClassExists.
DEFAULT_PRIORITY = 0
PREEMPT_LOWER = "PreemptLowerPriority"

SYSTEM_PRIORITY_CLASSES: dict[str, Obj] = {
    SYSTEM_CLUSTER_CRITICAL: {
        "value": 2_000_000_000,
        "description": "Used for system critical pods that must run in the cluster, but can be moved to "
                       "another node if necessary.",
    },
    SYSTEM_NODE_CRITICAL: {
        "value": 2_000_001_000,
        "description": "Used for system critical pods that must not be moved from their current node.",
    },
}


def system_priority_classes() -> list[Obj]:
    """The system classes as the API server creates them at start."""
    return [{"apiVersion": f"{GROUP}/v1", "kind": "PriorityClass", "metadata": {"name": name},
             "value": spec["value"], "description": spec["description"], "preemptionPolicy": PREEMPT_LOWER}
            for name, spec in SYSTEM_PRIORITY_CLASSES.items()]


def system_class_errors(name: str, value: Any, global_default: Any) -> list[FieldError]:
    """Upstream's IsKnownSystemPriorityClass, as a validation error on `metadata.name`."""
    if not name.startswith(SYSTEM_PREFIX):
        return []
    known = SYSTEM_PRIORITY_CLASSES.get(name)
    if known is None:
        why = f"{name} is not a known system priority class"
    elif value != known["value"]:
        why = f"value of {name} PriorityClass must be {known['value']}"
    elif bool(global_default):
        why = f"globalDefault of {name} PriorityClass must be false"
    else:
        return []
    return [forbidden("metadata.name", f"priority class names with '{SYSTEM_PREFIX}' prefix are reserved for "
                                       f"system use only. error: {why}")]


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The `globalDefault` class; if a race left several, the one with the lowest value."""
    best: Obj | None = None
    for pc in classes:
        if pc.get("globalDefault") and (best is None or int(pc.get("value") or 0) < int(best.get("value") or 0)):
            best = pc
    return best


def _pod_forbidden(pod: Obj, why: str) -> ApiError:
    name = (pod.get("metadata") or {}).get("name") or ""
    return ApiError.forbidden(f'pods "{name}" is forbidden: {why}', "", "pods", name)


def resolve_pod_priority(pod: Obj, classes: Mapping[str, Obj]) -> None:
    """Set a new pod's `spec.priority` (and `priorityClassName` from a default class, and
    `preemptionPolicy`) from its PriorityClass, or refuse it. `classes` by name."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    class_name = spec.get("priorityClassName") or ""
    if not class_name:
        pc = default_class(classes.values())
        if pc is not None:
            spec["priorityClassName"] = (pc.get("metadata") or {}).get("name") or ""
    else:
        pc = classes.get(class_name)
        if pc is None:
            raise _pod_forbidden(pod, f"no PriorityClass with name {class_name} was found")
    priority = int(pc.get("value") or 0) if pc is not None else DEFAULT_PRIORITY
    policy = (pc.get("preemptionPolicy") or PREEMPT_LOWER) if pc is not None else PREEMPT_LOWER
    given = spec.get("priority")
    if given is not None and given != priority:
        raise _pod_forbidden(pod, f"the integer value of priority ({given}) must not be provided in pod spec; "
                                  f"priority admission controller computed {priority} from the given "
                                  f"PriorityClass name")
    spec["priority"] = priority
    given_policy = spec.get("preemptionPolicy")
    if given_policy is not None and given_policy != policy:
        raise _pod_forbidden(pod, f"the string value of PreemptionPolicy ({given_policy}) must not be provided in "
                                  f"pod spec; priority admission controller computed {policy} from the given "
                                  f"PriorityClass name")
    spec["preemptionPolicy"] = policy


def check_priority_class(pc: Obj, classes: Iterable[Obj]) -> None:
    """Refuse a second `globalDefault` class (created, or another class marked as default)."""
    if not pc.get("globalDefault"):
        return
    name = (pc.get("metadata") or {}).get("name") or ""
    current = default_class(c for c in classes if (c.get("metadata") or {}).get("name") != name)
    if current is not None:
        other = (current.get("metadata") or {}).get("name") or ""
        raise ApiError.forbidden(f'priorityclasses.{GROUP} "{name}" is forbidden: PriorityClass {other} is already '
                                 f"marked as default. Only one default can exist", GROUP, "priorityclasses", name)


def check_priority_class_delete(name: str) -> None:
    if name in SYSTEM_PRIORITY_CLASSES:
        raise ApiError.forbidden(f'priorityclasses.{GROUP} "{name}" is forbidden: this is a system priority class '
                                 f"and cannot be deleted", GROUP, "priorityclasses", name)


def admits(group: str, plural: str) -> bool:
    """Whether the Priority admission rules look at writes of this resource."""
    return (group, plural) in (("", "pods"), (GROUP, "priorityclasses"))


def admit(group: str, plural: str, obj: Obj, old: Obj | None, classes: Callable[[], Mapping[str, Obj]]) -> None:
    """The Priority admission plugin for one write (`old` None: a create); `classes()` gives
    the PriorityClasses by name (only asked for when needed: pod updates are frequent)."""
    if group == "" and plural == "pods":
        if old is None:
            resolve_pod_priority(obj, classes())
            return
        # Clients that PUT a pod back without the resolved fields keep them, as upstream.
        spec, old_spec = obj.get("spec"), old.get("spec")
        if isinstance(spec, dict) and isinstance(old_spec, dict):
            for key in ("priority", "preemptionPolicy"):
                if spec.get(key) is None and old_spec.get(key) is not None:
                    spec[key] = old_spec[key]
    elif group == GROUP and plural == "priorityclasses":
        check_priority_class(obj, classes().values())

