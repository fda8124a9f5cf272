"""A container's security settings as the kubelet derives them from a pod: the effective
security context (pod-level defaults, container overrides), no_new_privs, the seccomp
profile (RuntimeDefault, Unconfined, or a Localhost file under the agent's seccomp
directory), the namespaces shared with the host or the pod, /proc masking, and the
runAsNonRoot check against the image's user. Pure functions on plain dicts."""

from __future__ import annotations

import posixpath
from typing import Any

Obj = dict[str, Any]

# Fields a pod's securityContext lends to containers that do not set them
# (securitycontext.DetermineEffectiveSecurityContext).
_INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions", "seccompProfile", "appArmorProfile",
              "windowsOptions")

RUNTIME_DEFAULT, UNCONFINED, LOCALHOST = "RuntimeDefault", "Unconfined", "Localhost"
# Namespace modes, as CRI names them.
NODE, POD, CONTAINER = "NODE", "POD", "CONTAINER"


class SecurityContextError(ValueError):
    """The container cannot be created as its security context asks (CreateContainerConfigError)."""


def pod_ref(pod: Obj) -> str:
    """How the kubelet names a pod in messages: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def effective(pod: Obj, container: Obj) -> Obj:
    """The container's securityContext with the pod's defaults filled in."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    out = dict(container.get("securityContext") or {})
    for key in _INHERITED:
        if out.get(key) is None and psc.get(key) is not None:
            out[key] = psc[key]
    return out


def no_new_privs(sc: Obj) -> bool:
    """no_new_privs only when allowPrivilegeEscalation is false (securitycontext.AddNoNewPrivileges)."""
    return sc.get("allowPrivilegeEscalation") is False


def proc_unmasked(sc: Obj) -> bool:
    return sc.get("procMount") == "Unmasked"


def seccomp(profile: Any, root: str) -> tuple[str, str]:
    """(profile type, localhost file) for the runtime. No profile means Unconfined, as the
    kubelet without SeccompDefault. A Localhost profile is a path relative to `root` (the
    agent's seccomp directory) that may not leave it."""
    if not isinstance(profile, dict) or not profile.get("type"):
        return UNCONFINED, ""
    kind = profile["type"]
    if kind != LOCALHOST:
        return (RUNTIME_DEFAULT, "") if kind == RUNTIME_DEFAULT else (UNCONFINED, "")
    rel = str(profile.get("localhostProfile") or "")
    norm = posixpath.normpath(rel) if rel else ""
    if not rel or rel.startswith("/") or norm == ".." or norm.startswith("../") or ".." in rel.split("/"):
        raise SecurityContextError(f'seccomp localhostProfile "{rel}" must be a relative path inside the '
                                   f"node's seccomp directory ({root})")
    return LOCALHOST, posixpath.join(root, norm)


def check_container(pod: Obj, container: Obj, seccomp_root: str) -> None:
    """Raise SecurityContextError for what the node cannot build before asking the runtime."""
    seccomp(effective(pod, container).get("seccompProfile"), seccomp_root)


def namespaces(spec: Obj) -> tuple[str, str, str]:
    """(network, pid, ipc) modes of a pod's sandbox and containers (kubelet namespacesForPod):
    the host's when asked, the pause container's PID namespace with shareProcessNamespace."""
    network = NODE if spec.get("hostNetwork") else POD
    pid = NODE if spec.get("hostPID") else POD if spec.get("shareProcessNamespace") else CONTAINER
    ipc = NODE if spec.get("hostIPC") else POD
    return network, pid, ipc


def needs_image_user(pod: Obj, container: Obj) -> bool:
    """Whether runAsNonRoot can only be judged by the image's user."""
    sc = effective(pod, container)
    return sc.get("runAsNonRoot") is True and sc.get("runAsUser") is None


def verify_run_as_non_root(pod: Obj, container: Obj, image_uid: int | None, image_user: str) -> None:
    """Refuse a container with runAsNonRoot that would run as root, with the kubelet's
    messages. The image's user comes from the runtime's ImageStatus: a uid, else a name;
    an image that names no user runs as root."""
    sc = effective(pod, container)
    if sc.get("runAsNonRoot") is not True:
        return
    where = f'(pod: "{pod_ref(pod)}", container: {container.get("name", "")})'
    if sc.get("runAsUser") is not None:
        if sc["runAsUser"] == 0:
            raise SecurityContextError(f"container's runAsUser breaks non-root policy {where}")
        return
    if image_uid is None and image_user:
        raise SecurityContextError(f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
                                   f"cannot verify user is non-root {where}")
    if image_uid is None or image_uid == 0:
        raise SecurityContextError(f"container has runAsNonRoot and image will run as root {where}")
