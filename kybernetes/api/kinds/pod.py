"""Pods: defaulting (with what the Priority and DefaultTolerationSeconds admission
plugins add), validation (and the few fields an update may change), the Table of
`kubectl get pods`, graceful deletion, and the pods/binding, pods/eviction,
pods/ephemeralcontainers and pods/resize subresources."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from kybernetes.api.defaults import child_map, default_pod_spec, dicts
from kybernetes.api.disruption import mark_disruption_target, plan_eviction
from kybernetes.api.errors import ApiError, FieldError, duplicate, forbidden, required
from kybernetes.api.kinds.base import (
    ActionContext,
    ActionSubresource,
    DeleteStep,
    KindRef,
    KindStrategy,
    MainWrite,
    RelatedWrite,
    SubresourceStep,
    UpdateStep,
    WritePolicy,
)
from kybernetes.api.kinds.proxying import Lookup, ProxyLocation, pod_location
from kybernetes.api.names import dns1123_subdomain_errors
from kybernetes.api.podfields import drop_disabled_fields
from kybernetes.api.pods import pod_is_terminal, qos_class
from kybernetes.api.podscheduling import (
    apply_scheduling_gated_condition,
    gated_node_affinity_update,
    gated_node_selector_update,
    merge_match_label_keys,
    validate_gates_update,
    validate_pod_scheduling,
)
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.resize import merge_resize, resize_policy_errors, validate_pod_resize
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_int,
    as_str,
    aware,
    column,
    dict_at,
    doc,
    get_path,
    has_condition,
    human_duration,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.timefmt import now_rfc3339, parse_time
from kybernetes.api.validation import (
    _validate_container,
    as_dict,
    as_list,
    is_int,
    name_errors,
    validate_pod_spec,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_pod(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    key = _valid_spec_key(spec)
    if key is not None and key in _VALID_SPECS:
        return []
    errs = validate_pod_spec("spec", spec) + validate_ephemeral_containers(spec) + validate_pod_scheduling(spec) \
        + resize_policy_errors(spec)
    if key is not None and not errs:
        if len(_VALID_SPECS) >= _VALID_SPECS_SIZE:
            _VALID_SPECS.clear()
        _VALID_SPECS[key] = None
    return errs


# Pod specs found valid, by their JSON: a template's pods (a ReplicaSet's) share one spec
# but for the name of their token volume, so each such name (a whole JSON string, the same
# length and alphabet for all) is replaced by its order of first appearance; the rules
# see these names only as valid labels that are equal or not. Invalid specs are checked
# every time, so that their errors name their own values.
_VALID_SPECS: dict[bytes, None] = {}
_VALID_SPECS_SIZE = 1024
_VALID_SPEC_MAX_BYTES = 65536
_TOKEN_VOLUME_NAME = re.compile(rb'"kube-api-access-[a-z0-9]{5}"')


def _valid_spec_key(spec: Any) -> bytes | None:
    if not isinstance(spec, dict):
        return None
    try:
        raw = orjson.dumps(spec)
    except TypeError:
        return None
    if len(raw) > _VALID_SPEC_MAX_BYTES:
        return None
    order: dict[bytes, bytes] = {}
    # A NUL byte never appears in orjson's output (it writes \u0000), so no spec's own text
    # can pass for a replaced name.
    return _TOKEN_VOLUME_NAME.sub(lambda m: order.setdefault(m.group(0), b"\x00%d\x00" % len(order)), raw)


# -- ephemeral containers ------------------------------------------------------------------

# Fields of a Container an ephemeral one may set: the rest (ports, probes, lifecycle,
# resources, restart policy) would make the workload depend on a debugging aid.
_EPHEMERAL_ALLOWED = frozenset((
    "name", "image", "command", "args", "workingDir", "envFrom", "env", "volumeMounts", "volumeDevices",
    "terminationMessagePath", "terminationMessagePolicy", "imagePullPolicy", "securityContext",
    "stdin", "stdinOnce", "tty", "targetContainerName"))
_NOT_FOR_EPHEMERAL = "cannot be set for an Ephemeral Container"


def _is_zero(v: Any) -> bool:
    return v is None or v is False or v == 0 or v == "" or v == [] or v == {}


def validate_ephemeral_containers(spec: Any) -> Errors:
    """kube-apiserver's validateEphemeralContainers: each is a valid container whose name is
    unique across all of the pod's containers, that targets a regular or init container,
    and sets none of the fields that would make the workload depend on it."""
    if not isinstance(spec, dict) or not spec.get("ephemeralContainers"):
        return []
    volumes = {v.get("name") for v in as_list(spec.get("volumes")) if isinstance(v, dict)}
    others = {c.get("name") for key in ("containers", "initContainers")
              for c in as_list(spec.get(key)) if isinstance(c, dict)}
    seen = set(others)
    errs: Errors = []
    for i, ec in enumerate(as_list(spec.get("ephemeralContainers"))):
        path = f"spec.ephemeralContainers[{i}]"
        if not isinstance(ec, dict):
            errs.append(required(path))
            continue
        common = {k: v for k, v in ec.items() if k not in ("targetContainerName", "livenessProbe",
                                                            "readinessProbe", "startupProbe", "lifecycle")}
        errs += _validate_container(path, common, volumes)
        name = ec.get("name")
        if name in seen:
            errs.append(duplicate(f"{path}.name", name))
        elif name:
            seen.add(name)
        target = ec.get("targetContainerName")
        if target and target not in others:
            errs.append(FieldError("FieldValueNotFound", f"{path}.targetContainerName", "", target, True))
        errs += [forbidden(f"{path}.{k}", _NOT_FOR_EPHEMERAL) for k, v in ec.items()
                 if k not in _EPHEMERAL_ALLOWED and not _is_zero(v)]
        for j, vm in enumerate(as_list(ec.get("volumeMounts"))):
            for key in ("subPath", "subPathExpr"):
                if isinstance(vm, dict) and vm.get(key):
                    errs.append(forbidden(f"{path}.volumeMounts[{j}].{key}", _NOT_FOR_EPHEMERAL))
    return errs


def _ephemeral_diff(old: Obj, new: Obj) -> str:
    lines = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            lines.append(f"  {k}: {old.get(k)!r} -> {new.get(k)!r}")
    return "\n".join(lines)


def validate_ephemeral_update(new: Obj, old: Obj) -> Errors:
    """ValidatePodEphemeralContainersUpdate: ephemeral containers are only ever added;
    static pods have none."""
    old_list = [c for c in as_list(as_dict(old.get("spec")).get("ephemeralContainers")) if isinstance(c, dict)]
    new_list = [c for c in as_list(as_dict(new.get("spec")).get("ephemeralContainers")) if isinstance(c, dict)]
    if old_list == new_list:
        return []
    if MIRROR_ANNOTATION in as_dict(as_dict(old.get("metadata")).get("annotations")):
        return [forbidden("", "static pods do not support ephemeral containers")]
    by_name = {c.get("name"): c for c in new_list}
    errs: Errors = []
    for oc in old_list:
        nc = by_name.get(oc.get("name"))
        if nc is None:
            errs.append(forbidden("spec.ephemeralContainers",
                                  f"existing ephemeral containers \"{oc.get('name')}\" may not be removed\n"))
        elif nc != oc:
            errs.append(forbidden("spec.ephemeralContainers",
                                  f"existing ephemeral containers \"{oc.get('name')}\" may not be changed\n"
                                  + _ephemeral_diff(oc, nc)))
    return errs


MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


@dataclass(frozen=True)
class EphemeralContainersWrite(WritePolicy):
    """PUT/PATCH of pods/ephemeralcontainers: only `spec.ephemeralContainers` comes from
    the request (upstream's dropNonEphemeralContainerUpdates)."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        merged = dict(old)
        merged["metadata"] = dict(old["metadata"])
        spec = dict(as_dict(old.get("spec")))
        wanted = as_dict(new.get("spec")).get("ephemeralContainers")
        if wanted:
            spec["ephemeralContainers"] = copy.deepcopy(wanted)
        else:
            spec.pop("ephemeralContainers", None)
        merged["spec"] = spec
        if managed_done:
            merged["metadata"]["managedFields"] = new["metadata"].get("managedFields", [])
        return merged


@dataclass(frozen=True)
class PodMainWrite(MainWrite):
    """PUT/PATCH of a pod itself: ephemeral containers change only through their subresource,
    so the stored ones are kept."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        new = super().merge(old, new, managed_done)
        old_spec, new_spec = old.get("spec"), new.get("spec")
        if isinstance(old_spec, dict) and isinstance(new_spec, dict) and \
                old_spec.get("ephemeralContainers") != new_spec.get("ephemeralContainers"):
            new["spec"] = new_spec = dict(new_spec)
            if "ephemeralContainers" in old_spec:
                new_spec["ephemeralContainers"] = old_spec["ephemeralContainers"]
            else:
                new_spec.pop("ephemeralContainers", None)
        return new


@dataclass(frozen=True)
class ResizeWrite(WritePolicy):
    """PUT/PATCH of pods/resize: only containers' resources and resize policies come from
    the request, judged by ValidatePodResize instead of the pod update rules (api/resize.py)."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        merged = merge_resize(old, new)
        if managed_done:
            merged["metadata"]["managedFields"] = new["metadata"].get("managedFields", [])
        return merged

    def validate_update(self, new: Obj, old: Obj) -> Errors | None:
        return validate_pod_resize(new, old)


_POD_MAIN = PodMainWrite(allocates=True, keeps_status=True)
_EPHEMERAL_WRITE = EphemeralContainersWrite()
_RESIZE_WRITE = ResizeWrite()


POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _changed_paths(new: Any, old: Any, path: str) -> list[str]:
    if isinstance(new, dict) and isinstance(old, dict):
        out: list[str] = []
        for key in sorted(set(new) | set(old)):
            out += _changed_paths(new.get(key), old.get(key), f"{path}.{key}")
        return out
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        out = []
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            out += _changed_paths(a, b, f"{path}[{i}]")
        return out
    return [] if new == old else [path]


def _same_spec_but_node(new: Any, old: Any) -> bool:
    if new is old:
        return True
    if not isinstance(new, dict) or not isinstance(old, dict) or len(new) - len(old) not in (0, 1):
        return False
    return all(k == "nodeName" or (k in old and v == old[k]) for k, v in new.items()) and \
        all(k in new for k in old)


def _validate_pod_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return []
    if _same_spec_but_node(new_spec, old_spec) and new_spec.get("nodeName") == old_spec.get("nodeName"):
        return []
    errs: Errors = []
    mutable = copy.deepcopy(new_spec)
    # Put back every field that an update may change, then whatever still differs is forbidden.
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(mutable.get(key)), as_list(old_spec.get(key))
        if len(new_list) == len(old_list):
            for nc, oc in zip(new_list, old_list, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict) and "image" in oc:
                    nc["image"] = oc["image"]
    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if new_deadline is not None and (old_deadline is None or (is_int(new_deadline) and is_int(old_deadline)
                                                              and new_deadline <= old_deadline)):
        mutable["activeDeadlineSeconds"] = old_deadline
        if old_deadline is None:
            mutable.pop("activeDeadlineSeconds", None)
    old_tol, new_tol = as_list(old_spec.get("tolerations")), as_list(new_spec.get("tolerations"))
    if all(t in new_tol for t in old_tol):
        if "tolerations" in old_spec:
            mutable["tolerations"] = old_spec["tolerations"]
        else:
            mutable.pop("tolerations", None)
    # Gates are checked on their own (only removals); a gated pod's nodeSelector may grow.
    errs += validate_gates_update(new_spec, old_spec)
    if "schedulingGates" in old_spec:
        mutable["schedulingGates"] = old_spec["schedulingGates"]
    else:
        mutable.pop("schedulingGates", None)
    selector_allowed, selector_errs = gated_node_selector_update(new_spec, old_spec)
    errs += selector_errs
    if selector_allowed:
        if "nodeSelector" in old_spec:
            mutable["nodeSelector"] = old_spec["nodeSelector"]
        else:
            mutable.pop("nodeSelector", None)
    affinity_allowed, affinity_errs = gated_node_affinity_update(new_spec, old_spec)
    errs += affinity_errs
    if affinity_allowed:
        affinity = mutable["affinity"] = dict(as_dict(mutable.get("affinity")))
        old_node_affinity = as_dict(old_spec.get("affinity")).get("nodeAffinity")
        if old_node_affinity is not None:
            affinity["nodeAffinity"] = old_node_affinity
        else:
            affinity.pop("nodeAffinity", None)
        if not affinity and "affinity" not in old_spec:
            del mutable["affinity"]
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and new_spec.get("terminationGracePeriodSeconds") == 1:
        mutable["terminationGracePeriodSeconds"] = old_grace
    # Ephemeral containers change only through their own subresource.
    if "ephemeralContainers" in old_spec:
        mutable["ephemeralContainers"] = old_spec["ephemeralContainers"]
    else:
        mutable.pop("ephemeralContainers", None)
    changed = _changed_paths(mutable, old_spec, "spec")
    if changed:
        errs.append(forbidden("spec", POD_UPDATE_MSG + "\n  changed: " + ", ".join(changed)))
    return errs


# Seconds of the tolerations the DefaultTolerationSeconds admission plugin adds to every
# pod, unless the server is told otherwise (`kyb server --default-toleration-seconds`).
DEFAULT_TOLERATION_SECONDS = 300


def _default_tolerations(seconds: int) -> tuple[Obj, ...]:
    return tuple({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
                 for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"))


def _tolerates(tolerations: list[Obj], key: str) -> bool:
    return any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tolerations)


def default_pod(pod: Obj, toleration_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
    spec = child_map(pod, "spec")
    default_pod_spec(spec)
    # Only a Pod (not a template) gets these: adding them to templates would change
    # template hashes of existing workloads on upgrade.
    for key in ("containers", "initContainers"):
        for c in dicts(spec.get(key)):
            resources = c.get("resources")
            limits = resources.get("limits") if isinstance(resources, dict) else None
            if isinstance(limits, dict) and limits:
                requests = child_map(resources, "requests")
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in dicts(spec.get(key)):
                for port in dicts(c.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # What the DefaultTolerationSeconds admission plugin adds (priority: api/priority.py).
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = spec["tolerations"] = []
    if isinstance(tolerations, list):
        present = dicts(tolerations)
        for extra in _default_tolerations(toleration_seconds):
            if not _tolerates(present, extra["key"]):
                tolerations.append(dict(extra))


def _columns_pod() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        column("Status", "The aggregate status of the containers in this pod."),
        column("Restarts", "The number of times the containers in this pod have been restarted and when the "
                         "last container in this pod has restarted."),
        age_column(),
        column("IP", doc("core.v1.PodStatus", "podIP"), priority=1),
        column("Node", doc("core.v1.PodSpec", "nodeName"), priority=1),
        column("Nominated Node", doc("core.v1.PodStatus", "nominatedNodeName"), priority=1),
        column("Readiness Gates", doc("core.v1.PodSpec", "readinessGates"), priority=1),
    ]


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _terminated_at(status: Mapping[str, Any]) -> datetime | None:
    return parse_time(get_path(status, "lastState", "terminated", "finishedAt"))


def pod_summary(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(Ready "a/b", Status reason, Restarts) with kubectl's rules for the STATUS column."""
    spec, status = dict_at(pod, "spec"), dict_at(pod, "status")
    init_specs = {c.get("name"): c for c in list_at(spec, "initContainers") if isinstance(c, Mapping)}
    total = len(list_at(spec, "containers")) + sum(1 for c in init_specs.values() if _is_restartable_init(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = as_str(status.get("phase"))
    reason = as_str(status.get("reason")) or phase
    conditions = list_at(status, "conditions")
    for cond in conditions:
        if isinstance(cond, Mapping) and cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = [s for s in list_at(status, "initContainerStatuses") if isinstance(s, Mapping)]
    for index, cs in enumerate(init_statuses):
        restarts += as_int(cs.get("restartCount"))
        last_restart = _later(last_restart, _terminated_at(cs))
        sidecar = _is_restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += as_int(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, _terminated_at(cs))
        terminated = dict_at(cs, "state", "terminated")
        waiting = dict_at(cs, "state", "waiting")
        if terminated and as_int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated:
            if terminated.get("reason"):
                reason = "Init:" + as_str(terminated["reason"])
            elif as_int(terminated.get("signal")):
                reason = f"Init:Signal:{as_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{as_int(terminated.get('exitCode'))}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + as_str(waiting["reason"])
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or has_condition(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        # Walking backwards lets the first container's state win, as kubectl does.
        for cs in reversed([s for s in list_at(status, "containerStatuses") if isinstance(s, Mapping)]):
            restarts += as_int(cs.get("restartCount"))
            last_restart = _later(last_restart, _terminated_at(cs))
            waiting = dict_at(cs, "state", "waiting")
            terminated = dict_at(cs, "state", "terminated")
            if waiting.get("reason"):
                reason = as_str(waiting["reason"])
            elif terminated and terminated.get("reason"):
                reason = as_str(terminated["reason"])
            elif terminated:
                if as_int(terminated.get("signal")):
                    reason = f"Signal:{as_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{as_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and get_path(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if has_condition(conditions, "Ready") else "NotReady"

    deleting = get_path(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((aware(now) - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _cells_pod(pod: Obj, now: datetime) -> Cells:
    ready, reason, restarts = pod_summary(pod, now)
    status = dict_at(pod, "status")
    ip = as_str(get_path(status, "podIPs", 0, "ip")) or as_str(status.get("podIP")) or "<none>"
    node = as_str(get_path(pod, "spec", "nodeName")) or "<none>"
    nominated = as_str(status.get("nominatedNodeName")) or "<none>"
    gates = list_at(pod, "spec", "readinessGates")
    gates_text = "<none>"
    if gates:
        by_type = {}
        for cond in list_at(status, "conditions"):
            if isinstance(cond, Mapping):
                by_type.setdefault(cond.get("type"), cond.get("status"))
        true_count = sum(1 for g in gates if isinstance(g, Mapping) and by_type.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return [name_of(pod), ready, reason, restarts, age_of(pod, now), ip, node, nominated, gates_text]


def _pod_row_conditions(pod: Obj) -> list[dict[str, str]] | None:
    phase = get_path(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# -- subresources -------------------------------------------------------------------------


@dataclass(frozen=True)
class BindingWrite(WritePolicy):
    """The scheduler's binding: the server's own write of spec.nodeName and the
    PodScheduled condition, which no user update of a pod may make."""

    validates: bool = False
    bumps_generation: bool = False


class PodBinding:
    """pods/binding: assign a pending pod to a node."""

    body_kind = "Binding"
    policy: WritePolicy | None = BindingWrite()

    def plan(self, name: str, body: Obj, current: Callable[[], Obj], now: str,
             ctx: ActionContext | None = None) -> SubresourceStep:
        node = as_dict(body.get("target")).get("name") or ""
        if not node:
            raise ApiError.invalid("", "Binding", name, [required("target.name")])
        pod = current()
        assigned = as_dict(pod.get("spec")).get("nodeName")
        if assigned:
            raise ApiError.conflict("", "pods/binding", name,
                                    f'pod {name} is already assigned to node "{assigned}"')
        if pod["metadata"].get("deletionTimestamp"):
            raise ApiError.conflict("", "pods/binding", name, f"pod {name} is being deleted, cannot be assigned")
        if as_list(as_dict(pod.get("spec")).get("schedulingGates")):
            raise ApiError.conflict("", "pods/binding", name, f"pod {name} has non-empty .spec.schedulingGates")
        # Copy only the maps this write changes; the rest is shared with the stored pod
        # (copying whole pods on every binding was a hot spot).
        new = dict(pod)
        new["metadata"] = dict(pod["metadata"])
        new["spec"] = dict(as_dict(pod.get("spec")))
        new["spec"]["nodeName"] = node
        status = dict(as_dict(pod.get("status")))
        conds = [c for c in as_list(status.get("conditions")) if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now})
        status["conditions"] = conds
        new["status"] = status
        return UpdateStep(new)


class PodEviction:
    """pods/eviction: delete the pod with the Eviction's DeleteOptions, unless that would
    violate its PodDisruptionBudget (api/disruption.py decides; the budget's status write
    goes first, guarded by its resourceVersion)."""

    body_kind = "Eviction"
    policy: WritePolicy | None = None

    def plan(self, name: str, body: Obj, current: Callable[[], Obj], now: str,
             ctx: ActionContext | None = None) -> SubresourceStep:
        given = as_dict(body.get("metadata")).get("name")
        if given and given != name:
            raise ApiError.bad_request("name in URL does not match name in Eviction object")
        options = as_dict(body.get("deleteOptions"))
        if ctx is None:
            return DeleteStep(options)
        pod = current()
        namespace = as_dict(pod.get("metadata")).get("namespace")
        dry_run = ctx.dry_run or bool(options.get("dryRun"))
        at = parse_time(now) or datetime.now(UTC)
        decided = plan_eviction(pod, ctx.related("policy", "poddisruptionbudgets", namespace), options, dry_run, at)
        before = (RelatedWrite("policy", "poddisruptionbudgets", decided.pdb),) if decided.pdb is not None else ()
        unpinned = not as_dict(options.get("preconditions")).get("resourceVersion")
        return DeleteStep(decided.delete_options, before, decided.on_conflict,
                          retry_on_conflict=unpinned and not before and decided.on_conflict is None,
                          mark=None if dry_run else lambda latest: mark_disruption_target(latest, at))


# -- the strategy -------------------------------------------------------------------------


def _mirror_service_account(pod: Obj) -> None:
    """spec.serviceAccount is the deprecated name of serviceAccountName: v1 shows both,
    and a pod that names only the old one gets its name as serviceAccountName."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    name = spec.get("serviceAccountName") or spec.get("serviceAccount")
    if isinstance(name, str) and name:
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name


class PodStrategy(KindStrategy):
    refs = (KindRef("", "Pod"),)
    # pods/status may not touch owner references: old kubelets corrupted them, breaking GC.
    status_metadata = ("labels", "annotations", "finalizers")
    # The creator (a kubelet for static pods) or the server sets a new pod's status.
    resets_status_on_create = False
    delete_returns_object = True

    def __init__(self, default_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
        super().__init__()
        self.default_toleration_seconds = default_toleration_seconds
        self._actions: dict[str, ActionSubresource] = {"binding": PodBinding(), "eviction": PodEviction()}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_pod(obj, self.default_toleration_seconds)
        _mirror_service_account(obj)
        # kube-apiserver's Pod defaulting since 1.27 (create and update): a negative grace
        # period becomes 1 rather than refused (clients wrote negative ones before it was
        # validated).
        spec = obj.get("spec")
        if isinstance(spec, dict) and is_int(spec.get("terminationGracePeriodSeconds")) \
                and spec["terminationGracePeriodSeconds"] < 0:
            spec["terminationGracePeriodSeconds"] = 1

    def default_update(self, info: ResourceInfo, obj: Obj, old: Obj) -> None:
        # Every default of a pod is in its spec; status writes and bindings (several per
        # pod) carry the stored spec, defaulted when it was written.
        if not _same_spec_but_node(obj.get("spec"), old.get("spec")):
            self.default(info, obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_pod(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_pod_update(new, old) + validate_ephemeral_update(new, old)

    def write_policy(self, info: ResourceInfo, subresource: str) -> WritePolicy | None:
        if subresource == "":
            return _POD_MAIN
        if subresource == "ephemeralcontainers":
            return _EPHEMERAL_WRITE
        if subresource == "resize":
            return _RESIZE_WRITE
        return super().write_policy(info, subresource)

    def validate_changed(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        # Status writes and bindings (every pod has several) leave the spec as stored,
        # but for the node a binding sets; a binding shares the stored spec's values, so
        # the comparison is mostly identity checks.
        new_spec, old_spec = new.get("spec"), old.get("spec")
        if not _same_spec_but_node(new_spec, old_spec):
            return _validate_pod(info, new)
        node = as_dict(new_spec).get("nodeName")
        if node and node != as_dict(old_spec).get("nodeName"):
            return name_errors(dns1123_subdomain_errors, "spec.nodeName", node)
        return []

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        drop_disabled_fields(obj.get("spec"), (old or {}).get("spec"))
        if old is None:
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Pending")
            status.setdefault("qosClass", qos_class(obj))
            apply_scheduling_gated_condition(obj, now_rfc3339())
            merge_match_label_keys(obj)

    def actions(self) -> dict[str, ActionSubresource]:
        return self._actions

    def proxy_location(self, info: ResourceInfo, namespace: str | None, segment: str,
                       lookup: Lookup) -> ProxyLocation | None:
        return pod_location(namespace, segment, lookup)

    def delete_grace_period(self, obj: Obj, requested: int | None) -> int | None:
        # Only a pod a node runs lingers: the node stops its containers, then deletes it.
        if not as_dict(obj.get("spec")).get("nodeName") or (requested is not None and requested <= 0):
            return None
        if pod_is_terminal(obj):
            return None
        if requested is not None:
            return requested
        return int(as_dict(obj.get("spec")).get("terminationGracePeriodSeconds", 30))

    def delete_is_forced(self, obj: Obj, requested: int | None) -> bool:
        # A pod whose grace period is cut to 0 while finalizers hold it is deleted as
        # soon as they are removed.
        meta = obj["metadata"]
        return (requested is not None and requested == 0 and bool(meta.get("deletionTimestamp"))
                and bool(meta.get("deletionGracePeriodSeconds")))

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_pod()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_pod(obj, now)

    def row_conditions(self, obj: Obj) -> list[dict[str, str]] | None:
        return _pod_row_conditions(obj)
