"""Server-side Table printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

This module owns the columns and cells the API server returns for `kubectl get`:
one printer per built-in kind (the same columns, cell types and `<none>`
conventions as the real server, always including the `-o wide` columns, which
carry priority 1), the generic "Created At" table for built-in kinds that have
no printer, CRD `additionalPrinterColumns` (a small JSONPath evaluator), and the
Table envelope with its `row.object` variants (`includeObject`).
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.selectors import format_labels, label_selector_to_string
from kybernetes.api.timefmt import parse_time, rfc3339

Obj = Mapping[str, Any]
Cells = list[Any]

# -- durations and timestamps --------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Render a duration like `duration.HumanDuration`: about two significant units."""
    secs = int(seconds)  # truncation toward zero, as Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def human_age(created: str | None, now: datetime) -> str:
    """Age of a timestamp as the AGE column shows it; `<unknown>` when there is none."""
    when = parse_time(created)
    if when is None:
        return "<unknown>"
    return human_duration((_aware(now) - when).total_seconds())


# -- column definitions ----------------------------------------------------------------------

_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _doc(definition: str, prop: str) -> str:
    """The API documentation of a field, which is what the real server uses as description."""
    name = definition if definition.startswith("io.k8s.") else "io.k8s.api." + definition
    node = schemas.definitions().get(name) or {}
    return str(((node.get("properties") or {}).get(prop) or {}).get("description", ""))


def _col(name: str, description: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def _name_col(priority: int = 0) -> dict[str, Any]:
    return _col("Name", _doc(_META, "name"), priority=priority, fmt="name")


def _age_col() -> dict[str, Any]:
    return _col("Age", _doc(_META, "creationTimestamp"))


_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."


def _containers_cols(selector_doc: str | None) -> list[dict[str, Any]]:
    cols = [_col("Containers", _CONTAINERS_DOC, priority=1), _col("Images", _IMAGES_DOC, priority=1)]
    if selector_doc is not None:
        cols.append(_col("Selector", selector_doc, priority=1))
    return cols


def _columns_pod() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been restarted and when the "
                         "last container in this pod has restarted."),
        _age_col(),
        _col("IP", _doc("core.v1.PodStatus", "podIP"), priority=1),
        _col("Node", _doc("core.v1.PodSpec", "nodeName"), priority=1),
        _col("Nominated Node", _doc("core.v1.PodStatus", "nominatedNodeName"), priority=1),
        _col("Readiness Gates", _doc("core.v1.PodSpec", "readinessGates"), priority=1),
    ]


def _columns_deployment() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Ready", "Number of the pod with ready state"),
        _col("Up-to-date", _doc("apps.v1.DeploymentStatus", "updatedReplicas")),
        _col("Available", _doc("apps.v1.DeploymentStatus", "availableReplicas")),
        _age_col(),
        *_containers_cols(_doc("apps.v1.DeploymentSpec", "selector")),
    ]


def _columns_replicaset() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Desired", _doc("apps.v1.ReplicaSetSpec", "replicas"), "integer"),
        _col("Current", _doc("apps.v1.ReplicaSetStatus", "replicas"), "integer"),
        _col("Ready", _doc("apps.v1.ReplicaSetStatus", "readyReplicas"), "integer"),
        _age_col(),
        *_containers_cols(_doc("apps.v1.ReplicaSetSpec", "selector")),
    ]


def _columns_rc() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Desired", _doc("core.v1.ReplicationControllerSpec", "replicas"), "integer"),
        _col("Current", _doc("core.v1.ReplicationControllerStatus", "replicas"), "integer"),
        _col("Ready", _doc("core.v1.ReplicationControllerStatus", "readyReplicas"), "integer"),
        _age_col(),
        *_containers_cols(_doc("core.v1.ReplicationControllerSpec", "selector")),
    ]


def _columns_statefulset() -> list[dict[str, Any]]:
    return [_name_col(), _col("Ready", "Number of the pod with ready state"), _age_col(), *_containers_cols(None)]


def _columns_daemonset() -> list[dict[str, Any]]:
    status = "apps.v1.DaemonSetStatus"
    return [
        _name_col(),
        _col("Desired", _doc(status, "desiredNumberScheduled"), "integer"),
        _col("Current", _doc(status, "currentNumberScheduled"), "integer"),
        _col("Ready", _doc(status, "numberReady"), "integer"),
        _col("Up-to-date", _doc(status, "updatedNumberScheduled"), "integer"),
        _col("Available", _doc(status, "numberAvailable"), "integer"),
        _col("Node Selector", _doc("core.v1.PodSpec", "nodeSelector")),
        _age_col(),
        *_containers_cols(_doc("apps.v1.DaemonSetSpec", "selector")),
    ]


def _columns_job() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Status", "Status of the job."),
        _col("Completions", _doc("batch.v1.JobStatus", "succeeded")),
        _col("Duration", "Time required to complete the job."),
        _age_col(),
        *_containers_cols(_doc("batch.v1.JobSpec", "selector")),
    ]


def _columns_cronjob() -> list[dict[str, Any]]:
    spec, status = "batch.v1.CronJobSpec", "batch.v1.CronJobStatus"
    return [
        _name_col(),
        _col("Schedule", _doc(spec, "schedule")),
        _col("Timezone", _doc(spec, "timeZone")),
        _col("Suspend", _doc(spec, "suspend"), "boolean"),
        _col("Active", _doc(status, "active"), "integer"),
        _col("Last Schedule", _doc(status, "lastScheduleTime")),
        _age_col(),
        *_containers_cols(_doc("batch.v1.JobSpec", "selector")),
    ]


def _columns_service() -> list[dict[str, Any]]:
    spec = "core.v1.ServiceSpec"
    return [
        _name_col(),
        _col("Type", _doc(spec, "type")),
        _col("Cluster-IP", _doc(spec, "clusterIP")),
        _col("External-IP", _doc(spec, "externalIPs")),
        _col("Port(s)", _doc(spec, "ports")),
        _age_col(),
        _col("Selector", _doc(spec, "selector"), priority=1),
    ]


def _columns_endpoints() -> list[dict[str, Any]]:
    return [_name_col(), _col("Endpoints", _doc("core.v1.Endpoints", "subsets")), _age_col()]


