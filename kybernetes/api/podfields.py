"""Pod spec fields a 1.35 API server handles by its feature gates, and the fields this
cluster's nodes cannot honour, as pure functions on dicts.

Disabled fields (`drop_disabled_fields`): the served schema is a later release's, so it
knows fields whose feature is alpha (off by default) in 1.35 or newer than 1.35. Upstream's
dropDisabledPodFields clears such a field on create, and on update unless the stored object
already used it; here the same for `lifecycle.stopSignal` (ContainerStopSignals, alpha),
`schedulingGroup` (a workload-scheduling alpha), `evictionResponders` and
`volumeMounts[].bindMountOptions` (after 1.35).

Refused fields (`spec_errors`, in every pod spec, templates included): the node agent has
no pod-level cgroup (pod-level `resources`), no dynamic resource allocation driver or
device preparation (`resourceClaims`, `resources.claims`), no per-container restart
policy (`containers[].restartPolicy`, `restartPolicyRules`) and no block devices
(`volumeDevices`, refused on the node: see agent/volumes.py). Each is refused with a
message that says why rather than accepted and ignored. Also upstream's checks of
`hostnameOverride`, of probe-level `terminationGracePeriodSeconds`, of `volumeDevices` and
of volume mounts' `mountPropagation` and `recursiveReadOnly`, and of lifecycle handlers
(one each, a sleep within the grace period)."""

from __future__ import annotations

from typing import Any

from kybernetes.api.errors import FieldError, forbidden, invalid, not_supported, required
from kybernetes.api.names import dns1123_subdomain_errors

Obj = dict[str, Any]
Errors = list[FieldError]

_CONTAINER_KEYS = ("initContainers", "containers", "ephemeralContainers")
# Spec fields whose feature is off in a 1.35 server (or does not exist there).
_DISABLED_SPEC_FIELDS = ("schedulingGroup", "evictionResponders")

POD_RESOURCES_UNSUPPORTED = ("pod-level resources are not supported by this cluster's nodes (the node agent "
                             "keeps no pod-level cgroup to enforce them); set requests and limits per container")
DRA_UNSUPPORTED = ("dynamic resource allocation is not supported by this cluster's nodes: no node agent "
                   "can prepare devices for a ResourceClaim")
RESTART_POLICY_UNSUPPORTED = ("may not be set for non-init containers: per-container restart policies are not "
                              "supported by this cluster's nodes")
RESTART_RULES_UNSUPPORTED = "per-container restart rules are not supported by this cluster's nodes"
HOSTNAME_OVERRIDE_MAX = 64


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in _CONTAINER_KEYS for c in _dicts(spec.get(key))]


def _uses_stop_signal(spec: Obj) -> bool:
    return any(isinstance(c.get("lifecycle"), dict) and c["lifecycle"].get("stopSignal") is not None
               for c in _containers(spec))


def _uses_bind_mount_options(spec: Obj) -> bool:
    return any(m.get("bindMountOptions") is not None for c in _containers(spec) for m in _dicts(c.get("volumeMounts")))


def drop_disabled_fields(spec: Any, old_spec: Any = None) -> None:
    """Clear from `spec` the fields a 1.35 server's defaults leave disabled, unless
    `old_spec` (the stored spec on an update) already uses them, as upstream does."""
    if not isinstance(spec, dict):
        return
    old = old_spec if isinstance(old_spec, dict) else {}
    for key in _DISABLED_SPEC_FIELDS:
        if key in spec and old.get(key) is None:
            del spec[key]
    if not _uses_stop_signal(old):
        for c in _containers(spec):
            lifecycle = c.get("lifecycle")
            if isinstance(lifecycle, dict) and "stopSignal" in lifecycle:
                del lifecycle["stopSignal"]
                if not lifecycle:
                    del c["lifecycle"]
    if not _uses_bind_mount_options(old):
        for c in _containers(spec):
            for m in _dicts(c.get("volumeMounts")):
                m.pop("bindMountOptions", None)


