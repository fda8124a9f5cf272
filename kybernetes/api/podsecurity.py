"""The Pod Security Standards (privileged / baseline / restricted) and the namespace
labels that choose them, as upstream's pod-security-admission evaluates them.

Pure functions over plain objects: `policy_from_labels` reads a namespace's
`pod-security.kubernetes.io/<mode>[-version]` labels, `evaluate` runs the checks of a
level at a version over a pod's metadata and spec, and the `*_message` helpers word
the outcome as kube-apiserver does. The API server's shell is `apiserver/podsecurity.py`.

Checks run in upstream's order (its source files' order): the baseline checks, then
for baseline the ones restricted replaces, or for restricted the restricted checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kybernetes.api.errors import FieldError, invalid

Obj = dict[str, Any]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
MODES = ("enforce", "audit", "warn")
LABEL_PREFIX = "pod-security.kubernetes.io/"
AUDIT_VIOLATIONS = "pod-security.kubernetes.io/audit-violations"
ENFORCE_POLICY = "pod-security.kubernetes.io/enforce-policy"
EXEMPT = "pod-security.kubernetes.io/exempt"
# The newest minor version whose checks differ; "latest" (and anything newer) is this.
LATEST_MINOR = 37
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class LevelVersion:
    level: str = PRIVILEGED
    minor: int | None = None  # None: latest

    def __str__(self) -> str:
        return f"{self.level}:{'latest' if self.minor is None else f'v1.{self.minor}'}"

    def effective_minor(self) -> int:
        return LATEST_MINOR if self.minor is None or self.minor > LATEST_MINOR else self.minor


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion()
    audit: LevelVersion = LevelVersion()
    warn: LevelVersion = LevelVersion()

    def privileged(self) -> bool:
        return all(lv.level == PRIVILEGED for lv in (self.enforce, self.audit, self.warn))


def level_rank(level: str) -> int:
    return LEVELS.index(level)


def _parse_level(value: str) -> str | None:
    return value if value in LEVELS else None


def _parse_version(value: str) -> tuple[bool, int | None]:
    if value in ("", "latest"):
        return True, None
    m = _VERSION.match(value)
    return (True, int(m.group(1))) if m else (False, None)


def policy_from_labels(labels: Mapping[str, Any] | None, defaults: Policy | None = None) -> tuple[Policy, list[FieldError]]:
    """The namespace's policy (upstream's PolicyToEvaluate) and what is wrong with its
    labels. A label that does not parse keeps the default for its field."""
    labels = labels if isinstance(labels, Mapping) else {}
    defaults = defaults or Policy()
    errs: list[FieldError] = []
    out: dict[str, LevelVersion] = {}
    explicit: dict[str, bool] = {}
    for mode in MODES:
        base: LevelVersion = getattr(defaults, mode)
        level, minor = base.level, base.minor
        explicit[mode] = False
        key = LABEL_PREFIX + mode
        if key in labels:
            value = str(labels[key])
            parsed = _parse_level(value)
            if parsed is None:
                errs.append(invalid(f"metadata.labels[{key}]", value, "must be one of privileged, baseline, restricted"))
            else:
                level = parsed
                explicit[mode] = True
        vkey = key + "-version"
        if vkey in labels:
            value = str(labels[vkey])
            ok, v = _parse_version(value)
            if not ok:
                errs.append(invalid(f"metadata.labels[{vkey}]", value, 'must be "latest" or "v1.x"'))
            else:
                minor = v
        out[mode] = LevelVersion(level, minor)
    enforce, warn = out["enforce"], out["warn"]
    warn_labelled = LABEL_PREFIX + "warn" in labels
    # As upstream: warn defaults to a more restrictive enforce level (so a Deployment in
    # an enforcing namespace hears about pods that would be refused).
    if not warn_labelled and explicit["enforce"] and level_rank(enforce.level) > level_rank(warn.level):
        minor = warn.minor if LABEL_PREFIX + "warn-version" in labels else enforce.minor
        out["warn"] = LevelVersion(enforce.level, minor)
    return Policy(out["enforce"], out["audit"], out["warn"]), errs


# -- helpers -------------------------------------------------------------------------------

def _join_quote(items: Iterable[str]) -> str:
    items = list(items)
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _containers(spec: Obj) -> list[Obj]:
    out: list[Obj] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in spec.get(key) or () if isinstance(c, dict)]
    return out


def _sc(container: Obj) -> Obj:
    return _d(container.get("securityContext"))


def _name(container: Obj) -> str:
    return str(container.get("name") or "")


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(f"{_plural('container', 'containers', len(containers))} {_join_quote(containers)}")
    return out


def _windows(spec: Obj) -> bool:
    return _d(spec.get("os")).get("name") == "windows"


Result = tuple[str, str] | None  # (reason, detail) of a failed check, None when allowed
Check = Callable[[Obj, Obj, int], Result]


# -- baseline ------------------------------------------------------------------------------

_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"


def _app_armor(meta: Obj, spec: Obj, minor: int) -> Result:
    def bad(sc: Obj) -> str | None:
        profile = sc.get("appArmorProfile")
        if not isinstance(profile, dict):
            return None
        t = str(profile.get("type") or "")
        return None if t in ("RuntimeDefault", "Localhost") else t

    values: set[str] = set()
    pod_bad = (v := bad(_d(spec.get("securityContext")))) is not None
    if v is not None:
        values.add(v)
    names = []
    for c in _containers(spec):
        if (v := bad(_sc(c))) is not None:
            names.append(_name(c))
            values.add(v)
    setters = _setters(pod_bad, names)
    annotations = sorted(
        f'{k}="{v}"' for k, v in _d(meta.get("annotations")).items()
        if k.startswith(_APPARMOR_PREFIX) and v and v != "runtime/default" and not str(v).startswith("localhost/"))
    bad_values = sorted(values) + annotations
    if annotations:
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (_plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
            f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(bad_values)}")


_BASELINE_CAPS = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                            "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def _capabilities_baseline(meta: Obj, spec: Obj, minor: int) -> Result:
    names, caps = [], set()
    for c in _containers(spec):
        added = [str(a) for a in _d(_sc(c).get("capabilities")).get("add") or () if str(a) not in _BASELINE_CAPS]
        if added:
            names.append(_name(c))
            caps.update(added)
    if not names:
        return None
    return ("non-default capabilities", f"{_plural('container', 'containers', len(names))} {_join_quote(names)} "
            f"must not include {_join_quote(sorted(caps))} in securityContext.capabilities.add")


def _host_namespaces(meta: Obj, spec: Obj, minor: int) -> Result:
    used = sorted(k for k in ("hostIPC", "hostNetwork", "hostPID") if spec.get(k) is True)
    return ("host namespaces", ", ".join(f"{k}=true" for k in used)) if used else None


def _host_path_volumes(meta: Obj, spec: Obj, minor: int) -> Result:
    names = [str(v.get("name") or "") for v in spec.get("volumes") or () if isinstance(v, dict)
             and v.get("hostPath") is not None]
    return ("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}") if names else None


def _host_ports(meta: Obj, spec: Obj, minor: int) -> Result:
    names, ports = [], set()
    for c in _containers(spec):
        bad = [p.get("hostPort") for p in c.get("ports") or () if isinstance(p, dict) and p.get("hostPort")]
        if bad:
            names.append(_name(c))
            ports.update(str(p) for p in bad)
    if not names:
        return None
    return ("hostPort", f"{_plural('container', 'containers', len(names))} {_join_quote(names)} "
            f"{_plural('uses', 'use', len(names))} {_plural('hostPort', 'hostPorts', len(ports))} "
            f"{', '.join(sorted(ports))}")


def _host_probes(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 34:
        return None
    names: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        handlers = [_d(c.get(k)) for k in ("livenessProbe", "readinessProbe", "startupProbe")]
        lifecycle = _d(c.get("lifecycle"))
        handlers += [_d(lifecycle.get(k)) for k in ("postStart", "preStop")]
        for h in handlers:
            for kind in ("httpGet", "tcpSocket"):
                host = _d(h.get(kind)).get("host")
                if host:
                    names.add(_name(c))
                    hosts.add(str(host))
    if not names:
        return None
    return ("probe or lifecycle host",
            f"{_plural('container', 'containers', len(names))} {_join_quote(sorted(names))} "
            f"{_plural('uses', 'use', len(names))} "
            f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} {_join_quote(sorted(hosts))}")


def _privileged(meta: Obj, spec: Obj, minor: int) -> Result:
    names = [_name(c) for c in _containers(spec) if _sc(c).get("privileged") is True]
    if not names:
        return None
    return ("privileged", f"{_plural('container', 'containers', len(names))} {_join_quote(names)} "
            "must not set securityContext.privileged=true")


def _proc_mount(meta: Obj, spec: Obj, minor: int) -> Result:
    names, types = [], set()
    for c in _containers(spec):
        pm = _sc(c).get("procMount")
        if pm is not None and pm != "Default":
            names.append(_name(c))
            types.add(str(pm))
    if not names:
        return None
    return ("procMount", f"{_plural('container', 'containers', len(names))} {_join_quote(names)} "
            f"must not set securityContext.procMount to {_join_quote(sorted(types))}")


def _selinux(meta: Obj, spec: Obj, minor: int) -> Result:
    allowed = {"", "container_t", "container_init_t", "container_kvm_t"}
    if minor >= 31:
        allowed.add("container_engine_t")
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: Obj) -> bool:
        ok = True
        t = str(opts.get("type") or "")
        if t not in allowed:
            ok = False
            bad_types.add(t)
        for k in ("user", "role"):
            if opts.get(k):
                ok = False
                flags[k] = True
        return ok

    pod_opts = _d(spec.get("securityContext")).get("seLinuxOptions")
    pod_bad = isinstance(pod_opts, dict) and not valid(pod_opts)
    names = [_name(c) for c in _containers(spec)
             if isinstance(_sc(c).get("seLinuxOptions"), dict) and not valid(_sc(c)["seLinuxOptions"])]
    setters = _setters(pod_bad, names)
    if not setters:
        return None
    data: list[str] = []
    # As upstream's check words it: user and role are only named next to a bad type.
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
    return ("seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}")


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_ok(t: Any) -> bool:
    return t in ("RuntimeDefault", "Localhost")


def _seccomp_baseline(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 19:
        annotations = _d(meta.get("annotations"))
        bad: set[str] = set()

        def check(key: str) -> None:
            if key in annotations:
                v = str(annotations[key])
                if not (v in ("runtime/default", "docker/default") or v.startswith("localhost/")):
                    bad.add(f'{key}="{v}"')
        check(_SECCOMP_POD_ANNOTATION)
        for c in _containers(spec):
            check(_SECCOMP_CONTAINER_PREFIX + _name(c))
        if not bad:
            return None
        return ("seccompProfile", f"forbidden {_plural('annotation', 'annotations', len(bad))} {', '.join(sorted(bad))}")
    values: set[str] = set()
    profile = _d(spec.get("securityContext")).get("seccompProfile")
    pod_bad = isinstance(profile, dict) and not _seccomp_ok(profile.get("type"))
    if pod_bad:
        values.add(str(_d(profile).get("type") or ""))
    names = []
    for c in _containers(spec):
        p = _sc(c).get("seccompProfile")
        if isinstance(p, dict) and not _seccomp_ok(p.get("type")):
            names.append(_name(c))
            values.add(str(p.get("type") or ""))
    setters = _setters(pod_bad, names)
    if not setters:
        return None
    return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}")


_SYSCTLS = {
    0: ("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"),
    27: ("net.ipv4.ip_local_reserved_ports",),
    29: ("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
         "net.ipv4.tcp_keepalive_probes"),
    32: ("net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"),
}


def _sysctls(meta: Obj, spec: Obj, minor: int) -> Result:
    allowed = {name for since, names in _SYSCTLS.items() if minor >= since for name in names}
    bad = [str(s.get("name") or "") for s in _d(spec.get("securityContext")).get("sysctls") or ()
           if isinstance(s, dict) and s.get("name") not in allowed]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def _host_process(meta: Obj, spec: Obj, minor: int) -> Result:
    def bad(sc: Obj) -> bool:
        return _d(sc.get("windowsOptions")).get("hostProcess") is True
    names = [_name(c) for c in _containers(spec) if bad(_sc(c))]
    setters = _setters(bad(_d(spec.get("securityContext"))), names)
    if not setters:
        return None
    return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# -- restricted ----------------------------------------------------------------------------

def _allow_privilege_escalation(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 8 or (minor >= 25 and _windows(spec)):
        return None
    names = [_name(c) for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if not names:
        return None
    return ("allowPrivilegeEscalation != false", f"{_plural('container', 'containers', len(names))} "
            f"{_join_quote(names)} must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 22:
        return _capabilities_baseline(meta, spec, minor)
    if minor >= 25 and _windows(spec):
        return None
    missing, adding, caps = [], [], set()
    for c in _containers(spec):
        capabilities = _sc(c).get("capabilities")
        if not isinstance(capabilities, dict):
            missing.append(_name(c))
            continue
        if "ALL" not in (capabilities.get("drop") or ()):
            missing.append(_name(c))
        added = [str(a) for a in capabilities.get("add") or () if a != "NET_BIND_SERVICE"]
        if added:
            adding.append(_name(c))
            caps.update(added)
    details = []
    if missing:
        details.append(f"{_plural('container', 'containers', len(missing))} {_join_quote(missing)} "
                       'must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} "
                       f"must not include {_join_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                              "projected", "secret"})


def _restricted_volumes(meta: Obj, spec: Obj, minor: int) -> Result:
    names, types = [], set()
    for v in spec.get("volumes") or ():
        if not isinstance(v, dict):
            continue
        sources = [k for k, val in v.items() if k != "name" and val is not None]
        if any(k in _ALLOWED_VOLUMES for k in sources):
            continue
        names.append(str(v.get("name") or ""))
        types.add(sources[0] if sources else "unknown")
    if not names:
        return None
    return ("restricted volume types",
            f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)} {_plural('uses', 'use', len(names))} "
            f"{_plural('restricted volume type', 'restricted volume types', len(types))} {_join_quote(sorted(types))}")


def _run_as_non_root(meta: Obj, spec: Obj, minor: int) -> Result:
    pod_value = _d(spec.get("securityContext")).get("runAsNonRoot")
    pod_bad = pod_value is False
    pod_ok = pod_value is True
    explicit, implicit = [], []
    for c in _containers(spec):
        value = _sc(c).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(_name(c))
        elif not pod_ok:
            implicit.append(_name(c))
    setters = _setters(pod_bad, explicit)
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return ("runAsNonRoot != true", f"pod or {_plural('container', 'containers', len(implicit))} "
                f"{_join_quote(implicit)} must set securityContext.runAsNonRoot=true")
    return None


def _run_as_user(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 23:
        return None
    pod_bad = _d(spec.get("securityContext")).get("runAsUser") == 0
    names = [_name(c) for c in _containers(spec) if _sc(c).get("runAsUser") == 0
             and not isinstance(_sc(c).get("runAsUser"), bool)]
    setters = _setters(pod_bad, names)
    return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def _seccomp_restricted(meta: Obj, spec: Obj, minor: int) -> Result:
    if minor < 19:
        return _seccomp_baseline(meta, spec, minor)
    if minor >= 25 and _windows(spec):
        return None
    values: set[str] = set()
    profile = _d(spec.get("securityContext")).get("seccompProfile")
    pod_set = False
    pod_bad = False
    if isinstance(profile, dict):
        if _seccomp_ok(profile.get("type")):
            pod_set = True
        else:
            pod_bad = True
            values.add(str(profile.get("type") or ""))
    explicit, implicit = [], []
    for c in _containers(spec):
        p = _sc(c).get("seccompProfile")
        if isinstance(p, dict):
            if not _seccomp_ok(p.get("type")):
                explicit.append(_name(c))
                values.add(str(p.get("type") or ""))
        elif not pod_set:
            implicit.append(_name(c))
    setters = _setters(pod_bad, explicit)
    if setters:
        return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                f"{_join_quote(sorted(values))}")
    if implicit:
        return ("seccompProfile", f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
                'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return None


_BASELINE: tuple[Check, ...] = (_app_armor, _host_namespaces, _host_ports, _host_probes, _privileged, _proc_mount,
                                _selinux, _sysctls, _host_process)
# Baseline checks that restricted replaces with stricter ones of its own.
_BASELINE_ONLY: tuple[Check, ...] = (_capabilities_baseline, _host_path_volumes, _seccomp_baseline)
_RESTRICTED: tuple[Check, ...] = (_allow_privilege_escalation, _capabilities_restricted, _restricted_volumes,
                                  _run_as_non_root, _run_as_user, _seccomp_restricted)


def evaluate(lv: LevelVersion, meta: Obj | None, spec: Obj | None) -> list[tuple[str, str]]:
    """The (reason, detail) of every check the pod fails at this level and version."""
    if lv.level == PRIVILEGED:
        return []
    meta, spec = _d(meta), _d(spec)
    minor = lv.effective_minor()
    checks = _BASELINE + (_BASELINE_ONLY if lv.level == BASELINE else _RESTRICTED)
    return [r for check in checks if (r := check(meta, spec, minor)) is not None]


def forbidden_detail(results: list[tuple[str, str]]) -> str:
    """`reason (detail), reason (detail)`: upstream's AggregateCheckResult.ForbiddenDetail."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in results)


