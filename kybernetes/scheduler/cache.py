"""The scheduler's picture of the cluster: parsed pods (`PodInfo`), per-node usage
(`NodeInfo`) and the cluster cache that keeps both up to date incrementally from node
and pod events, including pods the scheduler has assumed onto a node before the API
server confirmed the binding. Pure data structures, no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.interning import intern_strings
from kybernetes.api.pods import (
    NodeTerm,
    RequiredNodeAffinity,
    Taint,
    Toleration,
    pod_is_terminal,
    pod_key,
    preferred_node_terms,
)
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.resize import accounted_spec
from kybernetes.api.selectors import LabelSelector, nothing, selector_from_label_selector_object

Obj = dict[str, Any]

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL = "ephemeral-storage"
PODS = "pods"
# What scoring assumes for a container that requests nothing, so that best-effort pods
# still spread instead of piling onto one node (the kube-scheduler's non-zero defaults).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_SPREAD_OWNER_KINDS = {"ReplicaSet", "StatefulSet", "ReplicationController"}


# -- quantities ---------------------------------------------------------------------------

def parse_milli(value: Any) -> int:
    """A quantity in thousandths, rounded up ("100m" → 100, "2" → 2000); 0 if unparseable."""
    q = parse_quantity(value)
    if q is None:
        return 0
    return math.ceil(q * 1000)


def parse_int_quantity(value: Any) -> int:
    """A quantity as a whole number, rounded up ("1Gi" → 1073741824, "500m" → 1)."""
    q = parse_quantity(value)
    if q is None:
        return 0
    return math.ceil(q)


def _amount(name: str, value: Any) -> int:
    return parse_milli(value) if name == CPU else parse_int_quantity(value)


# -- resource requests --------------------------------------------------------------------

def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    out: dict[str, int] = {}
    for name, value in requests.items():
        out[name] = _amount(name, value)
    # The API server defaults requests from limits; repeated here so a pod that skipped
    # defaulting is still accounted for the same way.
    for name, value in limits.items():
        if name not in requests:
            out[name] = _amount(name, value)
    return out


def _nonzero(req: Mapping[str, int], explicit: Mapping[str, Any]) -> tuple[int, int]:
    cpu = req.get(CPU, 0) if CPU in explicit else DEFAULT_MILLI_CPU
    mem = req.get(MEMORY, 0) if MEMORY in explicit else DEFAULT_MEMORY
    return cpu, mem


def _add_into(total: dict[str, int], req: Mapping[str, int]) -> None:
    for name, value in req.items():
        total[name] = total.get(name, 0) + value


def _max_into(total: dict[str, int], req: Mapping[str, int]) -> None:
    for name, value in req.items():
        if value > total.get(name, 0):
            total[name] = value


def _explicit_requests(container: Mapping[str, Any]) -> Mapping[str, Any]:
    resources = container.get("resources") or {}
    return {**(resources.get("limits") or {}), **(resources.get("requests") or {})}


def pod_requests(spec: Mapping[str, Any]) -> tuple[dict[str, int], int, int]:
    """The pod's effective requests (cpu in millicores), and its non-zero cpu/memory for
    scoring. Regular containers add up; an init container runs alone, so the pod needs
    the larger of the sum and the biggest init container, where restartable (sidecar)
    init containers keep running beside everything started after them. Overhead adds on;
    pod-level `spec.resources` wins when given."""
    total: dict[str, int] = {}
    nz_cpu = nz_mem = 0
    for c in spec.get("containers") or ():
        req = _container_requests(c)
        _add_into(total, req)
        cpu, mem = _nonzero(req, _explicit_requests(c))
        nz_cpu += cpu
        nz_mem += mem
    init_peak: dict[str, int] = {}
    sidecars: dict[str, int] = {}
    nz_init_cpu = nz_init_mem = nz_side_cpu = nz_side_mem = 0
    for c in spec.get("initContainers") or ():
        req = _container_requests(c)
        cpu, mem = _nonzero(req, _explicit_requests(c))
        if c.get("restartPolicy") == "Always":
            _add_into(sidecars, req)
            nz_side_cpu += cpu
            nz_side_mem += mem
            peak = dict(sidecars)
            p_cpu, p_mem = nz_side_cpu, nz_side_mem
        else:
            peak = dict(sidecars)
            _add_into(peak, req)
            p_cpu, p_mem = nz_side_cpu + cpu, nz_side_mem + mem
        _max_into(init_peak, peak)
        nz_init_cpu = max(nz_init_cpu, p_cpu)
        nz_init_mem = max(nz_init_mem, p_mem)
    _add_into(total, sidecars)
    _max_into(total, init_peak)
    nz_cpu = max(nz_cpu + nz_side_cpu, nz_init_cpu)
    nz_mem = max(nz_mem + nz_side_mem, nz_init_mem)
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    for name, value in pod_level.items():
        total[name] = _amount(name, value)
    if CPU in pod_level:
        nz_cpu = total[CPU]
    if MEMORY in pod_level:
        nz_mem = total[MEMORY]
    for name, value in (spec.get("overhead") or {}).items():
        amount = _amount(name, value)
        total[name] = total.get(name, 0) + amount
        if name == CPU:
            nz_cpu += amount
        elif name == MEMORY:
            nz_mem += amount
    return {k: v for k, v in total.items() if v}, nz_cpu, nz_mem


# -- affinity terms -----------------------------------------------------------------------

def _selector(obj: Mapping[str, Any] | None) -> LabelSelector:
    try:
        return selector_from_label_selector_object(obj)
    except ApiError:
        return nothing()


@dataclass(frozen=True)
class PodAffinityTerm:
    """One required (anti-)affinity term, resolved against the namespace of the pod that
    declares it. `namespaces` None means every namespace."""

    selector: LabelSelector
    namespaces: frozenset[str] | None
    namespace_selector: LabelSelector | None
    topology_key: str

    def matches(self, pod: PodInfo) -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            if self.namespace_selector is None:
                return False
            # Namespace labels are not watched; every namespace carries its own name as
            # a label, which is what namespace selectors overwhelmingly select on.
            if not self.namespace_selector.matches({NAMESPACE_NAME_LABEL: pod.namespace}):
                return False
        return self.selector.matches(pod.labels)


def parse_affinity_term(term: Mapping[str, Any], own_namespace: str,
                        own_labels: Mapping[str, str]) -> PodAffinityTerm:
    selector = _selector(term.get("labelSelector"))
    extra = []
    for key in term.get("matchLabelKeys") or ():
        if key in own_labels:
            extra.append({"key": key, "operator": "In", "values": [own_labels[key]]})
    for key in term.get("mismatchLabelKeys") or ():
        if key in own_labels:
            extra.append({"key": key, "operator": "NotIn", "values": [own_labels[key]]})
    if extra and not selector.nothing:
        merged = dict(term.get("labelSelector") or {})
        merged["matchExpressions"] = list(merged.get("matchExpressions") or []) + extra
        selector = _selector(merged)
    names = term.get("namespaces") or []
    ns_sel_obj = term.get("namespaceSelector")
    if ns_sel_obj is not None and not ns_sel_obj.get("matchLabels") and not ns_sel_obj.get("matchExpressions"):
        namespaces: frozenset[str] | None = None
        ns_sel = None
    elif ns_sel_obj is not None:
        namespaces = frozenset(names)
        ns_sel = _selector(ns_sel_obj)
    else:
        namespaces = frozenset(names) if names else frozenset([own_namespace])
        ns_sel = None
    return PodAffinityTerm(selector, namespaces, ns_sel, term.get("topologyKey") or "")


WeightedTerm = tuple[int, PodAffinityTerm]


def _weighted_terms(section: Mapping[str, Any] | None, own_namespace: str,
                    own_labels: Mapping[str, str]) -> tuple[WeightedTerm, ...]:
    """The preferred terms of a podAffinity or podAntiAffinity section with their weights."""
    if not section:
        return ()
    out = []
    for wt in section.get("preferredDuringSchedulingIgnoredDuringExecution") or ():
        term = wt.get("podAffinityTerm")
        weight = int(wt.get("weight") or 0)
        if term is not None and weight:
            out.append((weight, parse_affinity_term(term, own_namespace, own_labels)))
    return tuple(out)


# -- topology spread ----------------------------------------------------------------------

@dataclass(frozen=True)
class SpreadConstraint:
    """A topology spread constraint. `owner` set marks a system default constraint that
    counts the pods of the same controller, standing in for the controller's selector."""

    topology_key: str
    max_skew: int
    hard: bool
    selector: LabelSelector | None
    owner: str = ""
    min_domains: int = 1
    honor_affinity: bool = True
    honor_taints: bool = False

    def counts(self, pod: PodInfo, namespace: str) -> bool:
        if pod.terminating or pod.namespace != namespace:
            return False
        if self.owner:
            return pod.owner_uid == self.owner
        return self.selector is not None and self.selector.matches(pod.labels)