def _volume_device_errors(path: str, c: Obj, volumes: dict[str, Obj]) -> Errors:
    """Upstream's validateVolumeDevices: each names a claim (or ephemeral) volume the
    container does not also mount, at a unique absolute path without '..'."""
    errs: Errors = []
    paths: set[str] = set()
    mounted = {m.get("name") for m in _dicts(c.get("volumeMounts"))}
    mount_paths = {m.get("mountPath") for m in _dicts(c.get("volumeMounts"))}
    for i, dev in enumerate(c.get("volumeDevices") or []):
        p = f"{path}.volumeDevices[{i}]"
        if not isinstance(dev, dict):
            continue
        name, device_path = dev.get("name"), dev.get("devicePath")
        if not name:
            errs.append(required(f"{p}.name"))
        elif name not in volumes:
            errs.append(invalid(f"{p}.name", name, "must match the name of a persistentVolumeClaim volume"))
        elif not any(volumes[name].get(k) is not None for k in ("persistentVolumeClaim", "ephemeral")):
            errs.append(invalid(f"{p}.name", name, "can only use volume source type of PersistentVolumeClaim or "
                                                   "Ephemeral for block mode"))
        elif name in mounted:
            errs.append(invalid(f"{p}.name", name, "must not already exist in volumeMounts"))
        if not device_path:
            errs.append(required(f"{p}.devicePath"))
            continue
        if device_path in paths:
            errs.append(invalid(f"{p}.devicePath", device_path, "must be unique"))
        paths.add(device_path)
        if ".." in str(device_path).split("/"):
            errs.append(invalid(f"{p}.devicePath", device_path, "can not contain backsteps ('..')"))
        if device_path in mount_paths:
            errs.append(invalid(f"{p}.devicePath", device_path, "must not already exist as a path in volumeMounts"))
    return errs


def _mount_errors(path: str, c: Obj) -> Errors:
    """mountPropagation (Bidirectional only for a privileged container) and
    recursiveReadOnly (only on a read-only mount that propagates nothing), as upstream."""
    errs: Errors = []
    privileged = isinstance(c.get("securityContext"), dict) and c["securityContext"].get("privileged") is True
    for i, m in enumerate(c.get("volumeMounts") or []):
        if not isinstance(m, dict):
            continue
        p = f"{path}.volumeMounts[{i}]"
        propagation, rro = m.get("mountPropagation"), m.get("recursiveReadOnly")
        if propagation is not None:
            if propagation not in ("Bidirectional", "HostToContainer", "None"):
                errs.append(not_supported(f"{p}.mountPropagation", propagation,
                                          ["Bidirectional", "HostToContainer", "None"]))
            elif propagation == "Bidirectional" and not privileged:
                errs.append(forbidden(f"{p}.mountPropagation",
                                      "Bidirectional mount propagation is available only to privileged containers"))
        if rro is None:
            continue
        if rro not in ("Disabled", "Enabled", "IfPossible"):
            errs.append(not_supported(f"{p}.recursiveReadOnly", rro, ["Disabled", "Enabled", "IfPossible"]))
        elif rro != "Disabled":
            if not m.get("readOnly"):
                errs.append(forbidden(f"{p}.recursiveReadOnly", "may only be specified when readOnly is true"))
            if propagation not in (None, "None"):
                errs.append(forbidden(f"{p}.recursiveReadOnly",
                                      "may only be specified when mountPropagation is None or not specified"))
    return errs


def _probe_grace_errors(path: str, c: Obj) -> Errors:
    """Probe-level terminationGracePeriodSeconds: positive, and only where a failing probe
    kills the container (liveness, startup)."""
    errs: Errors = []
    for kind in ("livenessProbe", "startupProbe", "readinessProbe"):
        probe = c.get(kind)
        grace = probe.get("terminationGracePeriodSeconds") if isinstance(probe, dict) else None
        if grace is None:
            continue
        p = f"{path}.{kind}.terminationGracePeriodSeconds"
        if kind == "readinessProbe":
            errs.append(invalid(p, grace, "must not be set for readinessProbes"))
        elif not isinstance(grace, int) or isinstance(grace, bool) or grace <= 0:
            errs.append(invalid(p, grace, "must be greater than 0"))
    return errs