def _columns_endpointslice() -> list[dict[str, Any]]:
    es = "discovery.v1.EndpointSlice"
    return [
        _name_col(),
        _col("AddressType", _doc(es, "addressType")),
        _col("Ports", _doc(es, "ports")),
        _col("Endpoints", _doc(es, "endpoints")),
        _age_col(),
    ]


def _columns_configmap() -> list[dict[str, Any]]:
    return [_name_col(), _col("Data", _doc("core.v1.ConfigMap", "data")), _age_col()]


def _columns_secret() -> list[dict[str, Any]]:
    return [_name_col(), _col("Type", _doc("core.v1.Secret", "type")),
            _col("Data", _doc("core.v1.Secret", "data")), _age_col()]


def _columns_name_age() -> list[dict[str, Any]]:
    return [_name_col(), _age_col()]


def _columns_namespace() -> list[dict[str, Any]]:
    return [_name_col(), _col("Status", "The status of the namespace"), _age_col()]


def _columns_node() -> list[dict[str, Any]]:
    info, status = "core.v1.NodeSystemInfo", "core.v1.NodeStatus"
    return [
        _name_col(),
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _age_col(),
        _col("Version", _doc(info, "kubeletVersion")),
        _col("Internal-IP", _doc(status, "addresses"), priority=1),
        _col("External-IP", _doc(status, "addresses"), priority=1),
        _col("OS-Image", _doc(info, "osImage"), priority=1),
        _col("Kernel-Version", _doc(info, "kernelVersion"), priority=1),
        _col("Container-Runtime", _doc(info, "containerRuntimeVersion"), priority=1),
    ]


def _columns_event() -> list[dict[str, Any]]:
    ev = "core.v1.Event"
    return [
        _col("Last Seen", _doc(ev, "lastTimestamp")),
        _col("Type", _doc(ev, "type")),
        _col("Reason", _doc(ev, "reason")),
        _col("Object", _doc(ev, "involvedObject")),
        _col("Subobject", _doc("core.v1.ObjectReference", "fieldPath"), priority=1),
        _col("Source", _doc(ev, "source"), priority=1),
        _col("Message", _doc(ev, "message")),
        _col("First Seen", _doc(ev, "firstTimestamp"), priority=1),
        _col("Count", _doc(ev, "count"), priority=1),
        _name_col(priority=1),
    ]


def _columns_lease() -> list[dict[str, Any]]:
    return [_name_col(), _col("Holder", _doc("coordination.v1.LeaseSpec", "holderIdentity")), _age_col()]


def _columns_pv() -> list[dict[str, Any]]:
    spec, status = "core.v1.PersistentVolumeSpec", "core.v1.PersistentVolumeStatus"
    return [
        _name_col(),
        _col("Capacity", _doc(spec, "capacity")),
        _col("Access Modes", _doc(spec, "accessModes")),
        _col("Reclaim Policy", _doc(spec, "persistentVolumeReclaimPolicy")),
        _col("Status", _doc(status, "phase")),
        _col("Claim", _doc(spec, "claimRef")),
        _col("StorageClass", "StorageClass of the pv"),
        _col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        _col("Reason", _doc(status, "reason")),
        _age_col(),
        _col("VolumeMode", _doc(spec, "volumeMode"), priority=1),
    ]


def _columns_pvc() -> list[dict[str, Any]]:
    spec, status = "core.v1.PersistentVolumeClaimSpec", "core.v1.PersistentVolumeClaimStatus"
    return [
        _name_col(),
        _col("Status", _doc(status, "phase")),
        _col("Volume", _doc(spec, "volumeName")),
        _col("Capacity", _doc(status, "capacity")),
        _col("Access Modes", _doc(status, "accessModes")),
        _col("StorageClass", "StorageClass of the pvc"),
        _col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        _age_col(),
        _col("VolumeMode", _doc(spec, "volumeMode"), priority=1),
    ]


def _columns_storageclass() -> list[dict[str, Any]]:
    sc = "storage.v1.StorageClass"
    return [
        _name_col(),
        _col("Provisioner", _doc(sc, "provisioner")),
        _col("ReclaimPolicy", _doc(sc, "reclaimPolicy")),
        _col("VolumeBindingMode", _doc(sc, "volumeBindingMode")),
        _col("AllowVolumeExpansion", _doc(sc, "allowVolumeExpansion")),
        _age_col(),
    ]


def _columns_ingress() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Class", "The name of the IngressClass resource that should be used for additional configuration"),
        _col("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        _col("Address", "Address is a list containing ingress points for the load-balancer"),
        _col("Ports", "Ports of TLS configurations that open"),
        _age_col(),
    ]


def _columns_ingressclass() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Controller", "Controller that is responsible for handling this class"),
        _col("Parameters", "A reference to a resource with additional parameters"),
        _age_col(),
    ]


def _columns_networkpolicy() -> list[dict[str, Any]]:
    return [_name_col(), _col("Pod-Selector", _doc("networking.v1.NetworkPolicySpec", "podSelector")), _age_col()]


def _columns_hpa() -> list[dict[str, Any]]:
    spec, status = "autoscaling.v2.HorizontalPodAutoscalerSpec", "autoscaling.v2.HorizontalPodAutoscalerStatus"
    return [
        _name_col(),
        _col("Reference", _doc(spec, "scaleTargetRef")),
        _col("Targets", _doc(spec, "metrics")),
        _col("MinPods", _doc(spec, "minReplicas")),
        _col("MaxPods", _doc(spec, "maxReplicas")),
        _col("Replicas", _doc(status, "currentReplicas")),
        _age_col(),
    ]


def _columns_pdb() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Min Available", "The minimum number of pods that must be available."),
        _col("Max Unavailable", "The maximum number of pods that may be unavailable."),
        _col("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.", "integer"),
        _age_col(),
    ]


def _columns_binding(kind: str, what: str) -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Role", _doc(f"rbac.v1.{kind}", "roleRef")),
        _age_col(),
        _col("Users", f"Users in the {what}", priority=1),
        _col("Groups", f"Groups in the {what}", priority=1),
        _col("ServiceAccounts", f"ServiceAccounts in the {what}", priority=1),
    ]


