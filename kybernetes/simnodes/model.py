"""Pure decisions and object builders for simulated nodes.

Everything here works on plain dicts and explicit inputs (times, random
sources) so it can be tested without a server: the Node and Lease objects a
simulated kubelet registers, the pod statuses it reports, which transition a
pod is due for next, and the fake address plan (node IPs, per-node pod ranges).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import timefmt
from kybernetes.api.pods import readiness_gates_message
from kybernetes.client.nodes import (  # noqa: F401 - part of this module's vocabulary
    LEASE_DURATION_SECONDS,
    LEASE_NAMESPACE,
    build_lease,
    lease_renewal,
    node_conditions,
)

Obj = dict[str, Any]

SIMULATED_LABEL = "kybernetes.io/simulated"
# `kubectl annotate node X kybernetes.io/sim-heartbeats=paused` stops a node's kubelet
# from outside the simulator's process (tests of the node lifecycle controller).
PAUSE_ANNOTATION = "kybernetes.io/sim-heartbeats"
PAUSED = "paused"
KUBELET_VERSION = "v1.37.0-kyb-sim"
RUNTIME_VERSION = "sim://1.0"
INSTANCE_TYPE = "kyb-sim"

# Node addresses and the fallback pod ranges live in disjoint blocks, and both
# stay clear of 10.244.0.0/16 (the usual cluster CIDR that real podCIDRs come from).
NODE_IP_BLOCK = ipaddress.IPv4Network("10.100.0.0/16")
FALLBACK_POD_BLOCK = ipaddress.IPv4Network("10.128.0.0/10")

# Actions a simulated kubelet takes on a pod bound to it.
START = "start"          # Pending -> Running/Ready
COMPLETE = "complete"    # Running -> Succeeded (run-to-completion pods)
FINISH_DELETE = "delete"  # deletionTimestamp set -> remove the object (grace 0)
RESIZE = "resize"        # Running, the spec asks other resources (pods/resize) -> allocate them

RUN_TO_COMPLETION = ("Never", "OnFailure")


@dataclass(frozen=True)
class NodeTemplate:
    """What every simulated node of one run looks like."""

    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)


# -- time ---------------------------------------------------------------------------------


# The simulator and its tests stamp and read node and lease fields through these names.
rfc3339 = timefmt.rfc3339
micro_time = timefmt.rfc3339_micro
parse_time = timefmt.parse_time


# -- addresses ----------------------------------------------------------------------------


def node_name(prefix: str, index: int) -> str:
    return f"{prefix}{index}"


def node_internal_ip(index: int) -> str:
    # Skip the block's network address; the index stays stable across restarts so
    # a re-run reports the same address for the same node.
    if not 0 <= index < NODE_IP_BLOCK.num_addresses - 2:
        raise ValueError(f"node index {index} outside the simulated address block")
    return str(NODE_IP_BLOCK[index + 1])


def fallback_pod_cidr(index: int) -> str:
    """A /24 per node for when the control plane has not assigned spec.podCIDR."""
    subnets = FALLBACK_POD_BLOCK.num_addresses // 256
    if not 0 <= index < subnets:
        raise ValueError(f"node index {index} outside the simulated pod block")
    base = int(FALLBACK_POD_BLOCK.network_address) + index * 256
    return f"{ipaddress.IPv4Address(base)}/24"


class PodIpPool:
    """Hands out pod IPs of one CIDR, one per pod uid, reusing released ones.

    The network address, the first host (by convention the node's bridge) and
    the broadcast address are never handed out.
    """

    def __init__(self, cidr: str) -> None:
        self.cidr = cidr
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._by_uid: dict[str, str] = {}
        self._used: set[str] = set()
        self._next = 2
        self._free: list[str] = []

    def __contains__(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def reserve(self, uid: str, ip: str) -> None:
        """Record an address a pod already reports (e.g. after a restart of the simulator)."""
        if uid in self._by_uid:
            return
        if ip in self and ip not in self._used:
            self._used.add(ip)
            self._by_uid[uid] = ip

    def allocate(self, uid: str) -> str | None:
        if uid in self._by_uid:
            return self._by_uid[uid]
        while self._free:
            ip = self._free.pop()
            if ip not in self._used:
                return self._take(uid, ip)
        last = self.network.num_addresses - 2
        while self._next <= last:
            ip = str(self.network[self._next])
            self._next += 1
            if ip not in self._used:
                return self._take(uid, ip)
        return None

    def release(self, uid: str) -> None:
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            self._used.discard(ip)
            self._free.append(ip)

    def _take(self, uid: str, ip: str) -> str:
        self._used.add(ip)
        self._by_uid[uid] = ip
        return ip


# -- nodes and leases ---------------------------------------------------------------------


def node_labels(name: str, template: NodeTemplate) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": INSTANCE_TYPE,
        "beta.kubernetes.io/instance-type": INSTANCE_TYPE,
        SIMULATED_LABEL: "true",
    }
    labels.update(template.labels)
    return labels


def node_resources(template: NodeTemplate) -> dict[str, str]:
    return {"cpu": template.cpu, "memory": template.memory, "pods": str(template.pods),
            "ephemeral-storage": template.ephemeral_storage, "hugepages-1Gi": "0", "hugepages-2Mi": "0"}


def build_node(name: str, index: int, template: NodeTemplate, now: str) -> Obj:
    resources = node_resources(template)
    short = f"{index + 1:012x}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": node_labels(name, template),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                            "kybernetes.io/simulated-node-index": str(index)},
        },
        "spec": {"taints": [dict(t) for t in template.taints]} if template.taints else {},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": node_conditions(now),
            "addresses": [{"type": "InternalIP", "address": node_internal_ip(index)},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{index + 1:032x}",
                "systemUUID": f"00000000-0000-0000-0000-{short}",
                "bootID": f"b0000000-0000-0000-0000-{short}",
                "kernelVersion": "6.8.0-kyb-sim",
                "osImage": "Kybernetes Simulated Linux",
                "containerRuntimeVersion": RUNTIME_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "phase": "Running",
        },
    }


def paused_by_annotation(node: Obj | None) -> bool:
    annotations = ((node or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(PAUSE_ANNOTATION) == PAUSED


def spread_offsets(count: int, interval: float) -> list[float]:
    """Phase offsets that spread `count` periodic renewals evenly over one interval."""
    if count <= 0:
        return []
    step = interval / count
    return [i * step for i in range(count)]


# -- pods ---------------------------------------------------------------------------------


def pod_action(pod: Obj, complete_jobs: bool = True) -> str | None:
    """The next transition a simulated kubelet owes this (bound) pod, if any."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return FINISH_DELETE
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase in ("Succeeded", "Failed"):
        return None
    if phase != "Running":
        return START
    if resize_owed(pod):
        return RESIZE
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    if complete_jobs and policy in RUN_TO_COMPLETION:
        return COMPLETE
    return None


def jittered(base: float, jitter: float, rnd: random.Random) -> float:
    """`base` spread by ±`jitter` (a fraction of base), never negative."""
    if base <= 0:
        return 0.0
    return max(0.0, base * (1.0 + rnd.uniform(-jitter, jitter)))


def action_delay(action: str, pod: Obj, now: dt.datetime, start_delay: float, job_duration: float,
                 delete_delay: float, jitter: float, rnd: random.Random) -> float:
    """Seconds from `now` until `action` should happen to `pod`."""
    if action == START:
        return jittered(start_delay, jitter, rnd)
    if action == COMPLETE:
        started = parse_time((pod.get("status") or {}).get("startTime"))
        elapsed = (now - started).total_seconds() if started is not None else 0.0
        return max(0.0, jittered(job_duration, jitter, rnd) - max(0.0, elapsed))
    if action == FINISH_DELETE:
        return jittered(delete_delay, jitter, rnd)
    if action == RESIZE:
        return 0.0
    raise ValueError(f"unknown action {action!r}")


def set_condition(conditions: list[Obj], type_: str, status: str, now: str, reason: str = "",
                  message: str = "") -> None:
    """Set one pod condition in place; lastTransitionTime only moves when the status does."""
    for c in conditions:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c["status"] = status
            c["lastProbeTime"] = None
            for k, v in (("reason", reason), ("message", message)):
                if v:
                    c[k] = v
                else:
                    c.pop(k, None)
            return
    cond: Obj = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    conditions.append(cond)


_CONDITION_ORDER = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]