def _lifecycle_errors(path: str, c: Obj, grace: Any) -> Errors:
    """postStart/preStop as upstream's validateLifecycleHandler: one handler each (tcpSocket
    counts: it is accepted and fails on the node), a sleep within the grace period."""
    lifecycle = c.get("lifecycle")
    if not isinstance(lifecycle, dict):
        return []
    errs: Errors = []
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook)
        if not isinstance(handler, dict):
            continue
        p = f"{path}.lifecycle.{hook}"
        kinds = [k for k in ("exec", "httpGet", "tcpSocket", "sleep") if handler.get(k) is not None]
        if not kinds:
            errs.append(required(p, "must specify a handler type"))
        elif len(kinds) > 1:
            errs.append(forbidden(f"{p}.{kinds[1]}", "may not specify more than 1 handler type"))
        sleep = handler.get("sleep")
        seconds = sleep.get("seconds") if isinstance(sleep, dict) else None
        if isinstance(seconds, int) and isinstance(grace, int) and not 0 <= seconds <= grace:
            errs.append(invalid(f"{p}.sleep", seconds,
                                f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"))
    return errs


def _container_errors(path: str, c: Obj, init: bool, volumes: dict[str, Obj], grace: Any = 30) -> Errors:
    errs = _volume_device_errors(path, c, volumes) + _probe_grace_errors(path, c) + _mount_errors(path, c)
    errs += _lifecycle_errors(path, c, grace)
    policy = c.get("restartPolicy")
    if policy is not None:
        if not init:
            errs.append(forbidden(f"{path}.restartPolicy", RESTART_POLICY_UNSUPPORTED))
        elif policy != "Always":
            errs.append(not_supported(f"{path}.restartPolicy", policy, ["Always"]))
    if c.get("restartPolicyRules"):
        errs.append(forbidden(f"{path}.restartPolicyRules", RESTART_RULES_UNSUPPORTED))
    resources = c.get("resources")
    if isinstance(resources, dict) and resources.get("claims"):
        errs.append(forbidden(f"{path}.resources.claims", DRA_UNSUPPORTED))
    return errs


def hostname_errors(path: str, spec: Obj) -> Errors:
    """hostnameOverride: a DNS subdomain of at most 64 characters (the kernel's limit),
    neither with setHostnameAsFQDN nor with the host's network (whose name the pod shares)."""
    override = spec.get("hostnameOverride")
    if override is None:
        return []
    p = f"{path}.hostnameOverride"
    errs = [invalid(p, override, m) for m in dns1123_subdomain_errors(override)]
    if isinstance(override, str) and len(override) > HOSTNAME_OVERRIDE_MAX:
        errs.append(invalid(p, override, f"must be no more than {HOSTNAME_OVERRIDE_MAX} characters"))
    if spec.get("setHostnameAsFQDN") is True:
        errs.append(invalid(p, override, "may not be set when setHostnameAsFQDN is true"))
    if spec.get("hostNetwork") is True:
        errs.append(invalid(p, override, "may not be set when hostNetwork is true"))
    return errs


def spec_errors(path: str, spec: Obj) -> Errors:
    """The refusals and checks of this module's docstring for one pod spec at `path`."""
    errs: Errors = []
    volumes = {v.get("name"): v for v in _dicts(spec.get("volumes")) if v.get("name")}
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if isinstance(c, dict):
                errs += _container_errors(f"{path}.{key}[{i}]", c, key == "initContainers", volumes,
                                          spec.get("terminationGracePeriodSeconds", 30))
    resources = spec.get("resources")
    if isinstance(resources, dict) and any(resources.get(k) for k in ("requests", "limits", "claims")):
        errs.append(forbidden(f"{path}.resources", POD_RESOURCES_UNSUPPORTED))
    claims = spec.get("resourceClaims")
    if claims:
        errs.append(forbidden(f"{path}.resourceClaims", DRA_UNSUPPORTED))
    errs += hostname_errors(path, spec)
    return errs