def _columns_resourcequota() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
        _col("Limit", "Limits control the maximum amount of cpu/memory that a container may use independent "
                      "of contention on the node."),
        _age_col(),
    ]


def _columns_controllerrevision() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Controller", "Controller of the object"),
        _col("Revision", _doc("apps.v1.ControllerRevision", "revision")),
        _age_col(),
    ]


def _columns_priorityclass() -> list[dict[str, Any]]:
    pc = "scheduling.v1.PriorityClass"
    return [
        _name_col(),
        _col("Value", _doc(pc, "value"), "integer"),
        _col("Global-Default", _doc(pc, "globalDefault"), "boolean"),
        _age_col(),
        _col("PreemptionPolicy", _doc(pc, "preemptionPolicy")),
    ]


def _columns_podtemplate() -> list[dict[str, Any]]:
    return [
        _name_col(),
        _col("Containers", _CONTAINERS_DOC),
        _col("Images", _IMAGES_DOC),
        _col("Pod Labels", "The labels for the pod template."),
    ]


def _columns_created_at() -> list[dict[str, Any]]:
    # The generic table of built-in kinds without a printer shows the raw timestamp.
    return [_name_col(), _col("Created At", _doc(_META, "creationTimestamp"), "date")]


# -- small helpers shared by the printers ---------------------------------------------------


def _get(obj: Any, *path: str | int) -> Any:
    """Walk dicts/lists; None as soon as something is missing."""
    node = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return None
            node = node[step]
        else:
            if not isinstance(node, Mapping):
                return None
            node = node.get(step)
        if node is None:
            return None
    return node


