"""Local ephemeral storage isolation: which pods the node evicts for using more local disk
than they may, and with what message, as the kubelet's eviction manager decides it
(`localStorageEviction`).

Pure: the pod and its measured usage in, a message (or None) out. A pod is measured only
when it has such a limit (`has_storage_limit`); `agent.evictor` measures and evicts.
The checks run in the kubelet's order: each disk-backed emptyDir against its `sizeLimit`,
then the pod's total against the sum of its containers' `ephemeral-storage` limits, then
each container's writable layer and logs against its own limit. A Memory emptyDir is a
tmpfs, never measured: `memory_empty_dir_size` sizes it when it is mounted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kybernetes.api.quantity import parse_quantity
from kybernetes.api.validation import canonical_quantity

Obj = dict[str, Any]

REASON = "Evicted"
# The kubelet kills an evicted pod with this grace period, whatever the pod asks.
GRACE_SECONDS = 1
# Pods the kubelet never evicts: system-critical priority and above.
CRITICAL_PRIORITY = 2_000_000_000
STORAGE = "ephemeral-storage"


@dataclass(frozen=True)
class PodUsage:
    """Bytes a pod uses on the node's disk: each disk-backed emptyDir by volume name, each
    container's writable layer plus logs by container name."""

    volumes: Mapping[str, int] = field(default_factory=dict)
    containers: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.volumes.values()) + sum(self.containers.values())


def _spec(pod: Obj) -> Obj:
    return pod.get("spec") or {}


def _positive(value: Any) -> Decimal | None:
    amount = parse_quantity(value) if value not in (None, "") else None
    return amount if amount is not None and amount > 0 else None


def disk_empty_dirs(pod: Obj) -> list[str]:
    """The pod's emptyDir volumes on the node's disk (a Memory one is a tmpfs, sized at mount)."""
    return [v.get("name", "") for v in _spec(pod).get("volumes") or []
            if "emptyDir" in v and (v.get("emptyDir") or {}).get("medium") != "Memory"]


def _limited_dirs(pod: Obj) -> dict[str, Obj]:
    return {v.get("name", ""): v["emptyDir"] for v in _spec(pod).get("volumes") or []
            if isinstance(v.get("emptyDir"), dict) and v["emptyDir"].get("medium") != "Memory"
            and _positive(v["emptyDir"].get("sizeLimit")) is not None}


def container_limits(pod: Obj) -> dict[str, Decimal]:
    """Each app container's local ephemeral storage limit (those with one)."""
    out = {}
    for c in _spec(pod).get("containers") or []:
        amount = _positive(((c.get("resources") or {}).get("limits") or {}).get(STORAGE))
        if amount is not None:
            out[c.get("name", "")] = amount
    return out


def _format_like(amount: Decimal, example: str) -> str:
    """`amount` written as a Quantity that kept `example`'s format would write it."""
    if example.rstrip().endswith("i") and amount == amount.to_integral_value():
        n, suffix = int(amount), ""
        for unit in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"):
            if n < 1024 or n % 1024:
                break
            n, suffix = n // 1024, unit
        return f"{n}{suffix}"
    return canonical_quantity(str(amount)) or str(amount)


def _pod_limit_amount(pod: Obj, resource: str) -> tuple[Decimal, str, bool] | None:
    """The pod's `resource` limit as the kubelet's PodLimits counts it (app and sidecar
    containers summed, the largest init container if more, plus overhead), the first limit
    as written (its format), and whether every container declares one; None when none does."""
    spec = _spec(pod)
    total = init_max = sidecars = Decimal(0)
    first = ""
    every = True
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            raw = ((c.get("resources") or {}).get("limits") or {}).get(resource)
            amount = _positive(raw)
            if amount is None:
                every = False
                continue
            first = first or str(raw)
            if key == "containers":
                total += amount
            elif c.get("restartPolicy") == "Always":
                sidecars += amount
                init_max = max(init_max, sidecars)
            else:
                init_max = max(init_max, sidecars + amount)
    if not first:
        return None
    total = max(total + sidecars, init_max)
    overhead = _positive((spec.get("overhead") or {}).get(resource))
    if overhead is not None:
        total += overhead
    return total, first, every


def pod_limit(pod: Obj) -> tuple[Decimal, str] | None:
    """The pod's total local storage limit, and as the kubelet writes it; None when no
    container has one."""
    found = _pod_limit_amount(pod, STORAGE)
    return None if found is None else (found[0], _format_like(found[0], found[1]))


def memory_empty_dir_size(pod: Obj, size_limit: Any, node_allocatable_memory: Any) -> int:
    """Bytes of a Memory emptyDir's tmpfs, as the kubelet sizes it: the node's allocatable
    memory, or the pod's memory limit when every container declares one and it is smaller,
    or the volume's sizeLimit when that is smaller still."""
    size = _positive(node_allocatable_memory) or Decimal(0)
    limit = _pod_limit_amount(pod, "memory")
    if limit is not None and limit[2] and (not size or limit[0] <= size):
        size = limit[0]
    volume = _positive(size_limit)
    if volume is not None and (not size or volume <= size):
        size = volume
    return int(size)


def has_storage_limit(pod: Obj) -> bool:
    """Whether the node measures this pod's local storage at all."""
    return bool(_limited_dirs(pod)) or bool(container_limits(pod))


def evictable(pod: Obj) -> bool:
    """A pod the node still runs and may evict: active, not critical, with a storage limit."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    priority = _spec(pod).get("priority")
    if isinstance(priority, int) and priority >= CRITICAL_PRIORITY:
        return False
    return has_storage_limit(pod)


def eviction_message(pod: Obj, usage: PodUsage) -> str | None:
    """Why the pod is evicted for its local storage use, in the kubelet's words, or None."""
    for name, ed in _limited_dirs(pod).items():
        used = usage.volumes.get(name)
        if used is not None and used > (_positive(ed.get("sizeLimit")) or 0):
            return f"Usage of EmptyDir volume {_quote(name)} exceeds the limit {_quote(str(ed['sizeLimit']))}. "
    limit = pod_limit(pod)
    if limit is not None and usage.total > limit[0]:
        return f"Pod ephemeral local storage usage exceeds the total limit of containers {limit[1]}. "
    limits = container_limits(pod)
    raw = {c.get("name", ""): ((c.get("resources") or {}).get("limits") or {}).get(STORAGE)
           for c in _spec(pod).get("containers") or []}
    for name, used in usage.containers.items():
        if name in limits and used > limits[name]:
            return f"Container {name} exceeded its local ephemeral storage limit {_quote(str(raw[name]))}. "
    return None


def _quote(text: str) -> str:
    # Go's %q: the stored names and quantities need no escapes beyond these.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def evicted_status(message: str) -> Obj:
    """What the node writes of an evicted pod before it kills it."""
    return {"phase": "Failed", "reason": REASON, "message": message}