def _spread_constraints(spec: Mapping[str, Any], labels: Mapping[str, str], owner_uid: str,
                        owner_kind: str) -> tuple[SpreadConstraint, ...]:
    out = []
    for c in spec.get("topologySpreadConstraints") or ():
        sel_obj = c.get("labelSelector")
        extra = [{"key": k, "operator": "In", "values": [labels[k]]}
                 for k in c.get("matchLabelKeys") or () if k in labels]
        if extra and sel_obj is not None:
            sel_obj = {**sel_obj, "matchExpressions": list(sel_obj.get("matchExpressions") or []) + extra}
        out.append(SpreadConstraint(
            topology_key=c.get("topologyKey") or "",
            max_skew=int(c.get("maxSkew") or 1),
            hard=(c.get("whenUnsatisfiable") or "DoNotSchedule") == "DoNotSchedule",
            selector=_selector(sel_obj) if sel_obj is not None else None,
            min_domains=int(c.get("minDomains") or 1),
            honor_affinity=(c.get("nodeAffinityPolicy") or "Honor") == "Honor",
            honor_taints=(c.get("nodeTaintsPolicy") or "Ignore") == "Honor",
        ))
    if not out and owner_uid and owner_kind in _SPREAD_OWNER_KINDS:
        out = [SpreadConstraint(HOSTNAME_LABEL, 3, False, None, owner_uid),
               SpreadConstraint(ZONE_LABEL, 5, False, None, owner_uid)]
    return tuple(out)