def _list(obj: Any, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _dict(obj: Any, *path: str) -> Mapping[str, Any]:
    value = _get(obj, *path)
    return value if isinstance(value, Mapping) else {}


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _name(obj: Obj) -> str:
    return _str(_get(obj, "metadata", "name"))


def _age(obj: Obj, now: datetime) -> str:
    return human_age(_get(obj, "metadata", "creationTimestamp"), now)


def _since(value: Any, now: datetime) -> str:
    return human_age(value if isinstance(value, str) else None, now)


def _containers(containers: list[Any]) -> tuple[str, str]:
    names = ",".join(_str(c.get("name")) for c in containers if isinstance(c, Mapping))
    images = ",".join(_str(c.get("image")) for c in containers if isinstance(c, Mapping))
    return names, images


def _format_selector(sel: Any) -> str:
    """`metav1.FormatLabelSelector`: the string form, `<none>` when it is empty."""
    text = label_selector_to_string(sel if isinstance(sel, Mapping) else None)
    return text or "<none>"


def _int_or_string(value: Any) -> str:
    return str(value)


def _bool_word(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def _has_condition(conditions: list[Any], ctype: str) -> bool:
    for cond in conditions:
        if isinstance(cond, Mapping) and cond.get("type") == ctype:
            return cond.get("status") == "True"
    return False


def _join_host_port(host: str, port: Any) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def _list_with_more(items: list[str], total: int, limit: int, empty: str) -> str:
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


# -- pods -----------------------------------------------------------------------------------


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _terminated_at(status: Mapping[str, Any]) -> datetime | None:
    return parse_time(_get(status, "lastState", "terminated", "finishedAt"))


def pod_summary(pod: Obj, now: datetime) -> tuple[str, str, str]:
    """(Ready "a/b", Status reason, Restarts) with kubectl's rules for the STATUS column."""
    spec, status = _dict(pod, "spec"), _dict(pod, "status")
    init_specs = {c.get("name"): c for c in _list(spec, "initContainers") if isinstance(c, Mapping)}
    total = len(_list(spec, "containers")) + sum(1 for c in init_specs.values() if _is_restartable_init(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = _str(status.get("phase"))
    reason = _str(status.get("reason")) or phase
    conditions = _list(status, "conditions")
    for cond in conditions:
        if isinstance(cond, Mapping) and cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = [s for s in _list(status, "initContainerStatuses") if isinstance(s, Mapping)]
    for index, cs in enumerate(init_statuses):
        restarts += _int(cs.get("restartCount"))
        last_restart = _later(last_restart, _terminated_at(cs))
        sidecar = _is_restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            last_sidecar_restart = _later(last_sidecar_restart, _terminated_at(cs))
        terminated = _dict(cs, "state", "terminated")
        waiting = _dict(cs, "state", "waiting")
        if terminated and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated:
            if terminated.get("reason"):
                reason = "Init:" + _str(terminated["reason"])
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + _str(waiting["reason"])
        else:
            reason = f"Init:{index}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        # Walking backwards lets the first container's state win, as kubectl does.
        for cs in reversed([s for s in _list(status, "containerStatuses") if isinstance(s, Mapping)]):
            restarts += _int(cs.get("restartCount"))
            last_restart = _later(last_restart, _terminated_at(cs))
            waiting = _dict(cs, "state", "waiting")
            terminated = _dict(cs, "state", "terminated")
            if waiting.get("reason"):
                reason = _str(waiting["reason"])
            elif terminated and terminated.get("reason"):
                reason = _str(terminated["reason"])
            elif terminated:
                if _int(terminated.get("signal")):
                    reason = f"Signal:{_int(terminated.get('signal'))}"
                else:
                    reason = f"ExitCode:{_int(terminated.get('exitCode'))}"
            elif cs.get("ready") and _get(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    deleting = _get(pod, "metadata", "deletionTimestamp") is not None
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((_aware(now) - last_restart).total_seconds())} ago)"
    return f"{ready}/{total}", reason, restarts_text


def _cells_pod(pod: Obj, now: datetime) -> Cells:
    ready, reason, restarts = pod_summary(pod, now)
    status = _dict(pod, "status")
    ip = _str(_get(status, "podIPs", 0, "ip")) or _str(status.get("podIP")) or "<none>"
    node = _str(_get(pod, "spec", "nodeName")) or "<none>"
    nominated = _str(status.get("nominatedNodeName")) or "<none>"
    gates = _list(pod, "spec", "readinessGates")
    gates_text = "<none>"
    if gates:
        by_type = {}
        for cond in _list(status, "conditions"):
            if isinstance(cond, Mapping):
                by_type.setdefault(cond.get("type"), cond.get("status"))
        true_count = sum(1 for g in gates if isinstance(g, Mapping) and by_type.get(g.get("conditionType")) == "True")
        gates_text = f"{true_count}/{len(gates)}"
    return [_name(pod), ready, reason, restarts, _age(pod, now), ip, node, nominated, gates_text]


def _pod_row_conditions(pod: Obj) -> list[dict[str, str]] | None:
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


# -- workloads -------------------------------------------------------------------------------


def _replicas(obj: Obj) -> int:
    # The server defaults spec.replicas to 1; an object that somehow lacks it counts as such.
    return _int(_get(obj, "spec", "replicas"), 1)


def _cells_deployment(obj: Obj, now: datetime) -> Cells:
    status = _dict(obj, "status")
    names, images = _containers(_list(obj, "spec", "template", "spec", "containers"))
    selector = _get(obj, "spec", "selector")
    return [_name(obj), f"{_int(status.get('readyReplicas'))}/{_replicas(obj)}",
            _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")), _age(obj, now),
            names, images, label_selector_to_string(selector if isinstance(selector, Mapping) else None)]


def _cells_replicaset(obj: Obj, now: datetime) -> Cells:
    status = _dict(obj, "status")
    names, images = _containers(_list(obj, "spec", "template", "spec", "containers"))
    return [_name(obj), _replicas(obj), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            _age(obj, now), names, images, _format_selector(_get(obj, "spec", "selector"))]


def _cells_rc(obj: Obj, now: datetime) -> Cells:
    status = _dict(obj, "status")
    names, images = _containers(_list(obj, "spec", "template", "spec", "containers"))
    return [_name(obj), _replicas(obj), _int(status.get("replicas")), _int(status.get("readyReplicas")),
            _age(obj, now), names, images, format_labels(_dict(obj, "spec", "selector"))]


def _cells_statefulset(obj: Obj, now: datetime) -> Cells:
    names, images = _containers(_list(obj, "spec", "template", "spec", "containers"))
    return [_name(obj), f"{_int(_get(obj, 'status', 'readyReplicas'))}/{_replicas(obj)}", _age(obj, now),
            names, images]


def _cells_daemonset(obj: Obj, now: datetime) -> Cells:
    status = _dict(obj, "status")
    names, images = _containers(_list(obj, "spec", "template", "spec", "containers"))
    return [_name(obj), _int(status.get("desiredNumberScheduled")), _int(status.get("currentNumberScheduled")),
            _int(status.get("numberReady")), _int(status.get("updatedNumberScheduled")),
            _int(status.get("numberAvailable")), format_labels(_dict(obj, "spec", "template", "spec", "nodeSelector")),
            _age(obj, now), names, images, _format_selector(_get(obj, "spec", "selector"))]


def job_status_word(job: Obj) -> str:
    """The STATUS column of a Job."""
    conditions = _list(job, "status", "conditions")
    if _has_condition(conditions, "Complete"):
        return "Complete"
    if _has_condition(conditions, "Failed"):
        return "Failed"
    if _get(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if _has_condition(conditions, "Suspended"):
        return "Suspended"
    if _has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _cells_job(obj: Obj, now: datetime) -> Cells:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_int(spec.get('completions'))}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    if start is None:
        took = ""
    else:
        took = human_duration(((end or _aware(now)) - start).total_seconds())
    names, images = _containers(_list(spec, "template", "spec", "containers"))
    return [_name(obj), job_status_word(obj), completions, took, _age(obj, now), names, images,
            _format_selector(spec.get("selector"))]


def _cells_cronjob(obj: Obj, now: datetime) -> Cells:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    last = status.get("lastScheduleTime")
    names, images = _containers(_list(spec, "jobTemplate", "spec", "template", "spec", "containers"))
    return [_name(obj), _str(spec.get("schedule")), _str(spec.get("timeZone")) or "<none>",
            _bool_word(spec.get("suspend")), len(_list(status, "active")),
            "<none>" if last is None else _since(last, now), _age(obj, now), names, images,
            _format_selector(_get(spec, "jobTemplate", "spec", "selector"))]


def _cells_podtemplate(obj: Obj, now: datetime) -> Cells:
    names, images = _containers(_list(obj, "template", "spec", "containers"))
    return [_name(obj), names, images, format_labels(_dict(obj, "template", "metadata", "labels"))]


def _cells_controllerrevision(obj: Obj, now: datetime) -> Cells:
    controller = "<none>"
    for ref in _list(obj, "metadata", "ownerReferences"):
        if isinstance(ref, Mapping) and ref.get("controller"):
            group = _str(ref.get("apiVersion")).rpartition("/")[0]
            kind = _str(ref.get("kind"))
            qualified = f"{kind}.{group}" if group else kind
            controller = f"{qualified.lower()}/{_str(ref.get('name'))}" if qualified else _str(ref.get("name"))
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


def _cells_hpa(obj: Obj, now: datetime) -> Cells:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    ref = _dict(spec, "scaleTargetRef")
    min_pods = "<unset>" if spec.get("minReplicas") is None else str(_int(spec.get("minReplicas")))
    return [_name(obj), f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}",
            hpa_targets(_list(spec, "metrics"), _list(status, "currentMetrics")), min_pods,
            _int(spec.get("maxReplicas")), _int(status.get("currentReplicas")), _age(obj, now)]


def _metric_target(target: Mapping[str, Any], current: Mapping[str, Any] | None, prefix: str,
                   utilization: bool) -> str:
    if target.get("averageValue") is not None:
        now_value = _str((current or {}).get("averageValue")) or "<unknown>"
        return f"{prefix}{now_value}/{target['averageValue']}" + ("" if prefix else " (avg)")
    if utilization:
        cur = (current or {}).get("averageUtilization")
        want = target.get("averageUtilization")
        return f"{prefix}{'<unknown>' if cur is None else f'{cur}%'}/{'<auto>' if want is None else f'{want}%'}"
    now_value = _str((current or {}).get("value")) or "<unknown>"
    return f"{prefix}{now_value}/{_str(target.get('value'))}"


def hpa_targets(specs: list[Any], statuses: list[Any]) -> str:
    """The TARGETS column of an autoscaling/v2 HorizontalPodAutoscaler."""
    if not specs:
        return "<none>"
    items: list[str] = []
    for i, spec in enumerate(specs):
        status = statuses[i] if i < len(statuses) and isinstance(statuses[i], Mapping) else {}
        mtype = spec.get("type") if isinstance(spec, Mapping) else None
        if mtype == "Pods":
            cur = _get(status, "pods", "current", "averageValue")
            items.append(f"{_str(cur) or '<unknown>'}/{_str(_get(spec, 'pods', 'target', 'averageValue'))}")
        elif mtype in ("Object", "External"):
            key = mtype.lower()
            items.append(_metric_target(_dict(spec, key, "target"), _dict(status, key, "current") or None, "", False))
        elif mtype in ("Resource", "ContainerResource"):
            key = "resource" if mtype == "Resource" else "containerResource"
            prefix = f"{_str(_get(spec, key, 'name'))}: "
            items.append(_metric_target(_dict(spec, key, "target"), _dict(status, key, "current") or None, prefix, True))
        else:
            items.append("<unknown type>")
    text = ", ".join(items[:2])
    return f"{text} + {len(items) - 2} more..." if len(items) > 2 else text


def _cells_pdb(obj: Obj, now: datetime) -> Cells:
    spec = _dict(obj, "spec")
    min_available = "N/A" if spec.get("minAvailable") is None else _int_or_string(spec["minAvailable"])
    max_unavailable = "N/A" if spec.get("maxUnavailable") is None else _int_or_string(spec["maxUnavailable"])
    return [_name(obj), min_available, max_unavailable, _int(_get(obj, "status", "disruptionsAllowed")),
            _age(obj, now)]


# -- networking ------------------------------------------------------------------------------


def service_ports(ports: list[Any]) -> str:
    """`80/TCP,443:30443/TCP`, or `<none>`."""
    pieces = []
    for port in ports:
        if not isinstance(port, Mapping):
            continue
        protocol = _str(port.get("protocol")) or "TCP"
        if _int(port.get("nodePort")) > 0:
            pieces.append(f"{_int(port.get('port'))}:{_int(port.get('nodePort'))}/{protocol}")
        else:
            pieces.append(f"{_int(port.get('port'))}/{protocol}")
    return ",".join(pieces) or "<none>"


def _load_balancer_addresses(status: Mapping[str, Any]) -> str:
    found = set()
    for entry in _list(status, "ingress"):
        if isinstance(entry, Mapping):
            if entry.get("ip"):
                found.add(_str(entry["ip"]))
            elif entry.get("hostname"):
                found.add(_str(entry["hostname"]))
    return ",".join(sorted(found))


def service_external_ip(svc: Obj) -> str:
    spec = _dict(svc, "spec")
    stype = _str(spec.get("type")) or "ClusterIP"
    external = [_str(ip) for ip in _list(spec, "externalIPs")]
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if stype == "LoadBalancer":
        lb = _load_balancer_addresses(_dict(svc, "status", "loadBalancer"))
        if external:
            return ",".join(([lb] if lb else []) + external)
        return lb or "<pending>"
    if stype == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _cells_service(obj: Obj, now: datetime) -> Cells:
    spec = _dict(obj, "spec")
    cluster_ip = _str(_get(spec, "clusterIPs", 0)) or _str(spec.get("clusterIP")) or "<none>"
    return [_name(obj), _str(spec.get("type")) or "ClusterIP", cluster_ip, service_external_ip(obj),
            service_ports(_list(spec, "ports")), _age(obj, now), format_labels(_dict(spec, "selector"))]


def endpoints_summary(obj: Obj) -> str:
    """The ENDPOINTS column of core/v1 Endpoints: up to three `ip:port`, then `+ N more...`."""
    subsets = _list(obj, "subsets")
    if not subsets:
        return "<none>"
    listed: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [_str(a.get("ip")) for a in _list(subset, "addresses") if isinstance(a, Mapping)]
        ports = [p for p in _list(subset, "ports") if isinstance(p, Mapping)]
        if not ports:
            count += len(addresses)
            listed.extend(addresses)
            continue
        for port in ports:
            count += len(addresses)
            listed.extend(_join_host_port(ip, _int(port.get("port"))) for ip in addresses)
    text = ",".join(listed[:3])
    return f"{text} + {count - 3} more..." if count > 3 else text


def _cells_endpoints(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), endpoints_summary(obj), _age(obj, now)]


def _cells_endpointslice(obj: Obj, now: datetime) -> Cells:
    ports = []
    for port in _list(obj, "ports"):
        if isinstance(port, Mapping):
            if port.get("port") is not None:
                ports.append(str(_int(port.get("port"))))
            elif port.get("name") is not None:
                ports.append(_str(port.get("name")))
            else:
                ports.append("*")
    addresses = [_str(a) for ep in _list(obj, "endpoints") for a in _list(ep, "addresses")]
    return [_name(obj), _str(obj.get("addressType")), _list_with_more(ports, len(ports), 3, "<unset>"),
            _list_with_more(addresses, len(addresses), 3, "<unset>"), _age(obj, now)]


def _ingress_hosts(rules: list[Any]) -> str:
    # Rules without a host take no slot, but once three hosts are listed every remaining
    # rule (host or not) counts towards "more".
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
            break
        if isinstance(rule, Mapping) and rule.get("host"):
            hosts.append(_str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _cells_ingress(obj: Obj, now: datetime) -> Cells:
    spec = _dict(obj, "spec")
    return [_name(obj), _str(spec.get("ingressClassName")) or "<none>", _ingress_hosts(_list(spec, "rules")),
            _load_balancer_addresses(_dict(obj, "status", "loadBalancer")),
            "80, 443" if _list(spec, "tls") else "80", _age(obj, now)]


def _cells_ingressclass(obj: Obj, now: datetime) -> Cells:
    spec = _dict(obj, "spec")
    params = _dict(spec, "parameters")
    text = "<none>"
    if params:
        text = _str(params.get("kind"))
        if params.get("apiGroup") is not None:
            text += "." + _str(params.get("apiGroup"))
        text += "/" + _str(params.get("name"))
    return [_name(obj), _str(spec.get("controller")), text, _age(obj, now)]


def _cells_networkpolicy(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _format_selector(_dict(obj, "spec", "podSelector")), _age(obj, now)]


# -- config, cluster and storage --------------------------------------------------------------


def _cells_configmap(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), len(_dict(obj, "data")) + len(_dict(obj, "binaryData")), _age(obj, now)]


def _cells_secret(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _str(obj.get("type")), len(_dict(obj, "data")), _age(obj, now)]


def _cells_name_age(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _age(obj, now)]


def _cells_created_at(obj: Obj, now: datetime) -> Cells:
    created = parse_time(_get(obj, "metadata", "creationTimestamp"))
    stamp = rfc3339(created) if created else None
    return [_name(obj), stamp]


def _cells_namespace(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _str(_get(obj, "status", "phase")), _age(obj, now)]


def node_status_word(node: Obj) -> str:
    """`Ready`, `NotReady`, `Unknown`, plus `,SchedulingDisabled` when cordoned."""
    words = []
    for cond in _list(node, "status", "conditions"):
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            words = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not words:
        words = ["Unknown"]
    if _get(node, "spec", "unschedulable"):
        words.append("SchedulingDisabled")
    return ",".join(words)


def node_roles(node: Obj) -> str:
    roles = set()
    for key, value in _dict(node, "metadata", "labels").items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(_str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for addr in _list(node, "status", "addresses"):
        if isinstance(addr, Mapping) and addr.get("type") == kind:
            return _str(addr.get("address"))
    return "<none>"


def _cells_node(obj: Obj, now: datetime) -> Cells:
    info = _dict(obj, "status", "nodeInfo")
    return [_name(obj), node_status_word(obj), node_roles(obj), _age(obj, now), _str(info.get("kubeletVersion")),
            _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
            _str(info.get("osImage")) or "<unknown>", _str(info.get("kernelVersion")) or "<unknown>",
            _str(info.get("containerRuntimeVersion")) or "<unknown>"]


def _core_event_view(ev: Obj) -> Obj:
    """Present an events.k8s.io/v1 Event with the core/v1 field names the printer reads."""
    new_api = _str(ev.get("apiVersion")).startswith("events.k8s.io/")
    if not new_api and "regarding" not in ev and "note" not in ev and "deprecatedSource" not in ev:
        return ev
    return {
        "metadata": ev.get("metadata") or {},
        "involvedObject": ev.get("regarding") or {},
        "reason": ev.get("reason"),
        "message": ev.get("note"),
        "type": ev.get("type"),
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "source": ev.get("deprecatedSource") or {},
        "eventTime": ev.get("eventTime"),
        "series": ev.get("series"),
        "reportingComponent": ev.get("reportingController"),
        "reportingInstance": ev.get("reportingInstance"),
    }


def _cells_event(raw: Obj, now: datetime) -> Cells:
    ev = _core_event_view(raw)
    first = _since(ev.get("firstTimestamp"), now)
    if parse_time(ev.get("firstTimestamp")) is None:
        first = _since(ev.get("eventTime"), now)
    last = _since(ev.get("lastTimestamp"), now)
    if parse_time(ev.get("lastTimestamp")) is None:
        last = first
    count = _int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = _since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = _dict(ev, "involvedObject")
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{_str(involved.get('name'))}" if involved.get("name") else kind
    component = _str(_get(ev, "source", "component")) or _str(ev.get("reportingComponent"))
    host = _str(_get(ev, "source", "host")) or _str(ev.get("reportingInstance"))
    source = f"{component}, {host}" if host else component
    return [last, _str(ev.get("type")), _str(ev.get("reason")), target, _str(involved.get("fieldPath")), source,
            _str(ev.get("message")).strip(), first, count, _name(raw)]


def _cells_lease(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _str(_get(obj, "spec", "holderIdentity")), _age(obj, now)]


_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[Any]) -> str:
    return ",".join(short for full, short in _ACCESS_MODES if full in modes)


def _storage_class_of(obj: Obj) -> str:
    # The beta annotation predates the field and still wins when present.
    annotated = _dict(obj, "metadata", "annotations").get("volume.beta.kubernetes.io/storage-class")
    if annotated is not None:
        return _str(annotated)
    return _str(_get(obj, "spec", "storageClassName"))


def _cells_pv(obj: Obj, now: datetime) -> Cells:
    spec = _dict(obj, "spec")
    claim = _dict(spec, "claimRef")
    claim_text = f"{_str(claim.get('namespace'))}/{_str(claim.get('name'))}" if claim else ""
    phase = "Terminating" if _get(obj, "metadata", "deletionTimestamp") else _str(_get(obj, "status", "phase"))
    return [_name(obj), _str(_get(spec, "capacity", "storage")) or "0", access_modes(_list(spec, "accessModes")),
            _str(spec.get("persistentVolumeReclaimPolicy")), phase, claim_text, _storage_class_of(obj),
            _str(spec.get("volumeAttributesClassName")) or "<unset>", _str(_get(obj, "status", "reason")),
            _age(obj, now), _str(spec.get("volumeMode")) or "<unset>"]


def _cells_pvc(obj: Obj, now: datetime) -> Cells:
    spec, status = _dict(obj, "spec"), _dict(obj, "status")
    phase = "Terminating" if _get(obj, "metadata", "deletionTimestamp") else _str(status.get("phase"))
    capacity, modes = "", ""
    if spec.get("volumeName"):
        modes = access_modes(_list(status, "accessModes"))
        capacity = _str(_get(status, "capacity", "storage")) or "0"
    return [_name(obj), phase, _str(spec.get("volumeName")), capacity, modes, _storage_class_of(obj),
            _str(spec.get("volumeAttributesClassName")) or "<unset>", _age(obj, now),
            _str(spec.get("volumeMode")) or "<unset>"]


def _cells_storageclass(obj: Obj, now: datetime) -> Cells:
    annotations = _dict(obj, "metadata", "annotations")
    default = "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                         annotations.get("storageclass.beta.kubernetes.io/is-default-class"))
    name = _name(obj) + (" (default)" if default else "")
    return [name, _str(obj.get("provisioner")), _str(obj.get("reclaimPolicy")) or "Delete",
            _str(obj.get("volumeBindingMode")) or "Immediate", bool(obj.get("allowVolumeExpansion")),
            _age(obj, now)]


def _subjects(obj: Obj) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for subject in _list(obj, "subjects"):
        if not isinstance(subject, Mapping):
            continue
        kind = subject.get("kind")
        if kind == "User":
            users.append(_str(subject.get("name")))
        elif kind == "Group":
            groups.append(_str(subject.get("name")))
        elif kind == "ServiceAccount":
            sas.append(f"{_str(subject.get('namespace'))}/{_str(subject.get('name'))}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _cells_binding(obj: Obj, now: datetime) -> Cells:
    ref = _dict(obj, "roleRef")
    return [_name(obj), f"{_str(ref.get('kind'))}/{_str(ref.get('name'))}", _age(obj, now), *_subjects(obj)]


def _cells_resourcequota(obj: Obj, now: datetime) -> Cells:
    hard, used = _dict(obj, "status", "hard"), _dict(obj, "status", "used")
    requests, limits = [], []
    for resource in sorted(hard):
        text = f"{resource}: {_str(used.get(resource)) or '0'}/{_str(hard[resource])}"
        (limits if resource.split(".")[0] == "limits" and "." in resource else requests).append(text)
    return [_name(obj), ", ".join(requests), ", ".join(limits), _age(obj, now)]


def _cells_priorityclass(obj: Obj, now: datetime) -> Cells:
    return [_name(obj), _int(obj.get("value")), bool(obj.get("globalDefault")), _age(obj, now),
            _str(obj.get("preemptionPolicy"))]


# -- the printer table ------------------------------------------------------------------------

_Printer = tuple[Callable[[], list[dict[str, Any]]], Callable[[Obj, datetime], Cells]]

_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): (_columns_pod, _cells_pod),
    ("", "PodTemplate"): (_columns_podtemplate, _cells_podtemplate),
    ("", "ReplicationController"): (_columns_rc, _cells_rc),
    ("", "Service"): (_columns_service, _cells_service),
    ("", "Endpoints"): (_columns_endpoints, _cells_endpoints),
    ("", "ConfigMap"): (_columns_configmap, _cells_configmap),
    ("", "Secret"): (_columns_secret, _cells_secret),
    # The Secrets count column is gone since the tokens controller stopped filling it.
    ("", "ServiceAccount"): (_columns_name_age, _cells_name_age),
    ("", "Namespace"): (_columns_namespace, _cells_namespace),
    ("", "Node"): (_columns_node, _cells_node),
    ("", "Event"): (_columns_event, _cells_event),
    ("events.k8s.io", "Event"): (_columns_event, _cells_event),
    ("", "PersistentVolume"): (_columns_pv, _cells_pv),
    ("", "PersistentVolumeClaim"): (_columns_pvc, _cells_pvc),
    ("", "ResourceQuota"): (_columns_resourcequota, _cells_resourcequota),
    ("apps", "Deployment"): (_columns_deployment, _cells_deployment),
    ("apps", "ReplicaSet"): (_columns_replicaset, _cells_replicaset),
    ("apps", "StatefulSet"): (_columns_statefulset, _cells_statefulset),
    ("apps", "DaemonSet"): (_columns_daemonset, _cells_daemonset),
    ("apps", "ControllerRevision"): (_columns_controllerrevision, _cells_controllerrevision),
    ("batch", "Job"): (_columns_job, _cells_job),
    ("batch", "CronJob"): (_columns_cronjob, _cells_cronjob),
    ("autoscaling", "HorizontalPodAutoscaler"): (_columns_hpa, _cells_hpa),
    ("policy", "PodDisruptionBudget"): (_columns_pdb, _cells_pdb),
    ("discovery.k8s.io", "EndpointSlice"): (_columns_endpointslice, _cells_endpointslice),
    ("coordination.k8s.io", "Lease"): (_columns_lease, _cells_lease),
    ("networking.k8s.io", "Ingress"): (_columns_ingress, _cells_ingress),
    ("networking.k8s.io", "IngressClass"): (_columns_ingressclass, _cells_ingressclass),
    ("networking.k8s.io", "NetworkPolicy"): (_columns_networkpolicy, _cells_networkpolicy),
    ("rbac.authorization.k8s.io", "RoleBinding"): (
        lambda: _columns_binding("RoleBinding", "roleBinding"), _cells_binding),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (
        lambda: _columns_binding("ClusterRoleBinding", "clusterRoleBinding"), _cells_binding),
    ("storage.k8s.io", "StorageClass"): (_columns_storageclass, _cells_storageclass),
    ("scheduling.k8s.io", "PriorityClass"): (_columns_priorityclass, _cells_priorityclass),
}

