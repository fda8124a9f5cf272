"""What a node agent reports about its node, shared by the real agent and the simulated
nodes: the kubelet-owned node conditions and the heartbeat Lease."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40


def node_conditions(now: str, previous: list[Obj] | None = None, ready: bool = True, *,
                    memory_pressure: bool = False, disk_pressure: bool = False, pid_pressure: bool = False,
                    not_ready_message: str = "container runtime is down") -> list[Obj]:
    """The four kubelet-owned conditions in the kubelet's words, keeping
    lastTransitionTime where the status did not change."""
    wanted = [
        ("MemoryPressure", "True", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
        if memory_pressure else
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "True", "KubeletHasDiskPressure", "kubelet has disk pressure") if disk_pressure else
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "True", "KubeletHasInsufficientPID", "kubelet has insufficient PID available")
        if pid_pressure else
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
        ("Ready", "False", "KubeletNotReady", not_ready_message),
    ]
    before = {c.get("type"): c for c in previous or []}
    out = []
    for type_, status, reason, message in wanted:
        old = before.get(type_)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        out.append({"type": type_, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": since or now, "reason": reason, "message": message})
    return out


def build_lease(name: str, node_uid: str, now: str, duration: int = LEASE_DURATION_SECONDS) -> Obj:
    lease: Obj = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now},
    }
    if node_uid:
        # Like the kubelet: the Node owns its Lease, so deleting the node collects it.
        lease["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}]
    return lease


def lease_renewal(name: str, now: str, duration: int = LEASE_DURATION_SECONDS) -> Obj:
    """The merge patch that renews a lease."""
    return {"spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now}}
