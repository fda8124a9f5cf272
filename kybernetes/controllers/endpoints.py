"""The Endpoints controller: for every Service with a selector, an Endpoints object of the
same name listing the matching pods' addresses (ready and not ready) with the Service's
ports resolved per pod; Endpoints of deleted Services are deleted.

The pod/port helpers here (readiness, which pods belong in endpoints, targetPort
resolution) are shared with the EndpointSlice controller.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.labels import SKIP_MIRROR_LABEL
from kybernetes.api.pods import pod_is_ready, pod_is_terminal, pod_is_terminating
from kybernetes.api.selectors import selector_from_set
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import ENDPOINTS, PODS, SERVICES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.podutil import format_time, node_index, parse_time

log = logging.getLogger(__name__)

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
# An Endpoints object holds at most this many addresses; beyond it Kubernetes truncates
# and marks the object, pointing consumers at EndpointSlices.
MAX_ENDPOINTS_CAPACITY = 1000


# -- shared pod and service helpers -------------------------------------------------------

def service_selector(svc: Obj) -> dict[str, str] | None:
    """The Service's selector, or None when this controller must leave the Service alone
    (no selector, or an ExternalName Service). An empty selector counts as none so that a
    Service never silently selects every pod of its namespace."""
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return None
    sel = spec.get("selector")
    return dict(sel) if sel else None


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def service_ip_families(svc: Obj) -> list[str]:
    fams = [f for f in (svc.get("spec") or {}).get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    return fams or ["IPv4"]


def pod_ip_for_family(pod: Obj, family: str) -> str | None:
    for ip in pod_ips(pod):
        if ip_family(ip) == family:
            return ip
    return None


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Terminal pods never count; a pod without an IP cannot be reached yet; a pod being
    deleted counts only where the caller wants terminating endpoints."""
    if pod_is_terminal(pod):
        return False
    if not pod_ips(pod):
        return False
    if not include_terminating and pod_is_terminating(pod):
        return False
    return True


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The container port a Service port's targetPort means for this pod: a number as is,
    a name looked up among the pod's containers (and restartable init containers) with the
    same protocol. None when a named port is not found."""
    target = svc_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = svc_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                return cport.get("containerPort")
    return None


def resolved_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The Service's ports as this pod serves them, in Endpoints/EndpointSlice port shape
    (name, port, protocol, appProtocol). Ports the pod cannot resolve are left out."""
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        num = find_port(pod, sp)
        if num is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def ports_key(ports: Iterable[Obj]) -> tuple[tuple[str, int, str, str], ...]:
    """An order-independent identity for a port list, used to group pods that serve the
    same resolved ports."""
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports))


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == (svc.get("metadata") or {}).get("name") \
        and (pod.get("metadata") or {}).get("namespace") == (svc.get("metadata") or {}).get("namespace")


def pods_selected(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    sel = service_selector(svc)
    if sel is None:
        return []
    selector = selector_from_set(sel)
    ns = (svc.get("metadata") or {}).get("namespace")
    return [p for p in pods
            if (p.get("metadata") or {}).get("namespace") == ns and selector.matches((p.get("metadata") or {}).get("labels"))]


def pod_endpoint_fingerprint(pod: Obj) -> tuple[Any, ...]:
    """What of a pod shows in endpoints; pod updates that leave it unchanged (most status
    churn) need no Service resync."""
    spec = pod.get("spec") or {}
    ports = tuple((c.get("name"), tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                                        for p in c.get("ports") or []))
                  for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])])
    return (tuple(pod_ips(pod)), pod_is_ready(pod), pod_is_terminal(pod), pod_is_terminating(pod),
            spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"), ports,
            (pod.get("metadata") or {}).get("uid"))


def last_change_trigger_time(svc: Obj, pods: Iterable[Obj]) -> str | None:
    """When the newest input that shaped the endpoints changed: the Service's creation or a
    pod's last readiness transition (its creation if it never reported readiness)."""
    times = [parse_time((svc.get("metadata") or {}).get("creationTimestamp"))]
    for pod in pods:
        ready_t = None
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                ready_t = parse_time(cond.get("lastTransitionTime"))
        times.append(ready_t or parse_time((pod.get("metadata") or {}).get("creationTimestamp")))
    known = [t for t in times if t is not None]
    return format_time(max(known)) if known else None


# -- Endpoints ----------------------------------------------------------------------------

