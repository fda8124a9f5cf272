"""What to ask the container runtime for, decided from a pod: the sandbox and each
container's command, environment, resources and security settings. Pure functions on
plain dicts; the runtime shell turns the resulting specs into CRI messages."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from kybernetes.agent import etchosts, security
from kybernetes.api.quantity import parse_quantity

Obj = dict[str, Any]

# Labels the agent puts on sandboxes and containers, as the kubelet does: they find
# the pod again after an agent restart.
POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
# Annotations on containers: how often it was restarted, and which spec it runs.
RESTART_COUNT = "io.kubernetes.container.restartCount"
SPEC_HASH = "io.kubernetes.container.hash"
INIT = "kybernetes.io/init-container"
# Marks an ephemeral container (`kubectl debug`): never restarted, never removed by a sync.
EPHEMERAL = "kybernetes.io/ephemeral-container"

CPU_PERIOD = 100_000
MIN_SHARES = 2
SHARES_PER_CPU = 1024


class EnvError(ValueError):
    """A container's environment cannot be built (a missing ConfigMap or key, ...):
    the container is not started and the pod says why (CreateContainerConfigError)."""


@dataclass
class ContainerSpec:
    name: str
    image: str
    command: list[str]
    args: list[str]
    env: list[tuple[str, str]]
    working_dir: str = ""
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    memory_limit: int = 0
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    readonly_rootfs: bool = False
    privileged: bool = False
    add_capabilities: list[str] = field(default_factory=list)
    drop_capabilities: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)  # container path, host path, read-only
    # Container path -> CRI MountPropagation of the mounts that are not private.
    propagation: dict[str, int] = field(default_factory=dict)
    # The container whose PID namespace this one joins (an ephemeral container's target).
    pid_target_id: str = ""
    no_new_privs: bool = False
    # /proc as the kernel shows it (procMount: Unmasked): no masked or read-only paths.
    proc_unmasked: bool = False
    seccomp: tuple[str, str] = ("Unconfined", "")  # profile type, localhost file
    # Namespace modes (security.NODE/POD/CONTAINER): network, pid, ipc.
    namespaces: tuple[str, str, str] = ("POD", "CONTAINER", "POD")


@dataclass
class SandboxSpec:
    name: str
    namespace: str
    uid: str
    attempt: int
    hostname: str
    log_directory: str
    labels: dict[str, str]
    annotations: dict[str, str]
    port_mappings: list[tuple[str, int, int, str]]  # protocol, container port, host port, host ip
    host_network: bool = False
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: list[int] = field(default_factory=list)
    namespaces: tuple[str, str, str] = ("POD", "CONTAINER", "POD")  # network, pid, ipc
    sysctls: dict[str, str] = field(default_factory=dict)
    # A privileged container needs a privileged sandbox (the runtime refuses it otherwise).
    privileged: bool = False
    seccomp: tuple[str, str] = ("Unconfined", "")


# -- identity --------------------------------------------------------------------------------


def pod_labels(pod: Obj) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    return {POD_NAME: meta.get("name", ""), POD_NAMESPACE: meta.get("namespace", ""), POD_UID: meta.get("uid", "")}


def pod_log_directory(logs_root: str, pod: Obj) -> str:
    """Like /var/log/pods/NAMESPACE_NAME_UID."""
    meta = pod.get("metadata") or {}
    return f"{logs_root}/{meta.get('namespace', '')}_{meta.get('name', '')}_{meta.get('uid', '')}"


def container_log_path(name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory, like NAME/COUNT.log."""
    return f"{name}/{restart_count}.log"


KERNEL_HOSTNAME_MAX = 64


class HostnameError(Exception):
    """The pod's hostname cannot be the kernel's: its sandbox cannot be created."""


def pod_hostname(pod: Obj, cluster_domain: str = "cluster.local") -> str:
    """The name the pod's UTS namespace gets, as the kubelet's GetNodenameForKernel: its
    hostname, or with setHostnameAsFQDN and a subdomain its fully qualified name."""
    hostname, domain = etchosts.hostname_and_domain(pod, cluster_domain)
    if (pod.get("spec") or {}).get("setHostnameAsFQDN") is True and domain:
        return f"{hostname}.{domain}"
    return hostname


