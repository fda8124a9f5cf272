"""Node-side pod admission: whether this node can run a pod bound to it at all, decided
before anything of the pod is created, as the kubelet's admit handlers do. A refused
pod is set phase Failed with the handler's reason and "Pod was rejected: <message>",
and its containers never start. Pure: the node's abilities come in as `NodeFeatures`.

Handled here: sysctls (the safe set, plus what --allowed-unsafe-sysctls allows; only
namespaced ones; none of the net namespace for hostNetwork pods, none of the IPC one for
hostIPC pods), AppArmor (refused when the kernel has none), supplementalGroupsPolicy
Strict and user namespaces (hostUsers: false), which containerd 1.6 cannot do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

SYSCTL_FORBIDDEN = "SysctlForbidden"
APPARMOR = "AppArmor"
SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED = "SupplementalGroupsPolicyNotSupported"
USER_NAMESPACES_NOT_SUPPORTED = "UserNamespacesNotSupported"
REASONS = frozenset((SYSCTL_FORBIDDEN, APPARMOR, SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED,
                     USER_NAMESPACES_NOT_SUPPORTED))

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


def admit(pod: Obj, node: NodeFeatures) -> Rejection | None:
    """None if the node can run `pod`, else why not."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    if psc.get("supplementalGroupsPolicy") == "Strict" and not node.supplemental_groups_policy:
        return Rejection(SUPPLEMENTAL_GROUPS_POLICY_NOT_SUPPORTED,
                         "SupplementalGroupsPolicy=Strict is not supported in this node")
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

