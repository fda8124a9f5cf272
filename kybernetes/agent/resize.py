"""In-place resize on the node, decided without I/O (the kubelet's allocation manager and
kuberuntime's resize actions): whether the node admits a pod's new resources (Infeasible
when they exceed the node, Deferred while the other pods leave no room), what each
running container must get (a CRI UpdateContainerResources, or a restart where the
container's resizePolicy says RestartContainer), and what the pod's status says about it
(containerStatuses[].allocatedResources and .resources, the PodResizePending and
PodResizeInProgress conditions, observedGeneration)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.agent.podspec import linux_resources
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.resize import DEFERRED, IN_PROGRESS, INFEASIBLE, PENDING, is_sidecar

Obj = dict[str, Any]
# (cpu shares, cpu quota, cpu period, memory limit bytes): what a container's cgroup got.
Linux = tuple[int, int, int, int]
RESIZABLE = ("cpu", "memory")
RESTART = "RestartContainer"


# -- the node's record of a pod (the kubelet's allocation checkpoint) --------------------------

@dataclass
class Allocation:
    """What the node admitted for each resizable container of one pod, what each running
    container's cgroup was last given (by container id), and the resources that stands
    for (by container name: what the status shows as applied)."""

    resources: dict[str, Obj] = field(default_factory=dict)
    applied: dict[str, Linux] = field(default_factory=dict)
    actuated: dict[str, Obj] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps({"resources": self.resources, "applied": {k: list(v) for k, v in self.applied.items()},
                           "actuated": self.actuated})

    @classmethod
    def loads(cls, text: str) -> Allocation:
        data = json.loads(text)
        return cls(dict(data.get("resources") or {}),
                   {k: (int(v[0]), int(v[1]), int(v[2]), int(v[3])) for k, v in (data.get("applied") or {}).items()},
                   dict(data.get("actuated") or {}))


def resizable(pod: Obj) -> list[Obj]:
    """Regular containers and sidecars (restartable init containers)."""
    spec = pod.get("spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)] + \
        [c for c in spec.get("initContainers") or [] if isinstance(c, dict) and is_sidecar(c)]


def desired(pod: Obj) -> dict[str, Obj]:
    """Each resizable container's resources as the spec asks now."""
    return {c.get("name", ""): copy.deepcopy(c.get("resources") or {}) for c in resizable(pod)}


def with_allocated(container: Obj, allocation: Allocation | None) -> Obj:
    """`container` as it is to be started: with the resources the node allocated, which
    differ from the spec while a resize is pending."""
    if allocation is None:
        return container
    res = allocation.resources.get(container.get("name", ""))
    if res is None or res == (container.get("resources") or {}):
        return container
    return {**container, "resources": res}


def as_allocated(pod: Obj, allocation: Allocation | None) -> Obj:
    """`pod` with its resizable containers' resources as the node allocated them: what it
    holds on the node, whatever its spec has asked since (a resize still pending)."""
    if allocation is None:
        return pod
    spec = pod.get("spec") or {}
    new_spec = None
    for key in ("containers", "initContainers"):
        listed = spec.get(key)
        if not isinstance(listed, list):
            continue
        out = [with_allocated(c, allocation) if isinstance(c, dict) else c for c in listed]
        if any(a is not b for a, b in zip(out, listed, strict=True)):
            new_spec = {**(new_spec or spec), key: out}
    return pod if new_spec is None else {**pod, "spec": new_spec}


def linux_of(resources: Obj) -> Linux:
    return linux_resources({"resources": resources})


# -- admission -------------------------------------------------------------------------------

def _amount(name: str, value: Any) -> int:
    q = parse_quantity(value)
    if q is None:
        return 0
    return int(q * 1000) if name == "cpu" else int(q)


def _requests(resources: Obj | None) -> dict[str, int]:
    reqs = (resources or {}).get("requests") or {}
    return {n: _amount(n, reqs[n]) for n in RESIZABLE if n in reqs}


def pod_requests(pod: Obj, by_name: dict[str, Obj]) -> dict[str, int]:
    """cpu (millicores) and memory (bytes) the pod needs with its resizable containers'
    resources taken from `by_name`: the app and sidecars add up; an init container needs
    its own plus the sidecars started before it; overhead adds on."""
    spec = pod.get("spec") or {}
    total = {n: 0 for n in RESIZABLE}
    sidecars = {n: 0 for n in RESIZABLE}
    peak = {n: 0 for n in RESIZABLE}
    for c in spec.get("initContainers") or []:
        if not isinstance(c, dict):
            continue
        if is_sidecar(c):
            for n, v in _requests(by_name.get(c.get("name", ""), c.get("resources"))).items():
                sidecars[n] += v
            continue
        own = _requests(c.get("resources"))
        for n in RESIZABLE:
            peak[n] = max(peak[n], sidecars[n] + own.get(n, 0))
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            for n, v in _requests(by_name.get(c.get("name", ""), c.get("resources"))).items():
                total[n] += v
    overhead = spec.get("overhead") or {}
    return {n: max(total[n] + sidecars[n], peak[n]) + _amount(n, overhead.get(n, 0)) for n in RESIZABLE}


@dataclass
class Admission:
    """A resize's fate on this node: the allocation to record when admitted, or why it
    waits (PodResizePending's reason and message)."""

    allocate: dict[str, Obj] | None = None
    pending: tuple[str, str] | None = None