def check_hostname(hostname: str) -> None:
    """HostnameError with the kubelet's words when the kernel would refuse `hostname`."""
    if len(hostname) > KERNEL_HOSTNAME_MAX:
        raise HostnameError(f"failed to construct FQDN from pod hostname and cluster domain, FQDN {hostname} is "
                            f"too long ({KERNEL_HOSTNAME_MAX} characters is the max, {len(hostname)} characters "
                            "requested)")


DnsSettings = tuple[list[str], list[str], list[str]]  # nameservers, searches, options ("name" or "name:value")
MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def read_resolv_conf(text: str) -> DnsSettings:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return servers, searches, options


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def pod_dns(pod: Obj, cluster_dns: list[str], domain: str, host: DnsSettings) -> DnsSettings:
    """The pod's resolv.conf by `dnsPolicy`, with `dnsConfig` merged in as the kubelet
    does: ClusterFirst (the cluster DNS, search `ns.svc.<domain> svc.<domain>
    <domain>`, ndots:5; the host's settings when there is no cluster DNS or the pod
    is on the host network), Default (the host's), None (`dnsConfig` alone).
    `dnsConfig` nameservers and searches are appended, its options override by name.
    An empty result means the runtime's default, the host's resolv.conf."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    ns = (pod.get("metadata") or {}).get("namespace", "")
    cfg = spec.get("dnsConfig") or {}
    if policy == "None":
        base: DnsSettings = ([], [], [])
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns and (
            not spec.get("hostNetwork") or policy == "ClusterFirstWithHostNet"):
        base = (list(cluster_dns), [f"{ns}.svc.{domain}", f"svc.{domain}", domain], ["ndots:5"])
    elif not cfg:
        return [], [], []
    else:
        base = host
    servers = _unique(base[0] + list(cfg.get("nameservers") or []))[:MAX_NAMESERVERS]
    searches = _unique(base[1] + list(cfg.get("searches") or []))[:MAX_SEARCHES]
    options = {o.split(":", 1)[0]: o for o in base[2]}
    for o in cfg.get("options") or []:
        if o.get("name"):
            options[o["name"]] = f"{o['name']}:{o['value']}" if o.get("value") else o["name"]
    return servers, searches, list(options.values())


def sandbox_spec(pod: Obj, logs_root: str, attempt: int, dns: DnsSettings, seccomp_root: str = "",
                 cluster_domain: str = "cluster.local") -> SandboxSpec:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ports = []
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            if p.get("hostPort"):
                ports.append((p.get("protocol") or "TCP", int(p["containerPort"]), int(p["hostPort"]),
                              p.get("hostIP") or ""))
    psc = spec.get("securityContext") or {}
    servers, searches, options = dns
    return SandboxSpec(
        name=meta.get("name", ""), namespace=meta.get("namespace", ""), uid=meta.get("uid", ""), attempt=attempt,
        hostname=pod_hostname(pod, cluster_domain), log_directory=pod_log_directory(logs_root, pod), labels=pod_labels(pod),
        annotations={}, port_mappings=ports, host_network=bool(spec.get("hostNetwork")), dns_servers=servers,
        dns_searches=searches, dns_options=options, run_as_user=psc.get("runAsUser"),
        run_as_group=psc.get("runAsGroup"), supplemental_groups=supplemental_groups(psc),
        namespaces=security.namespaces(spec),
        sysctls={str(s.get("name")): str(s.get("value", "")) for s in psc.get("sysctls") or [] if s.get("name")},
        privileged=any(bool((c.get("securityContext") or {}).get("privileged"))
                       for key in ("initContainers", "containers", "ephemeralContainers")
                       for c in spec.get(key) or []),
        seccomp=_pod_seccomp(psc, seccomp_root))


def _pod_seccomp(psc: Obj, root: str) -> tuple[str, str]:
    try:
        return security.seccomp(psc.get("seccompProfile"), root)
    except security.SecurityContextError:
        return security.UNCONFINED, ""  # the containers refuse it (CreateContainerConfigError)


def supplemental_groups(pod_security_context: Obj) -> list[int]:
    """The extra groups every process of the pod runs with: its supplementalGroups and, as
    the kubelet adds it, its fsGroup (which owns the pod's volumes)."""
    groups = list(pod_security_context.get("supplementalGroups") or [])
    fs_group = pod_security_context.get("fsGroup")
    if fs_group is not None and fs_group not in groups:
        groups.append(fs_group)
    return groups


# -- environment -----------------------------------------------------------------------------

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
# The Service Kubernetes' clients find the API server by: its variables reach every pod.
MASTER_SERVICE = ("default", "kubernetes")
# Where an unset limit reads as the node's allocatable (the kubelet's downward API default).
_ALLOCATABLE_DEFAULTED = ("cpu", "memory", "ephemeral-storage")
# A projected `metadata.labels` file quotes values as Go's %q does.
_GO_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def is_env_var_name(name: str) -> bool:
    """Kubernetes' relaxed environment variable names (GA since 1.34): any printable
    ASCII character but '=', so `data-1`, `a.b` and `1st` pass."""
    return bool(name) and all(32 <= ord(ch) < 127 and ch != "=" for ch in name)


def _env_word(name: str) -> str:
    return name.upper().replace("-", "_")


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_env(service: Obj) -> list[tuple[str, str]]:
    """The Docker-links style variables the kubelet gives containers for a Service with a
    cluster IP (KUBERNETES_SERVICE_HOST, KUBERNETES_PORT_443_TCP, ...), in upstream's order."""
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port")]
    if not ip or ip == "None" or not ports:
        return []
    name = _env_word(str((service.get("metadata") or {}).get("name", "")))
    out = [(f"{name}_SERVICE_HOST", ip), (f"{name}_SERVICE_PORT", str(ports[0]["port"]))]
    for port in ports:
        if port.get("name"):
            out.append((f"{name}_SERVICE_PORT_{_env_word(str(port['name']))}", str(port["port"])))
    for i, port in enumerate(ports):
        proto = str(port.get("protocol") or "TCP")
        url = f"{proto.lower()}://{_host_port(ip, port['port'])}"
        if i == 0:
            out.append((f"{name}_PORT", url))  # Docker special-cases the first port
        prefix = f"{name}_PORT_{port['port']}_{proto.upper()}"
        out += [(prefix, url), (f"{prefix}_PROTO", proto.lower()), (f"{prefix}_PORT", str(port["port"])),
                (f"{prefix}_ADDR", ip)]
    return out


def service_link_env(services: Iterable[Obj], namespace: str, enable_links: bool = True) -> list[tuple[str, str]]:
    """The service variables of a pod in `namespace`: those of the `kubernetes` Service of
    `default` always, and with `enableServiceLinks` those of every Service of the pod's
    namespace that has a cluster IP (a namespace's own `kubernetes` wins over the API's)."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        ip = (svc.get("spec") or {}).get("clusterIP") or ""
        if not ip or ip == "None":
            continue
        name = str(meta.get("name", ""))
        if (meta.get("namespace"), name) == MASTER_SERVICE:
            chosen.setdefault(name, svc)
        elif meta.get("namespace") == namespace and enable_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(service_env(chosen[name]))
    return list(out.items())


def with_service_env(service_vars: list[tuple[str, str]], env: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The container's own variables, then the service variables it does not set itself
    (upstream's order)."""
    own = {k for k, _ in env}
    return env + [(k, v) for k, v in service_vars if k not in own]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are replaced, unknown ones are left
    as written, and $$ stands for a literal $."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)
    return _VAR_REF.sub(sub, text)


def with_runtime_ips(pod: Obj, pod_ips: list[str], host_ips: list[str]) -> Obj:
    """`pod` with the IPs its sandbox got and the node's, as the downward API reads them:
    a pod's first sync builds the environment before its status says its IP."""
    status = dict(pod.get("status") or {})
    if pod_ips:
        status["podIP"], status["podIPs"] = pod_ips[0], [{"ip": ip} for ip in pod_ips]
    if host_ips:
        status["hostIP"], status["hostIPs"] = host_ips[0], [{"ip": ip} for ip in host_ips]
    return {**pod, "status": status}


def field_ref_value(pod: Obj, path: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"), "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"), "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"), "status.podIP": status.get("podIP"),
        "status.hostIPs": ",".join(i.get("ip", "") for i in status.get("hostIPs") or []),
        "status.podIPs": ",".join(i.get("ip", "") for i in status.get("podIPs") or []),
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldPath: {path}")
    return str(simple[path] or "")


def format_map(values: dict[str, str]) -> str:
    """A downward API file of all labels or annotations: `key="value"` lines, sorted, the
    value quoted as Go's %q does."""
    def quote(v: str) -> str:
        return '"' + "".join(_GO_ESCAPES.get(ch, ch) for ch in str(v)) + '"'
    return "\n".join(f"{k}={quote(values[k])}" for k in sorted(values))


def resource_ref_value(container: Obj, ref: Obj, node_allocatable: dict[str, str]) -> str:
    """A resourceFieldRef as the kubelet renders it: the quantity divided by the divisor
    (default 1) rounded up, CPU counted in millicores first; an unset limit of CPU, memory
    or ephemeral storage reads as the node's allocatable."""
    resource = ref.get("resource") or ""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not (name in _ALLOCATABLE_DEFAULTED or name.startswith("hugepages-")):
        raise EnvError(f"unsupported container resource : {resource}")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None and kind == "limits" and name in _ALLOCATABLE_DEFAULTED:
        value = node_allocatable.get(name)
    q = parse_quantity(value if value is not None else "0") or Decimal(0)
    divisor = parse_quantity(ref.get("divisor") or "1") or Decimal(1)
    if name == "cpu":
        q, divisor = ((x * 1000).to_integral_value(rounding=ROUND_CEILING) for x in (q, divisor))
    else:
        q, divisor = (x.to_integral_value(rounding=ROUND_CEILING) for x in (q, divisor))
    return str(int((q / (divisor or Decimal(1))).to_integral_value(rounding=ROUND_CEILING)))


def container_env(pod: Obj, container: Obj, config_maps: dict[str, Obj], secrets: dict[str, Obj],
                  node_allocatable: dict[str, str] | None = None,
                  service_vars: list[tuple[str, str]] | None = None,
                  skipped: list[tuple[str, str, list[str]]] | None = None) -> list[tuple[str, str]]:
    """The container's environment as the kubelet builds it: envFrom sources, then env
    (later names override earlier ones) with $(VAR) expanded against what came before and
    the service variables, then the service variables the container does not set.
    `config_maps` and `secrets` hold the pod namespace's objects by name (secret data
    base64 as in the API). envFrom keys that are no valid variable name are left out and
    reported in `skipped` as (kind, object name, keys)."""
    out: dict[str, str] = {}
    services = dict(service_vars or [])

    def source(kind: str, name: str, optional: bool) -> Obj | None:
        obj = (config_maps if kind == "ConfigMap" else secrets).get(name)
        if obj is None and not optional:
            raise EnvError(f'{kind.lower()} "{name}" not found')
        return obj

    def data_of(kind: str, obj: Obj) -> dict[str, str]:
        if kind == "ConfigMap":
            return dict(obj.get("data") or {})
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}

    for item in container.get("envFrom") or ():
        prefix = item.get("prefix") or ""
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = item.get(key)
            if ref:
                obj = source(kind, ref.get("name", ""), bool(ref.get("optional")))
                invalid = []
                for k, v in data_of(kind, obj or {}).items():
                    if is_env_var_name(prefix + k):
                        out[prefix + k] = v
                    else:
                        invalid.append(prefix + k)
                if invalid and skipped is not None:
                    skipped.append((kind, ref.get("name", ""), sorted(invalid)))
    containers = {c.get("name"): c for key in ("initContainers", "containers", "ephemeralContainers")
                  for c in (pod.get("spec") or {}).get(key) or []}
    for var in container.get("env") or ():
        name = var.get("name", "")
        if "value" in var or not var.get("valueFrom"):
            out[name] = expand(str(var.get("value") or ""), {**services, **out})
            continue
        frm = var["valueFrom"]
        if frm.get("fieldRef"):
            out[name] = field_ref_value(pod, frm["fieldRef"].get("fieldPath", ""))
        elif frm.get("resourceFieldRef"):
            ref = frm["resourceFieldRef"]
            target = containers.get(ref.get("containerName")) if ref.get("containerName") else container
            if target is None:
                raise EnvError(f"container {ref.get('containerName')} not found")
            out[name] = resource_ref_value(target, ref, node_allocatable or {})
        else:
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = frm.get(key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                obj = source(kind, ref.get("name", ""), optional)
                data = data_of(kind, obj) if obj is not None else {}
                if ref.get("key") in data:
                    out[name] = data[ref["key"]]
                elif not optional:
                    raise EnvError(f"couldn't find key {ref.get('key')} in {kind} "
                                   f"{(pod.get('metadata') or {}).get('namespace')}/{ref.get('name')}")
    return with_service_env(list(service_vars or []), list(out.items()))


# -- resources and security --------------------------------------------------------------------


def _milli(value: Any) -> int:
    q = parse_quantity(value)
    return int((q * 1000).to_integral_value(rounding=ROUND_CEILING)) if q is not None else 0


def _bytes(value: Any) -> int:
    q = parse_quantity(value)
    return int(q) if q is not None else 0


def linux_resources(container: Obj) -> tuple[int, int, int, int]:
    """(cpu shares, cpu quota, cpu period, memory limit bytes) as the kubelet maps
    requests and limits onto cgroups: shares from the CPU request (or limit), a CFS
    quota from the CPU limit, the memory limit as is. Zero means unset."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    cpu_req = requests.get("cpu", limits.get("cpu"))
    shares = max(_milli(cpu_req) * SHARES_PER_CPU // 1000, MIN_SHARES) if cpu_req is not None else MIN_SHARES
    quota = period = 0
    if "cpu" in limits:
        period = CPU_PERIOD
        quota = max(_milli(limits["cpu"]) * CPU_PERIOD // 1000, 1000)
    memory = _bytes(limits["memory"]) if "memory" in limits else 0
    return shares, quota, period, memory


def is_ephemeral(pod: Obj, name: str) -> bool:
    """Whether `name` is one of the pod's ephemeral containers."""
    return any(c.get("name") == name for c in (pod.get("spec") or {}).get("ephemeralContainers") or ())


# CRI's MountPropagation values by the volumeMount's mountPropagation.
_PROPAGATION = {"HostToContainer": 1, "Bidirectional": 2}


def mount_propagation(container: Obj) -> dict[str, int]:
    """The container's mounts that see (HostToContainer, rslave) or also share
    (Bidirectional, rshared) mounts made under them, by mount path."""
    return {str(m.get("mountPath")): _PROPAGATION[m["mountPropagation"]]
            for m in container.get("volumeMounts") or [] if m.get("mountPropagation") in _PROPAGATION}


def container_spec(pod: Obj, container: Obj, env: list[tuple[str, str]], restart_count: int,
                   spec_hash: str, init: bool = False,
                   mounts: list[tuple[str, str, bool]] | None = None, seccomp_root: str = "") -> ContainerSpec:
    """Raises security.SecurityContextError for a Localhost seccomp profile outside `seccomp_root`."""
    envd = dict(env)
    sc = security.effective(pod, container)
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    shares, quota, period, memory = linux_resources(container)
    labels = {**pod_labels(pod), CONTAINER_NAME: container.get("name", "")}
    annotations = {RESTART_COUNT: str(restart_count), SPEC_HASH: spec_hash}
    if init:
        annotations[INIT] = "true"
    if is_ephemeral(pod, container.get("name", "")):
        annotations[EPHEMERAL] = "true"
    return ContainerSpec(
        name=container.get("name", ""), image=container.get("image", ""),
        command=[expand(str(c), envd) for c in container.get("command") or []],
        args=[expand(str(a), envd) for a in container.get("args") or []],
        env=env, working_dir=container.get("workingDir") or "", tty=bool(container.get("tty")),
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        cpu_shares=shares, cpu_quota=quota, cpu_period=period, memory_limit=memory,
        run_as_user=sc.get("runAsUser", psc.get("runAsUser")), run_as_group=sc.get("runAsGroup", psc.get("runAsGroup")),
        supplemental_groups=supplemental_groups(psc), readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")), privileged=bool(sc.get("privileged")),
        add_capabilities=list(caps.get("add") or []), drop_capabilities=list(caps.get("drop") or []),
        labels=labels, annotations=annotations, log_path=container_log_path(container.get("name", ""), restart_count),
        mounts=list(mounts or []), propagation=mount_propagation(container),
        no_new_privs=security.no_new_privs(sc), proc_unmasked=security.proc_unmasked(sc),
        seccomp=security.seccomp(sc.get("seccompProfile"), seccomp_root),
        namespaces=security.namespaces(pod.get("spec") or {}))