# -- claims -------------------------------------------------------------------------------

def pod_claims(pod_name: str, spec: Mapping[str, Any]) -> tuple[tuple[str, bool], ...]:
    """(claim name, ephemeral) for each volume backed by a PersistentVolumeClaim: a
    `persistentVolumeClaim` volume names its claim, a generic ephemeral volume's claim is
    `<pod>-<volume>`. Empty for the common pod, at the cost of one lookup."""
    volumes = spec.get("volumes")
    if not volumes:
        return ()
    out = []
    for v in volumes:
        ref = v.get("persistentVolumeClaim")
        if ref is not None:
            out.append((ref.get("claimName") or "", False))
        elif v.get("ephemeral") is not None:
            out.append((f"{pod_name}-{v.get('name') or ''}", True))
    return tuple(out)


def _claim_volumes_view(volumes: Any) -> list[Obj]:
    out: list[Obj] = []
    for v in volumes or ():
        ref = v.get("persistentVolumeClaim")
        if ref is not None:
            out.append({"name": v.get("name"), "persistentVolumeClaim": {"claimName": ref.get("claimName")}})
        elif v.get("ephemeral") is not None:
            out.append({"name": v.get("name"), "ephemeral": {}})
    return out


# -- PodInfo ------------------------------------------------------------------------------