# Built-in kinds the real server prints through its generic convertor (name + raw timestamp).
_CREATED_AT_KINDS = {
    ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "ClusterRole"),
    ("", "LimitRange"), ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
}


def _printer_for(info: ResourceInfo) -> _Printer:
    if not info.is_custom:
        printer = _PRINTERS.get((info.group, info.kind))
        if printer is not None:
            return printer
        if (info.group, info.kind) in _CREATED_AT_KINDS:
            return _columns_created_at, _cells_created_at
    return _columns_name_age, _cells_name_age


@functools.cache
def _builtin_columns(group: str, kind: str) -> tuple[dict[str, Any], ...]:
    info_printer = _PRINTERS.get((group, kind))
    if info_printer is not None:
        return tuple(info_printer[0]())
    if (group, kind) in _CREATED_AT_KINDS:
        return tuple(_columns_created_at())
    return tuple(_columns_name_age())


# -- custom resources: additionalPrinterColumns --------------------------------------------------


class _JsonPathError(ValueError):
    pass


def _parse_jsonpath(path: str) -> list[tuple[str, Any]]:
    """Compile the simple JSONPath subset CRD columns use into steps:
    ("key", name) | ("index", n) | ("all", None) | ("filter", (subpath, op, literal))."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == ".":
            i += 1
            name: list[str] = []
            while i < n and text[i] not in ".[":
                if text[i] == "\\" and i + 1 < n:
                    name.append(text[i + 1])
                    i += 2
                    continue
                name.append(text[i])
                i += 1
            if name:
                steps.append(("key", "".join(name)))
            continue
        if ch == "[":
            end = _matching_bracket(text, i)
            inner = text[i + 1:end].strip()
            i = end + 1
            steps.append(_bracket_step(inner))
            continue
        raise _JsonPathError(f"unexpected {ch!r} in {path!r}")
    return steps


def _matching_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise _JsonPathError(f"unclosed bracket in {text!r}")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bracket_step(inner: str) -> tuple[str, Any]:
    if inner == "*":
        return ("all", None)
    if inner.startswith("?(") and inner.endswith(")"):
        expr = inner[2:-1].strip()
        for op in ("==", "!="):
            if op in expr:
                left, right = expr.split(op, 1)
                return ("filter", (_filter_subpath(left), op, _literal(right)))
        return ("filter", (_filter_subpath(expr), "exists", None))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("key", inner[1:-1])
    try:
        return ("index", int(inner))
    except ValueError:
        raise _JsonPathError(f"unsupported selector [{inner}]") from None


def _filter_subpath(text: str) -> list[tuple[str, Any]]:
    text = text.strip()
    if not text.startswith("@"):
        raise _JsonPathError(f"unsupported filter {text!r}")
    return _parse_jsonpath(text[1:])


def _walk(nodes: list[Any], steps: list[tuple[str, Any]]) -> list[Any]:
    for kind, arg in steps:
        out: list[Any] = []
        for node in nodes:
            if kind == "key" and isinstance(node, Mapping) and arg in node:
                out.append(node[arg])
            elif kind == "index" and isinstance(node, list) and -len(node) <= arg < len(node):
                out.append(node[arg])
            elif kind == "all":
                if isinstance(node, list):
                    out.extend(node)
                elif isinstance(node, Mapping):
                    out.extend(node.values())
            elif kind == "filter" and isinstance(node, list):
                sub, op, want = arg
                for item in node:
                    found = _walk([item], sub)
                    if op == "exists" and found:
                        out.append(item)
                    elif op == "==" and found and found[0] == want:
                        out.append(item)
                    elif op == "!=" and found and found[0] != want:
                        out.append(item)
        nodes = out
    return nodes


def jsonpath_first(obj: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of the first result of a simple JSONPath; missing keys are not errors."""
    results = _walk([obj], _parse_jsonpath(path))
    return (True, results[0]) if results else (False, None)