def endpoint_address(pod: Obj, svc: Obj, ip: str) -> Obj:
    meta = pod.get("metadata") or {}
    addr: Obj = {"ip": ip, "targetRef": {"kind": "Pod", "namespace": meta.get("namespace", ""),
                                         "name": meta.get("name", ""), "uid": meta.get("uid", "")}}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    if should_set_hostname(pod, svc):
        addr["hostname"] = pod["spec"]["hostname"]
    return addr


def _address_sort_key(addr: Obj) -> tuple[str, str]:
    return (addr.get("ip", ""), (addr.get("targetRef") or {}).get("uid", ""))


def compute_subsets(svc: Obj, pods: Iterable[Obj]) -> tuple[list[Obj], bool]:
    """The Endpoints subsets for a Service and the pods its selector matches: pods are
    grouped by the ports they resolve to, ready ones under `addresses`, the others under
    `notReadyAddresses` (all under `addresses` with publishNotReadyAddresses). Returns the
    subsets in a canonical order and whether they were truncated to the capacity."""
    spec = svc.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    family = service_ip_families(svc)[0]
    has_ports = bool(spec.get("ports"))
    groups: dict[tuple[Any, ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=publish_not_ready):
            continue
        ip = pod_ip_for_family(pod, family)
        if ip is None:
            continue
        ports = resolved_ports(svc, pod)
        if not ports and (has_ports or not is_headless(svc)):
            # Only a headless Service lists port-less addresses; elsewhere a pod that
            # resolves none of the ports has nothing to offer.
            continue
        key = ports_key(ports)
        group = groups.setdefault(key, (sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"])), [], []))
        addr = endpoint_address(pod, svc, ip)
        if publish_not_ready or pod_is_ready(pod):
            group[1].append(addr)
        else:
            group[2].append(addr)
    subsets = []
    for key in sorted(groups):
        ports, ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=_address_sort_key)
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=_address_sort_key)
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return truncate_subsets(subsets, MAX_ENDPOINTS_CAPACITY)


def truncate_subsets(subsets: list[Obj], capacity: int) -> tuple[list[Obj], bool]:
    """Keep at most `capacity` addresses, ready ones first, subset by subset."""
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    if total <= capacity:
        return subsets, False
    room = capacity
    out = [dict(s) for s in subsets]
    for field in ("addresses", "notReadyAddresses"):
        for s in out:
            have = s.get(field) or []
            if not have:
                continue
            s[field] = have[:room]
            room -= len(s[field])
            if not s[field]:
                del s[field]
    return [s for s in out if s.get("addresses") or s.get("notReadyAddresses")], True


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = dict((svc.get("metadata") or {}).get("labels") or {})
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    # The EndpointSlice controller already covers selector Services; mirroring these too
    # would publish every endpoint twice.
    labels[SKIP_MIRROR_LABEL] = "true"
    return labels


def _canonical_subsets(subsets: Any) -> list[Any]:
    out = []
    for s in subsets or []:
        c = {}
        for field in ("addresses", "notReadyAddresses"):
            addrs = sorted((_canonical_address(a) for a in s.get(field) or []), key=_address_sort_key)
            if addrs:
                c[field] = addrs
        ports = sorted(({"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP",
                         "appProtocol": p.get("appProtocol") or ""} for p in s.get("ports") or []),
                       key=lambda p: (p["name"], p["port"] or 0, p["protocol"], p["appProtocol"]))
        if ports:
            c["ports"] = ports
        if c:
            out.append(c)
    return sorted(out, key=repr)


def _canonical_address(addr: Obj) -> Obj:
    ref = addr.get("targetRef") or {}
    return {"ip": addr.get("ip", ""), "hostname": addr.get("hostname") or "", "nodeName": addr.get("nodeName") or "",
            "targetRef": {k: ref.get(k) or "" for k in ("kind", "namespace", "name", "uid")}}


def plan_endpoints(svc: Obj, pods: Iterable[Obj], existing: Obj | None) -> Obj | None:
    """The Endpoints object to write for `svc` given the pods its selector matches (already
    filtered), or None when `existing` already says the same. The result carries the
    existing object's resourceVersion so that an update is conditional."""
    pods = list(pods)
    subsets, truncated = compute_subsets(svc, pods)
    labels = endpoints_labels(svc)
    if existing is not None:
        cur_annotations = (existing.get("metadata") or {}).get("annotations") or {}
        same = (_canonical_subsets(existing.get("subsets")) == _canonical_subsets(subsets)
                and ((existing.get("metadata") or {}).get("labels") or {}) == labels
                and (cur_annotations.get(OVER_CAPACITY_ANNOTATION) == "truncated") == truncated)
        if same:
            return None
        out = copy.deepcopy(existing)
    else:
        meta = svc.get("metadata") or {}
        out = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")}}
    meta_out = out.setdefault("metadata", {})
    meta_out["labels"] = labels
    annotations = dict(meta_out.get("annotations") or {})
    trigger = last_change_trigger_time(svc, pods)
    if trigger:
        annotations[TRIGGER_TIME_ANNOTATION] = trigger
    else:
        annotations.pop(TRIGGER_TIME_ANNOTATION, None)
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    meta_out["annotations"] = annotations
    if not annotations:
        meta_out.pop("annotations")
    if subsets:
        out["subsets"] = subsets
    else:
        out.pop("subsets", None)
    return out


# -- the controller -----------------------------------------------------------------------

def services_for_pod(services: Iterable[Obj], pod: Obj) -> list[str]:
    """Keys of the Services (from one namespace) whose selector matches the pod's labels."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    out = []
    for svc in services:
        sel = service_selector(svc)
        if sel and all(labels.get(k) == v for k, v in sel.items()):
            out.append(object_key(svc))
    return out


class EndpointsController:
    """Keeps an Endpoints object per selecting Service. Options: none."""

    def __init__(self, client: Client, factory: Informers, **options: Any) -> None:
        self.client = client
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS, indexers={"node": node_index})
        self.endpoints = factory.informer(ENDPOINTS)
        self.queue = WorkQueue("endpoints")
        add_object_handler(self.services, self._enqueue_obj)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        self.endpoints.add_handler(on_add=self._endpoints_changed,
                                   on_update=lambda _old, new: self._endpoints_changed(new),
                                   on_delete=self._enqueue_obj)

    # -- handlers -------------------------------------------------------------------------

    def _enqueue_obj(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _endpoints_changed(self, ep: Obj) -> None:
        # Only Endpoints of an existing Service are ours to correct: one a user makes
        # without a Service stays (as with Kubernetes, whose controller reacts to
        # Endpoints only when they are deleted); leftovers of deleted Services are
        # swept by the Service's own delete event and the scan at start.
        meta = ep.get("metadata") or {}
        if self.services.get(meta.get("namespace") or "", meta.get("name") or "") is not None:
            self._enqueue_obj(ep)

    def _services_in(self, ns: str) -> list[Obj]:
        return self.services.by_index("namespace", ns)

    def _pod_changed(self, pod: Obj) -> None:
        for key in services_for_pod(self._services_in((pod.get("metadata") or {}).get("namespace") or ""), pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        labels_changed = (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
        if not labels_changed and pod_endpoint_fingerprint(old) == pod_endpoint_fingerprint(new):
            return
        keys = set(services_for_pod(self._services_in((new.get("metadata") or {}).get("namespace") or ""), new))
        if labels_changed:
            keys.update(services_for_pod(self._services_in((old.get("metadata") or {}).get("namespace") or ""), old))
        for key in keys:
            self.queue.add(key)

    # -- workers --------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        # Endpoints left behind while no controller ran (their Service deleted) are
        # found by visiting every existing Endpoints once.
        for ep in self.endpoints.list():
            self.queue.add(object_key(ep))
        await run_workers(self.queue, self.sync, workers, "endpoints", (409,), level=logging.INFO, logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        svc = self.services.get(ns, name)
        if svc is None:
            if self.endpoints.get(ns, name) is not None:
                try:
                    await self.client.delete(ENDPOINTS, ns, name)
                except ApiError as e:
                    if e.code != 404:
                        raise
            return Result.done()
        if service_selector(svc) is None:
            return Result.done()
        pods = pods_selected(svc, self.pods.by_index("namespace", ns))
        existing = self.endpoints.get(ns, name)
        desired = plan_endpoints(svc, pods, existing)
        if desired is None:
            return Result.done()
        if existing is None:
            # A 409 here (our own earlier create not yet in the informer) retries with backoff.
            await self.client.create(ENDPOINTS, ns, desired, field_manager="endpoint-controller")
        else:
            await self.client.update(ENDPOINTS, ns, name, desired, field_manager="endpoint-controller")
        return Result.done()