def normalize_image(name: str) -> str:
    """An image reference in the fully qualified form nodes report ("nginx" →
    "docker.io/library/nginx:latest"), so the pod's and the node's spelling compare."""
    if not name:
        return name
    ref = name
    first, sep, rest = ref.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        ref = "docker.io/" + ref if sep else "docker.io/library/" + ref
    elif first == "docker.io" and "/" not in rest:
        ref = "docker.io/library/" + rest
    last = ref.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        ref += ":latest"
    return ref


class PodInfo:
    """A pod parsed once into what filters and scores read."""

    __slots__ = (
        "pod", "key", "namespace", "name", "uid", "labels", "node_name", "priority", "terminating",
        "requests", "cpu", "mem", "eph", "scalar", "nz_cpu", "nz_mem", "host_ports", "tolerations",
        "node_affinity", "preferred_terms",
        "affinity_terms", "anti_terms", "pref_affinity", "pref_anti", "spread", "owner_uid", "images",
        "num_containers",
        "preemption_never", "spec", "claims",
    )

    def __init__(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.spec = spec
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or ""
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.node_name: str = spec.get("nodeName") or ""
        self.priority: int = int(spec.get("priority") or 0)
        self.terminating = bool(meta.get("deletionTimestamp"))
        self.preemption_never = spec.get("preemptionPolicy") == "Never"
        # A pod being resized holds the larger of what it asks and what its node gave it.
        req, self.nz_cpu, self.nz_mem = pod_requests(accounted_spec(pod))
        self.requests = req
        self.cpu = req.get(CPU, 0)
        self.mem = req.get(MEMORY, 0)
        self.eph = req.get(EPHEMERAL, 0)
        self.scalar = {k: v for k, v in req.items() if k not in (CPU, MEMORY, EPHEMERAL, PODS)}
        ports = []
        for c in spec.get("containers") or ():
            for p in c.get("ports") or ():
                hp = p.get("hostPort") or 0
                if hp > 0:
                    ports.append((p.get("protocol") or "TCP", int(hp), p.get("hostIP") or "0.0.0.0"))
        self.host_ports: tuple[tuple[str, int, str], ...] = tuple(ports)
        self.tolerations: tuple[Toleration, ...] = tuple(Toleration.of(t) for t in spec.get("tolerations") or ())
        self.node_affinity = RequiredNodeAffinity.of(spec)
        self.preferred_terms: tuple[tuple[int, NodeTerm | None], ...] = preferred_node_terms(spec)
        affinity = spec.get("affinity") or {}
        pod_aff = (affinity.get("podAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        anti = (affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        self.affinity_terms = tuple(parse_affinity_term(t, self.namespace, self.labels) for t in pod_aff or ())
        self.anti_terms = tuple(parse_affinity_term(t, self.namespace, self.labels) for t in anti or ())
        if affinity:
            self.pref_affinity = _weighted_terms(affinity.get("podAffinity"), self.namespace, self.labels)
            self.pref_anti = _weighted_terms(affinity.get("podAntiAffinity"), self.namespace, self.labels)
        else:
            self.pref_affinity = self.pref_anti = ()
        owner_uid = owner_kind = ""
        for ref in meta.get("ownerReferences") or ():
            if ref.get("controller"):
                owner_uid, owner_kind = ref.get("uid") or "", ref.get("kind") or ""
                break
        self.owner_uid = owner_uid
        self.spread = _spread_constraints(spec, self.labels, owner_uid, owner_kind)
        containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())
        self.images = tuple(normalize_image(c.get("image") or "") for c in containers)
        self.num_containers = len(containers)
        self.claims = pod_claims(self.name, spec) if "volumes" in spec else ()

    @property
    def scores_others(self) -> bool:
        """Whether this pod, once on a node, changes the inter-pod affinity score of pods
        that come after it (required affinity terms count with the hard-affinity weight;
        required anti-affinity only filters)."""
        return bool(self.affinity_terms or self.pref_affinity or self.pref_anti)

    def matches_node_affinity(self, name: str, labels: Mapping[str, str]) -> bool:
        """nodeSelector and required node affinity together (both must hold)."""
        return self.node_affinity.matches(name, labels)


# What the scheduler reads of a pod (PodInfo, the queue, bindings, events and the
# PodScheduled condition); `scheduling_view` keeps only these.
_VIEW_META = ("name", "namespace", "uid", "resourceVersion", "labels", "ownerReferences", "deletionTimestamp",
              "creationTimestamp")
_VIEW_SPEC = ("nodeName", "schedulerName", "schedulingGates", "priority", "priorityClassName", "preemptionPolicy",
              "nodeSelector", "affinity", "tolerations", "topologySpreadConstraints", "overhead", "resources",
              "hostNetwork", "runtimeClassName")
_VIEW_CONTAINER = ("name", "image", "resources", "ports", "restartPolicy")


def _pick(source: Mapping[str, Any], keys: tuple[str, ...]) -> Obj:
    return {k: source[k] for k in keys if k in source}


def scheduling_view(pod: Obj) -> Obj:
    """The part of a pod the scheduler reads, for its informer to keep: a bound pod's
    status, container commands, volumes and the like are most of a pod's memory, and
    the scheduler holds every pod of the cluster."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    view_spec = _pick(spec, _VIEW_SPEC)
    for key in ("containers", "initContainers"):
        if key in spec:
            view_spec[key] = [_pick(c, _VIEW_CONTAINER) for c in spec[key] or ()]
    if spec.get("volumes"):
        # Only the claim-backed volumes matter here (volume binding), by name.
        claims = _claim_volumes_view(spec["volumes"])
        if claims:
            view_spec["volumes"] = claims
    view_status = _pick(status, ("phase", "nominatedNodeName", "startTime"))
    if not spec.get("nodeName") and "conditions" in status:
        # Only a pod waiting for a node gets its PodScheduled condition written.
        view_status["conditions"] = status["conditions"]
    view: Obj = {"metadata": _pick(pod.get("metadata") or {}, _VIEW_META), "spec": view_spec, "status": view_status}
    for key in ("apiVersion", "kind"):
        if key in pod:
            view[key] = pod[key]
    return intern_strings(view)


def scheduling_node_view(node: Obj) -> Obj:
    """The part of a node the scheduler reads (labels, taints, unschedulable, resources,
    images): conditions, addresses and node info change with every status report and
    are not needed here."""
    meta = node.get("metadata") or {}
    view: Obj = {"metadata": _pick(meta, ("name", "uid", "resourceVersion", "labels")),
                 "spec": _pick(node.get("spec") or {}, ("taints", "unschedulable")),
                 "status": _pick(node.get("status") or {}, ("allocatable", "capacity", "images"))}
    return intern_strings(view)


def pod_info(pod: Obj | PodInfo) -> PodInfo:
    return pod if isinstance(pod, PodInfo) else PodInfo(pod)


# -- NodeInfo -----------------------------------------------------------------------------

class NodeInfo:
    """One node: its allocatable resources, taints and labels, and the sum of what the pods
    bound (or assumed) to it request. Updated by adding and removing pods, never by
    recounting."""

    __slots__ = (
        "name", "node", "labels", "unschedulable", "hard_taints", "prefer_taints",
        "alloc_cpu", "alloc_mem", "alloc_eph", "alloc_pods", "alloc_scalar",
        "req_cpu", "req_mem", "req_eph", "req_scalar", "nz_cpu", "nz_mem",
        "pods", "ports", "owners", "images", "anti_pods", "position",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.unschedulable = False
        self.hard_taints: tuple[Taint, ...] = ()
        self.prefer_taints: tuple[Taint, ...] = ()
        self.alloc_cpu = self.alloc_mem = self.alloc_eph = self.alloc_pods = 0
        self.alloc_scalar: dict[str, int] = {}
        self.req_cpu = self.req_mem = self.req_eph = 0
        self.req_scalar: dict[str, int] = {}
        self.nz_cpu = self.nz_mem = 0
        self.pods: dict[str, PodInfo] = {}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        self.owners: dict[str, int] = {}
        self.images: dict[str, int] = {}
        self.anti_pods = 0
        self.position = -1

    def set_node(self, node: Obj) -> None:
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.node = node
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        taints = [Taint.of(t) for t in spec.get("taints") or ()]
        self.hard_taints = tuple(t for t in taints if t[2] in ("NoSchedule", "NoExecute"))
        self.prefer_taints = tuple(t for t in taints if t[2] == "PreferNoSchedule")
        alloc = status.get("allocatable") or status.get("capacity") or {}
        self.alloc_cpu = parse_milli(alloc.get(CPU, 0))
        self.alloc_mem = parse_int_quantity(alloc.get(MEMORY, 0))
        self.alloc_eph = parse_int_quantity(alloc.get(EPHEMERAL, 0))
        # A node that does not say how many pods it takes is treated like a kubelet default.
        self.alloc_pods = parse_int_quantity(alloc[PODS]) if PODS in alloc else 110
        self.alloc_scalar = {k: _amount(k, v) for k, v in alloc.items() if k not in (CPU, MEMORY, EPHEMERAL, PODS)}
        images: dict[str, int] = {}
        for image in status.get("images") or ():
            size = int(image.get("sizeBytes") or 0)
            for n in image.get("names") or ():
                images[normalize_image(n)] = size
        self.images = images

    def add_pod(self, p: PodInfo) -> None:
        self.pods[p.key] = p
        self.req_cpu += p.cpu
        self.req_mem += p.mem
        self.req_eph += p.eph
        for k, v in p.scalar.items():
            self.req_scalar[k] = self.req_scalar.get(k, 0) + v
        self.nz_cpu += p.nz_cpu
        self.nz_mem += p.nz_mem
        for proto, port, ip in p.host_ports:
            ips = self.ports.setdefault((proto, port), {})
            ips[ip] = ips.get(ip, 0) + 1
        if p.owner_uid:
            self.owners[p.owner_uid] = self.owners.get(p.owner_uid, 0) + 1
        if p.anti_terms:
            self.anti_pods += 1

    def remove_pod(self, key: str) -> PodInfo | None:
        p = self.pods.pop(key, None)
        if p is None:
            return None
        self.req_cpu -= p.cpu
        self.req_mem -= p.mem
        self.req_eph -= p.eph
        for k, v in p.scalar.items():
            left = self.req_scalar.get(k, 0) - v
            if left:
                self.req_scalar[k] = left
            else:
                self.req_scalar.pop(k, None)
        self.nz_cpu -= p.nz_cpu
        self.nz_mem -= p.nz_mem
        for proto, port, ip in p.host_ports:
            ips = self.ports.get((proto, port))
            if ips is not None:
                ips[ip] -= 1
                if ips[ip] <= 0:
                    del ips[ip]
                if not ips:
                    del self.ports[(proto, port)]
        if p.owner_uid:
            left = self.owners.get(p.owner_uid, 0) - 1
            if left > 0:
                self.owners[p.owner_uid] = left
            else:
                self.owners.pop(p.owner_uid, None)
        if p.anti_terms:
            self.anti_pods -= 1
        return p

    def without(self, keys: Iterable[str]) -> NodeInfo:
        """A copy with some pods taken off, to ask "would it fit if these were gone?"."""
        clone = NodeInfo(self.name)
        for attr in ("node", "labels", "unschedulable", "hard_taints", "prefer_taints", "alloc_cpu",
                     "alloc_mem", "alloc_eph", "alloc_pods", "alloc_scalar", "images", "position"):
            setattr(clone, attr, getattr(self, attr))
        gone = set(keys)
        for key, p in self.pods.items():
            if key not in gone:
                clone.add_pod(p)
        return clone


# -- the cache ----------------------------------------------------------------------------

def _same_but_node_name(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """`after` is `before` with spec.nodeName set (what a binding changes)."""
    if len(after) != len(before) + ("nodeName" not in before):
        return False
    return all(k == "nodeName" or before.get(k, _MISSING) == v for k, v in after.items())


_MISSING = object()


class ClusterCache:
    """Every node and every bound or assumed pod, kept incrementally. `order` lists the
    names of nodes that exist (pods may reference a node not seen yet, or gone), and
    `next_start` rotates where the next scheduling cycle starts looking."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.order: list[str] = []
        self.pods: dict[str, PodInfo] = {}
        self.assumed: set[str] = set()
        self.image_nodes: dict[str, int] = {}
        self.anti_pods: dict[str, PodInfo] = {}
        # Pods whose (anti-)affinity terms score others (none: that score is skipped).
        self.affinity_pods: dict[str, PodInfo] = {}
        self.owner_zone: dict[str, dict[str, int]] = {}
        self.next_start = 0
        # How many nodes have PreferNoSchedule taints (none: that score is skipped).
        self.prefer_tainted = 0
        # Pods waiting for a node they preempted on (status.nominatedNodeName): node -> key -> pod.
        self.nominated: dict[str, dict[str, PodInfo]] = {}
        self.nominated_node: dict[str, str] = {}

    # nodes

    def set_node(self, node: Obj) -> NodeInfo:
        name = (node.get("metadata") or {}).get("name") or ""
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        old_zone = ni.labels.get(ZONE_LABEL) if ni.node is not None else None
        had_prefer = ni.node is not None and bool(ni.prefer_taints)
        self._count_images(ni, -1)
        ni.set_node(node)
        self._count_images(ni, 1)
        self.prefer_tainted += bool(ni.prefer_taints) - had_prefer
        new_zone = ni.labels.get(ZONE_LABEL)
        if old_zone != new_zone:
            for p in ni.pods.values():
                self._count_zone(p, old_zone, -1)
                self._count_zone(p, new_zone, 1)
        if ni.position < 0:
            ni.position = len(self.order)
            self.order.append(name)
        return ni

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        self._count_images(ni, -1)
        self._drop_position(ni)
        if ni.prefer_taints:
            self.prefer_tainted -= 1
            ni.prefer_taints = ()
        zone = ni.labels.get(ZONE_LABEL)
        for p in ni.pods.values():
            self._count_zone(p, zone, -1)
        ni.node = None
        ni.labels = {}
        ni.images = {}
        if not ni.pods:
            del self.nodes[name]

    def _drop_position(self, ni: NodeInfo) -> None:
        if ni.position < 0:
            return
        last = self.order.pop()
        if last != ni.name:
            self.order[ni.position] = last
            self.nodes[last].position = ni.position
        ni.position = -1

    def _count_images(self, ni: NodeInfo, delta: int) -> None:
        for image in ni.images:
            left = self.image_nodes.get(image, 0) + delta
            if left > 0:
                self.image_nodes[image] = left
            else:
                self.image_nodes.pop(image, None)

    def _count_zone(self, p: PodInfo, zone: str | None, delta: int) -> None:
        if zone is None or not p.owner_uid:
            return
        zones = self.owner_zone.setdefault(p.owner_uid, {})
        left = zones.get(zone, 0) + delta
        if left > 0:
            zones[zone] = left
        else:
            zones.pop(zone, None)
            if not zones:
                del self.owner_zone[p.owner_uid]

    def node_list(self) -> list[NodeInfo]:
        nodes = self.nodes
        return [nodes[n] for n in self.order]

    # nominations

    def nominate(self, p: PodInfo, node: str) -> None:
        """`p` waits for room on `node`: lower-priority pods must leave that room to it."""
        self.unnominate(p.key)
        if node:
            self.nominated.setdefault(node, {})[p.key] = p
            self.nominated_node[p.key] = node

    def unnominate(self, key: str) -> None:
        node = self.nominated_node.pop(key, None)
        if node is None:
            return
        pods = self.nominated.get(node)
        if pods is not None:
            pods.pop(key, None)
            if not pods:
                del self.nominated[node]

    # pods

    def add_pod(self, pod: Obj | PodInfo) -> None:
        """A pod bound to a node was added or changed (confirms an assumption too). Terminal
        or unbound pods hold no resources and leave the cache."""
        p = pod_info(pod)
        if not p.node_name or pod_is_terminal(p.pod):
            self.remove_pod(p.key)
            return
        old = self.pods.get(p.key)
        if old is not None:
            self._unlink(old)
        self.assumed.discard(p.key)
        self._link(p)

    def update_pod(self, old: Obj | None, new: Obj) -> None:
        """Like add_pod, but skips the reparse when nothing the scheduler reads changed
        (pod status churn would otherwise cost a parse per event)."""
        key = pod_key(new)
        have = self.pods.get(key)
        if (have is not None and key not in self.assumed and not pod_is_terminal(new)
                and have.spec == new.get("spec")
                and have.labels == ((new.get("metadata") or {}).get("labels") or {})
                and have.terminating == bool((new.get("metadata") or {}).get("deletionTimestamp"))
                and have.uid == (new.get("metadata") or {}).get("uid", have.uid)):
            have.pod = new
            return
        self.add_pod(new)

    def confirm(self, pod: Obj) -> None:
        """A pod just seen bound: when it is the pod this cache assumed onto that node,
        unchanged but for `nodeName`, keep the parsed one (a parse per binding saved);
        otherwise count it as add_pod does."""
        key = pod_key(pod)
        have = self.pods.get(key)
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        if (have is not None and key in self.assumed and have.node_name == spec.get("nodeName")
                and not pod_is_terminal(pod) and have.uid == meta.get("uid", have.uid)
                and have.labels == (meta.get("labels") or {}) and not meta.get("deletionTimestamp")
                and _same_but_node_name(have.spec, spec)):
            have.pod = pod
            have.spec = spec
            self.assumed.discard(key)
            return
        self.add_pod(pod)

    def remove_pod(self, key: str) -> None:
        old = self.pods.get(key)
        if old is not None:
            self._unlink(old)
        self.assumed.discard(key)

    def assume(self, pod: Obj | PodInfo, node_name: str) -> PodInfo:
        """Count the pod on `node_name` now, before the binding is confirmed, so the next
        pod already sees the usage."""
        p = pod_info(pod)
        p.node_name = node_name
        old = self.pods.get(p.key)
        if old is not None:
            self._unlink(old)
        self._link(p)
        self.assumed.add(p.key)
        return p

    def forget(self, key: str) -> None:
        """Undo an assumption whose binding failed."""
        if key in self.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def _link(self, p: PodInfo) -> None:
        ni = self.nodes.get(p.node_name)
        if ni is None:
            ni = self.nodes[p.node_name] = NodeInfo(p.node_name)
        ni.add_pod(p)
        self.pods[p.key] = p
        if p.anti_terms:
            self.anti_pods[p.key] = p
        if p.scores_others:
            self.affinity_pods[p.key] = p
        if ni.node is not None:
            self._count_zone(p, ni.labels.get(ZONE_LABEL), 1)

    def _unlink(self, p: PodInfo) -> None:
        self.pods.pop(p.key, None)
        self.anti_pods.pop(p.key, None)
        self.affinity_pods.pop(p.key, None)
        ni = self.nodes.get(p.node_name)
        if ni is None:
            return
        ni.remove_pod(p.key)
        if ni.node is not None:
            self._count_zone(p, ni.labels.get(ZONE_LABEL), -1)
        elif not ni.pods:
            del self.nodes[p.node_name]