def _go_number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e21 else repr(value)


def _render_string_cell(value: Any) -> str:
    # JSONPath printing: scalars bare, objects and arrays as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_number(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def custom_cell(col_type: str, value: Any, now: datetime) -> Any:
    """One CRD printer-column cell: typed like the column, None when it does not fit."""
    if value is None:
        return None
    if col_type == "string":
        return _render_string_cell(value)
    if col_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if col_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if col_type == "date":
        if not isinstance(value, str):
            return None
        when = parse_time(value)
        if when is None:
            return "<invalid>"
        return human_duration((_aware(now) - when).total_seconds())
    return None


def _custom_columns(info: ResourceInfo) -> list[dict[str, Any]] | None:
    cols = info.printer_columns
    if not cols:
        return None
    out = [_name_col()]
    for col in cols:
        path = _str(col.get("jsonPath"))
        out.append(_col(_str(col.get("name")),
                        _str(col.get("description")) or f"Custom resource definition column (in JSONPath format): {path}",
                        _str(col.get("type")) or "string", _int(col.get("priority")), _str(col.get("format"))))
    return out


def _custom_cells(info: ResourceInfo, obj: Obj, now: datetime) -> Cells:
    cells: Cells = [_name(obj)]
    for col in info.printer_columns or []:
        try:
            found, value = jsonpath_first(obj, _str(col.get("jsonPath")))
        except _JsonPathError:
            found, value = False, None
        cells.append(custom_cell(_str(col.get("type")) or "string", value, now) if found else None)
    return cells