def _ordered(conditions: list[Obj]) -> list[Obj]:
    def rank(c: Obj) -> int:
        t = c.get("type")
        return _CONDITION_ORDER.index(t) if t in _CONDITION_ORDER else len(_CONDITION_ORDER)
    return sorted(conditions, key=rank)




def _container_id(new_id: Callable[[], str], previous: Obj | None) -> str:
    if previous and previous.get("containerID"):
        return str(previous["containerID"])
    return f"sim://{new_id()}"


def running_pod_status(pod: Obj, host_ip: str, pod_ip: str, now: str, new_id: Callable[[], str]) -> Obj:
    """The status a kubelet reports once every container of `pod` runs.

    Fields the simulated kubelet does not own (qosClass, foreign conditions,
    resize status) are carried over from the current status.
    """
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    status: Obj = {k: v for k, v in old.items() if k not in (
        "phase", "conditions", "containerStatuses", "initContainerStatuses", "reason", "message")}
    started_at = old.get("startTime") or now
    conditions = [dict(c) for c in old.get("conditions") or []]
    for type_ in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "PodScheduled"):
        set_condition(conditions, type_, "True", now)
    gates = readiness_gates_message(pod, conditions)
    if not gates:
        set_condition(conditions, "Ready", "True", now)
    else:
        set_condition(conditions, "Ready", "False", now, "ReadinessGatesNotReady", gates)
    previous = {c.get("name"): c for c in old.get("containerStatuses") or []}
    previous_init = {c.get("name"): c for c in old.get("initContainerStatuses") or []}
    status.update({
        "phase": "Running",
        "conditions": _ordered(conditions),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": started_at,
        "containerStatuses": [
            _running_container(c, now, _container_id(new_id, previous.get(c.get("name"))))
            for c in spec.get("containers") or []],
    })
    init = spec.get("initContainers") or []
    if init:
        status["initContainerStatuses"] = [
            _init_container(c, started_at, now, _container_id(new_id, previous_init.get(c.get("name"))))
            for c in init]
    return status