def _same(a: Obj, b: Obj) -> bool:
    def norm(res: Obj) -> Obj:
        return {part: {n: parse_quantity(v) for n, v in (res.get(part) or {}).items()}
                for part in ("requests", "limits")}
    return norm(a) == norm(b)


def pending_resize(pod: Obj, allocation: Allocation) -> bool:
    want = desired(pod)
    return any(not _same(res, allocation.resources.get(name, res)) for name, res in want.items())


def admit(pod: Obj, allocation: Allocation, allocatable: dict[str, Any], others: dict[str, int]) -> Admission:
    """The kubelet's canResizePod: Infeasible when the pod's new requests exceed what the
    node can ever give, Deferred while `others` (the requests of the node's other pods)
    leave too little room; otherwise the new resources are allocated."""
    if not pending_resize(pod, allocation):
        return Admission()
    want = desired(pod)
    asked = pod_requests(pod, want)
    capacity = {n: _amount(n, allocatable.get(n, 0)) for n in RESIZABLE}
    for n in ("memory", "cpu"):
        if asked[n] > capacity[n]:
            return Admission(pending=(INFEASIBLE, f"Node didn't have enough capacity: {n}, requested: "
                                                  f"{asked[n]}, capacity: {capacity[n]}"))
    for n in RESIZABLE:
        if asked[n] + others.get(n, 0) > capacity[n]:
            return Admission(pending=(DEFERRED, f"Node didn't have enough resource: {n}, requested: {asked[n]}, "
                                                f"used: {others.get(n, 0)}, capacity: {capacity[n]}"))
    return Admission(allocate=want)


# -- actuation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One running container's change: new cgroup values in place, or a restart."""

    name: str
    container_id: str
    linux: Linux
    restart: bool


def _policy(container: Obj, resource: str) -> str:
    for p in container.get("resizePolicy") or []:
        if isinstance(p, dict) and p.get("resourceName") == resource:
            return str(p.get("restartPolicy") or "NotRequired")
    return "NotRequired"


def actions(pod: Obj, allocation: Allocation, running: Iterable[tuple[str, str]]) -> list[Action]:
    """What the running containers (name, id) need so their cgroups match the
    allocation: a restart when a changed resource's resizePolicy is RestartContainer."""
    by_name = {c.get("name", ""): c for c in resizable(pod)}
    out = []
    for name, cid in running:
        container = by_name.get(name)
        res = allocation.resources.get(name)
        applied = allocation.applied.get(cid)
        if container is None or res is None or applied is None:
            continue
        want = linux_of(res)
        if want == applied:
            continue
        cpu_changed = want[:3] != applied[:3]
        memory_changed = want[3] != applied[3]
        restart = (cpu_changed and _policy(container, "cpu") == RESTART) or \
            (memory_changed and _policy(container, "memory") == RESTART)
        out.append(Action(name, cid, want, restart))
    return out


def memory_below_usage(action: Action, applied: Linux, usage: int | None) -> str:
    """Upstream's best effort against OOM kills when a memory limit goes down in place: a
    limit below what the container uses now is not applied (the resize stays in progress,
    with this as its error); None when the usage could not be read."""
    limit = action.linux[3]
    lowered = limit > 0 and (applied[3] == 0 or limit < applied[3])
    if action.restart or not lowered or usage is None or usage <= limit:
        return ""
    return f'attempting to set container "{action.name}" memory limit ({limit}) below current usage ({usage})'


# -- status ----------------------------------------------------------------------------------

def _only_resizable(resources: Obj | None) -> Obj:
    return {n: v for n, v in (resources or {}).items() if n in RESIZABLE}


def decorate_status(status: Obj, pod: Obj, allocation: Allocation | None, pending: tuple[str, str] | None,
                    error: str, now: str) -> None:
    """Add what the node says about resources and resizes to the pod `status` the agent
    is about to report: allocatedResources for every resizable container, the resources
    applied to running ones, the resize conditions (replacing older ones: in progress
    while a running container's applied resources differ from its allocation, with the
    error that keeps them apart), observedGeneration."""
    generation = (pod.get("metadata") or {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    if allocation is None:
        return
    in_progress = False
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            res = allocation.resources.get(cs.get("name"))
            if res is None:
                continue
            cs["allocatedResources"] = dict(res.get("requests") or {})
            if "running" in (cs.get("state") or {}):
                applied = allocation.actuated.get(cs.get("name"), res)
                in_progress = in_progress or not _same(applied, res)
                shown = {part: _only_resizable(applied.get(part)) for part in ("limits", "requests")}
                cs["resources"] = {part: v for part, v in shown.items() if v}
    old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    conds = [c for c in status.get("conditions") or [] if c.get("type") not in (PENDING, IN_PROGRESS)]

    def condition(type_: str, reason: str, message: str) -> Obj:
        prev = old.get(type_)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == "True" else now
        cond: Obj = {"type": type_, "status": "True", "lastProbeTime": None, "lastTransitionTime": since}
        if generation is not None:
            cond["observedGeneration"] = generation
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond
    if pending is not None:
        conds.append(condition(PENDING, pending[0], pending[1]))
    if error:
        conds.append(condition(IN_PROGRESS, "Error", error))
    elif in_progress:
        conds.append(condition(IN_PROGRESS, "", ""))
    status["conditions"] = conds
