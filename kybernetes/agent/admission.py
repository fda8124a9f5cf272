"""Node-side pod admission: whether this node can run a pod bound to it at all, decided
before anything of the pod is created, as the kubelet's admit handlers do. A refused
pod is set phase Failed with the handler's reason and "Pod was rejected: <message>",
and its containers never start. Pure: the node's abilities come in as `NodeFeatures`.

Handled here: the pod's OS (spec.os, the kubernetes.io/os label), the kubelet's general
predicates for pods that bypassed the scheduler (CPU, memory and pod count against the
node's allocatable and the pods it runs, nodeSelector and required node affinity, host
ports, untolerated NoExecute taints), sysctls (the safe set, plus what
--allowed-unsafe-sysctls allows; only namespaced ones; none of the net namespace for
hostNetwork pods, none of the IPC one for hostIPC pods), AppArmor (refused when the
kernel has none), supplementalGroupsPolicy Strict and user namespaces (hostUsers:
false), which containerd 1.6 cannot do."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kybernetes.agent.resize import pod_requests
from kybernetes.api.pods import RequiredNodeAffinity, Taint, pod_tolerations, tolerated
from kybernetes.api.quantity import parse_quantity

Obj = dict[str, Any]

SYSCTL_FORBIDDEN = "SysctlForbidden"
APPARMOR = "AppArmor"
SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED = "SupplementalGroupsPolicyNotSupported"
USER_NAMESPACES_NOT_SUPPORTED = "UserNamespacesNotSupported"
NODE_AFFINITY = "NodeAffinity"

# Upstream's safe sysctls (pkg/kubelet/sysctl/safe_sysctls.go); the kernel versions some
# need are older than any this agent supports.
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
)
# Which kernel namespace isolates a sysctl (pkg/kubelet/sysctl/namespace.go).
_IPC, _NET = "ipc", "net"
_NAMESPACED = {"kernel.sem": _IPC}
_NAMESPACED_PREFIXES = (("kernel.shm", _IPC), ("kernel.msg", _IPC), ("fs.mqueue.", _IPC), ("net.", _NET))
_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


@dataclass(frozen=True)
class NodeFeatures:
    """What the node and its runtime can do."""

    allowed_unsafe_sysctls: tuple[str, ...] = ()
    apparmor: bool = False
    user_namespaces: bool = False
    supplemental_groups_policy: bool = False
    runtime_handler: str = ""
    os: str = "linux"


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str  # as the handler words it; the pod's status says "Pod was rejected: " before it

    @property
    def status_message(self) -> str:
        return f"Pod was rejected: {self.message}"


def sysctl_namespace(name: str) -> str:
    """The namespace isolating `name` ("ipc", "net"), or "" if it is not namespaced."""
    if name in _NAMESPACED:
        return _NAMESPACED[name]
    return next((ns for prefix, ns in _NAMESPACED_PREFIXES if name.startswith(prefix)), "")


def _dotted(name: str) -> str:
    """kernel/shm_rmid_forced or net/ipv4/conf/eth0.100/... as dots (slashes in the name
    become dots and dots in a part become slashes, as sysctl(8) reads them)."""
    if "/" not in name or ("." in name and name.index(".") < name.index("/")):
        return name
    return name.translate(str.maketrans("./", "/."))


def validate_allowed_unsafe_sysctls(patterns: tuple[str, ...]) -> list[str]:
    """Problems with --allowed-unsafe-sysctls patterns: each must be namespaced."""
    problems = []
    for raw in patterns:
        name = _dotted(raw)
        base = name[:-1] if name.endswith("*") else name
        if not base or not sysctl_namespace(base):
            problems.append(f"the sysctl {json.dumps(raw)} is not known to be namespaced")
    return problems


def _sysctl_problem(name: str, allowed: tuple[str, ...], host_net: bool, host_ipc: bool) -> str:
    name = _dotted(name)
    listed = name in SAFE_SYSCTLS or any(
        name.startswith(p[:-1]) if p.endswith("*") else name == _dotted(p) for p in allowed)
    if not listed:
        return f"{json.dumps(name)} not allowlisted"
    ns = sysctl_namespace(name)
    if (ns == _NET and host_net) or (ns == _IPC and host_ipc):
        return f"{json.dumps(name)} not allowed with host {ns} enabled"
    return ""


def _apparmor_required(pod: Obj) -> bool:
    """Any profile but Unconfined asks for AppArmor (pkg/security/apparmor isRequired)."""
    spec = pod.get("spec") or {}

    def confined(sc: Any) -> bool:
        profile = (sc or {}).get("appArmorProfile") if isinstance(sc, dict) else None
        return isinstance(profile, dict) and profile.get("type") not in (None, "Unconfined")

    if confined(spec.get("securityContext")):
        return True
    if any(confined(c.get("securityContext")) for key in ("initContainers", "containers", "ephemeralContainers")
           for c in spec.get(key) or []):
        return True
    return any(k.startswith(_APPARMOR_ANNOTATION_PREFIX) and v != "unconfined"
               for k, v in ((pod.get("metadata") or {}).get("annotations") or {}).items())


def _amount(name: str, value: Any) -> int:
    q = parse_quantity(value)
    if q is None:
        return 0
    return int(q * 1000) if name == "cpu" else int(q)


def _host_ports(pod: Obj) -> list[tuple[str, str, int]]:
    return [(p.get("protocol") or "TCP", p.get("hostIP") or "0.0.0.0", int(p["hostPort"]))
            for key in ("initContainers", "containers") for c in (pod.get("spec") or {}).get(key) or []
            for p in c.get("ports") or [] if p.get("hostPort")]


def _ports_conflict(a: tuple[str, str, int], b: tuple[str, str, int]) -> bool:
    return a[0] == b[0] and a[2] == b[2] and (a[1] == b[1] or "0.0.0.0" in (a[1], b[1]))


def general_predicates(pod: Obj, node_obj: Obj, others: Iterable[Obj]) -> Rejection | None:
    """What the kubelet re-checks of the scheduler's work (its GeneralPredicates), in its
    order, first failure wins: resources, node affinity and selector, host ports, NoExecute
    taints. `others` are the pods already admitted to the node."""
    others = list(others)
    allocatable = (node_obj.get("status") or {}).get("allocatable") or {}
    wanted = {"pods": 1, **pod_requests(pod, {})}
    used = {"pods": len(others), "cpu": 0, "memory": 0}
    for other in others:
        for name, value in pod_requests(other, {}).items():
            used[name] += value
    for name in ("pods", "cpu", "memory"):
        if name not in allocatable or not wanted.get(name):
            continue
        capacity = _amount(name, allocatable[name])
        if wanted[name] > capacity - used[name]:
            return Rejection(f"OutOf{name}", f"Node didn't have enough resource: {name}, requested: {wanted[name]}, "
                                             f"used: {used[name]}, capacity: {capacity}")
    if not RequiredNodeAffinity.of(pod.get("spec") or {}).fits(node_obj):
        return Rejection(NODE_AFFINITY, "Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                                        "affinity/selector")
    taken = [port for other in others for port in _host_ports(other)]
    if any(_ports_conflict(mine, theirs) for mine in _host_ports(pod) for theirs in taken):
        return Rejection("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the "
                                      "requested pod ports")
    tolerations = pod_tolerations(pod)
    for taint in (node_obj.get("spec") or {}).get("taints") or []:
        if taint.get("effect") == "NoExecute" and not tolerated(tolerations, Taint.of(taint)):
            return Rejection("TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the "
                                                "pod didn't tolerate")
    return None


def admit(pod: Obj, node: NodeFeatures, node_obj: Obj | None = None, others: Iterable[Obj] = ()) -> Rejection | None:
    """None if the node can run `pod`, else why not. Without `node_obj` (the Node as the
    API has it) the general predicates are left out."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if "kubernetes.io/os" in labels and labels["kubernetes.io/os"] != node.os:
        return Rejection("PodOSSelectorNodeLabelDoesNotMatch",
                         "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    if (spec.get("os") or {}).get("name") not in (None, node.os):
        return Rejection("PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS")
    if psc.get("supplementalGroupsPolicy") == "Strict" and not node.supplemental_groups_policy:
        return Rejection(SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED,
                         "SupplementalGroupsPolicy=Strict is not supported in this node")
    if node_obj is not None:
        rejection = general_predicates(pod, node_obj, others)
        if rejection is not None:
            return rejection
    for sysctl in psc.get("sysctls") or []:
        problem = _sysctl_problem(str(sysctl.get("name") or ""), node.allowed_unsafe_sysctls,
                                  bool(spec.get("hostNetwork")), bool(spec.get("hostIPC")))
        if problem:
            return Rejection(SYSCTL_FORBIDDEN, f"forbidden sysctl: {problem}")
    if _apparmor_required(pod) and not node.apparmor:
        return Rejection(APPARMOR, "Cannot enforce AppArmor: AppArmor is not enabled on the host")
    if spec.get("hostUsers") is False and not node.user_namespaces:
        return Rejection(USER_NAMESPACES_NOT_SUPPORTED,
                         f"RuntimeClass handler {json.dumps(node.runtime_handler)} does not support user namespaces")
    return None