def _image_fields(container: Obj, container_id: str) -> Obj:
    image = container.get("image") or ""
    return {"name": container.get("name", ""), "image": image, "imageID": f"sim://{image}",
            "containerID": container_id, "restartCount": 0}


def _running_container(container: Obj, now: str, container_id: str) -> Obj:
    out = _image_fields(container, container_id)
    out.update({"ready": True, "started": True, "state": {"running": {"startedAt": now}}, "lastState": {}})
    out.update(_resource_fields(container))
    return out


def _resource_fields(container: Obj) -> Obj:
    """allocatedResources and resources as a kubelet that resizes in place reports them
    (the API server refuses pods/resize for a running pod without them)."""
    res = container.get("resources") or {}
    shown = {part: {n: v for n, v in (res.get(part) or {}).items() if n in ("cpu", "memory")}
             for part in ("limits", "requests")}
    return {"allocatedResources": dict(res.get("requests") or {}),
            "resources": {part: v for part, v in shown.items() if v}}


def resize_owed(pod: Obj) -> bool:
    """Whether a running pod's spec asks other resources than its status says it has: a
    pods/resize, which a simulated node admits at once."""
    by_name = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    for c in (pod.get("spec") or {}).get("containers") or []:
        s = by_name.get(c.get("name"))
        if s is not None and "allocatedResources" in s and \
                {k: s.get(k) for k in ("allocatedResources", "resources")} != _resource_fields(c):
            return True
    return False


def resized_pod_status(pod: Obj) -> Obj:
    """The status once a simulated node has allocated and applied a resize."""
    status = dict(pod.get("status") or {})
    spec_by_name = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    status["containerStatuses"] = [
        {**s, **_resource_fields(spec_by_name[s.get("name")])} if s.get("name") in spec_by_name else s
        for s in status.get("containerStatuses") or []]
    generation = (pod.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def _init_container(container: Obj, started: str, now: str, container_id: str) -> Obj:
    out = _image_fields(container, container_id)
    if container.get("restartPolicy") == "Always":
        # A sidecar keeps running beside the main containers.
        out.update({"ready": True, "started": True, "state": {"running": {"startedAt": started}},
                    "lastState": {}})
    else:
        out.update({"ready": True, "started": False, "lastState": {}, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started,
            "containerID": container_id}}})
    return out


def succeeded_pod_status(pod: Obj, now: str) -> Obj:
    """The status of a run-to-completion pod whose containers all exited 0."""
    old = pod.get("status") or {}
    status: Obj = {k: v for k, v in old.items() if k not in ("conditions", "containerStatuses")}
    status["phase"] = "Succeeded"
    conditions = [dict(c) for c in old.get("conditions") or []]
    set_condition(conditions, "PodReadyToStartContainers", "False", now)
    set_condition(conditions, "Ready", "False", now, "PodCompleted")
    set_condition(conditions, "ContainersReady", "False", now, "PodCompleted")
    status["conditions"] = _ordered(conditions)
    started_default = old.get("startTime") or now
    statuses = []
    for cs in old.get("containerStatuses") or []:
        started = ((cs.get("state") or {}).get("running") or {}).get("startedAt") or started_default
        done = {k: v for k, v in cs.items() if k not in ("state", "ready", "started")}
        done.update({"ready": False, "started": False, "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now,
            "containerID": cs.get("containerID", "")}}})
        statuses.append(done)
    status["containerStatuses"] = statuses
    return status


def pod_node(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def node_pod_cidr(node: Obj | None) -> str:
    return ((node or {}).get("spec") or {}).get("podCIDR") or ""


# -- command-line values ------------------------------------------------------------------


def parse_label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"label {text!r} is not key=value")
    return key, value


def parse_taint(text: str) -> Obj:
    """`key[=value]:Effect` as `kubectl taint` spells it."""
    head, sep, effect = text.rpartition(":")
    if not sep or not head:
        raise ValueError(f"taint {text!r} is not key[=value]:Effect")
    if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ValueError(f"taint {text!r}: effect must be NoSchedule, PreferNoSchedule or NoExecute")
    key, eq, value = head.partition("=")
    if not key:
        raise ValueError(f"taint {text!r} has no key")
    taint: Obj = {"key": key, "effect": effect}
    if eq:
        taint["value"] = value
    return taint


def next_periodic(now: float, phase: float, interval: float) -> float:
    """The first tick of the series phase + k*interval strictly after `now`."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    if now < phase:
        return phase
    k = int((now - phase) // interval) + 1
    return phase + k * interval