def forbidden_reason(results: list[tuple[str, str]]) -> str:
    return ", ".join(reason for reason, _ in results)


def enforce_message(lv: LevelVersion, results: list[tuple[str, str]]) -> str:
    return f'violates PodSecurity "{lv}": {forbidden_detail(results)}'


def warn_message(lv: LevelVersion, results: list[tuple[str, str]]) -> str:
    return f'would violate PodSecurity "{lv}": {forbidden_detail(results)}'


# -- objects that hold pods ----------------------------------------------------------------

# Resources whose objects carry a pod template (upstream's DefaultPodSpecExtractor), and
# the path to the template.
_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "podtemplates"): ("template",),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


def holds_template(group: str, plural: str) -> bool:
    return (group, plural) in _TEMPLATE_PATHS


def pod_template(group: str, plural: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod template a workload object holds."""
    path = _TEMPLATE_PATHS.get((group, plural))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = _d(node).get(key)
    if not isinstance(node, dict):
        return None
    return _d(node.get("metadata")), _d(node.get("spec"))


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """Whether a pod update can change what the checks see (upstream's
    isSignificantPodUpdate): an image, or a seccomp annotation, or ephemeral containers."""
    new_ann, old_ann = _d(_d(new.get("metadata")).get("annotations")), _d(_d(old.get("metadata")).get("annotations"))
    if new_ann.get(_SECCOMP_POD_ANNOTATION) != old_ann.get(_SECCOMP_POD_ANNOTATION):
        return True
    ns, os_ = _d(new.get("spec")), _d(old.get("spec"))
    for key in ("containers", "initContainers", "ephemeralContainers"):
        a = [c for c in ns.get(key) or () if isinstance(c, dict)]
        b = [c for c in os_.get(key) or () if isinstance(c, dict)]
        if len(a) != len(b):
            return True
        for c, o in zip(a, b, strict=True):
            if c.get("image") != o.get("image"):
                return True
            k = _SECCOMP_CONTAINER_PREFIX + _name(c)
            if new_ann.get(k) != old_ann.get(k):
                return True
    return False


def namespace_pod_warnings(namespace: str, lv: LevelVersion, pods: Iterable[Obj], limit: int = 3000) -> list[str]:
    """The warnings of a namespace label change that makes its enforce level stricter
    (upstream's EvaluatePodsInNamespace): one line per distinct set of violations,
    naming the first pod (by name) and how many others share it."""
    pods = list(pods)
    total = len(pods)
    checked = pods[:limit]
    counts: dict[str, tuple[str, int]] = {}
    order: list[str] = []
    for pod in checked:
        results = evaluate(lv, pod.get("metadata"), pod.get("spec"))
        if not results:
            continue
        reason = forbidden_reason(results)
        name = str(_d(pod.get("metadata")).get("name") or "")
        if reason not in counts:
            counts[reason] = (name, 1)
            order.append(reason)
        else:
            first, n = counts[reason]
            counts[reason] = (min(first, name), n + 1)
    warnings = []
    if len(checked) < total:
        warnings.append(f"new PodSecurity enforce level only checked against the first {len(checked)} of "
                        f"{total} existing pods")
    if order:
        warnings.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "{lv}"')
    lines = []
    for reason in order:
        name, n = counts[reason]
        if n == 1:
            lines.append(f"{name}: {reason}")
        elif n == 2:
            lines.append(f"{name} (and 1 other pod): {reason}")
        else:
            lines.append(f"{name} (and {n - 1} other pods): {reason}")
    return warnings + sorted(lines)


# -- configuration -------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """The PodSecurity plugin's configuration (upstream's PodSecurityConfiguration):
    the policy of a namespace without labels, and who is never checked."""

    defaults: Policy = Policy()
    exempt_usernames: frozenset[str] = frozenset()
    exempt_runtime_classes: frozenset[str] = frozenset()
    exempt_namespaces: frozenset[str] = frozenset()


CONFIG_KIND = "PodSecurityConfiguration"
CONFIG_GROUP = "pod-security.admission.config.k8s.io"


def parse_config(doc: Any) -> Config:
    """A PodSecurityConfiguration object (already decoded); ValueError names what is wrong."""
    if not isinstance(doc, dict):
        raise ValueError("PodSecurityConfiguration: not an object")
    kind, api_version = doc.get("kind"), str(doc.get("apiVersion") or "")
    if kind != CONFIG_KIND or not api_version.startswith(CONFIG_GROUP + "/"):
        raise ValueError(f"expected {CONFIG_GROUP}/v1 {CONFIG_KIND}, got {api_version} {kind}")
    defaults = _d(doc.get("defaults"))
    labels = {LABEL_PREFIX + k: v for k, v in defaults.items() if isinstance(v, str)}
    policy, errs = policy_from_labels(labels)
    if errs:
        raise ValueError("defaults: " + "; ".join(f"{e.field.removeprefix('metadata.labels[')[len(LABEL_PREFIX):-1]}: "
                                                   f"{e.detail}" for e in errs))
    # Defaults name each mode explicitly: warn does not follow enforce here.
    warn = LevelVersion(str(defaults.get("warn") or PRIVILEGED),
                        _parse_version(str(defaults.get("warn-version") or ""))[1])
    policy = Policy(policy.enforce, policy.audit, warn)
    ex = _d(doc.get("exemptions"))

    def names(key: str) -> frozenset[str]:
        value = ex.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"exemptions.{key}: must be a list of strings")
        return frozenset(value)
    return Config(policy, names("usernames"), names("runtimeClasses"), names("namespaces"))