# -- public API ---------------------------------------------------------------------------------


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    """The Table columns of a kind, wide (priority 1) columns included."""
    if info.is_custom or info.printer_columns:
        custom = _custom_columns(info)
        if custom is not None:
            return custom
        return [dict(c) for c in _builtin_columns("", "")]
    return [dict(c) for c in _builtin_columns(info.group, info.kind)]


def row_cells(info: ResourceInfo, obj: Obj, now: datetime) -> list[Any]:
    """The cells of one object's row, matching `column_definitions(info)`."""
    if info.printer_columns:
        return _custom_cells(info, obj, now)
    return _printer_for(info)[1](obj, now)


_INCLUDE_OBJECT = ("None", "Metadata", "Object")


def _row_object(info: ResourceInfo, obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        full = dict(obj)
        full.setdefault("apiVersion", info.api_version)
        full.setdefault("kind", info.kind)
        return full
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def build_table(info: ResourceInfo, objects: list[dict[str, Any]], now: datetime, include_object: str = "Metadata",
                list_meta: dict[str, Any] | None = None, with_columns: bool = True) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table of `objects`; `with_columns=False` sends `columnDefinitions: null`
    (later watch events). `include_object` is the `includeObject` query parameter."""
    include_object = include_object or "Metadata"
    if include_object not in _INCLUDE_OBJECT:
        raise ApiError.bad_request(f'unrecognized includeObject value: "{include_object}"')
    metadata: dict[str, Any] = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        if list_meta and list_meta.get(key) not in (None, ""):
            metadata[key] = list_meta[key]
    is_pod = not info.is_custom and (info.group, info.kind) == ("", "Pod")
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_cells(info, obj, now)}
        if is_pod:
            conditions = _pod_row_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        row_object = _row_object(info, obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(info) if with_columns else None,
        "rows": rows,
    }


def now_utc() -> datetime:
    """The clock used for ages; a function so callers and tests can agree on it."""
    return datetime.now(UTC)
