"""The EndpointSlice mirroring controller: every Endpoints object a user wrote for a
Service without a selector gets `discovery.k8s.io/v1` EndpointSlices listing the same
addresses, as kube-controller-manager's `endpointslicemirroring` does, so consumers that
read only slices (kube-proxy, DNS, kubectl) see those backends too.

Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"` (what the endpoints
controller writes for selector Services) and leader-election Endpoints are not mirrored.
Mirrored slices are owned by their Endpoints and go away when the Endpoints or the
Service goes, or the Service gains a selector.

`plan_mirror` is the pure reconciler; `EndpointSliceMirroringController` the thin shell.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.labels import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.endpoints import TRIGGER_TIME_ANNOTATION, ports_key, service_selector
from kybernetes.controllers.endpointslice import (
    SlicePlan,
    SliceTracker,
    StaleCache,
    apply_slice_plan,
    managed_slice_indexer,
    managed_slice_key,
    new_slice,
    set_controller_ref,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
# kube-controller-manager's --mirroring-max-endpoints-per-subset default: addresses of a
# subset beyond it are not mirrored.
MAX_ENDPOINTS_PER_SUBSET = 1000
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


# -- what to mirror -------------------------------------------------------------------------

def should_mirror(endpoints: Obj | None, svc: Obj | None) -> bool:
    """Whether `endpoints` should have mirrored slices: its Service exists without a
    selector, it is not marked skip-mirror and it is no leader-election record."""
    if endpoints is None or svc is None:
        return False
    if service_selector(svc) is not None or (svc.get("metadata") or {}).get("deletionTimestamp"):
        return False
    meta = endpoints.get("metadata") or {}
    if (meta.get("labels") or {}).get(SKIP_MIRROR_LABEL) == "true":
        return False
    return LEADER_ANNOTATION not in (meta.get("annotations") or {})


def address_type(ip: str) -> tuple[str, str] | None:
    """The slice addressType of an IP and its canonical text; None for no valid IP."""
    try:
        addr = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return None
    return ("IPv4" if addr.version == 4 else "IPv6"), str(addr)


def mirrored_endpoint(address: Obj, ip: str, ready: bool) -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
    if address.get("targetRef"):
        ep["targetRef"] = copy.deepcopy(address["targetRef"])
    if address.get("nodeName"):
        ep["nodeName"] = address["nodeName"]
    if address.get("hostname"):
        ep["hostname"] = address["hostname"]
    return ep


def slice_ports(subset_ports: Iterable[Obj]) -> list[Obj]:
    out = []
    for p in subset_ports:
        port: Obj = {"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
        if p.get("appProtocol"):
            port["appProtocol"] = p["appProtocol"]
        out.append(port)
    return sorted(out, key=lambda p: (p["name"], p["port"] or 0, p["protocol"]))


@dataclass
class Group:
    address_type: str
    ports: list[Obj]
    endpoints: dict[str, Obj] = field(default_factory=dict)


def desired_groups(endpoints: Obj, max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> dict[tuple[Any, ...], Group]:
    """The endpoints to mirror, grouped by (addressType, ports). Ready addresses of a
    subset come before its not-ready ones, and at most `max_per_subset` of them are kept;
    subsets with the same ports share slices, and an address listed twice counts once."""
    groups: dict[tuple[Any, ...], Group] = {}
    for subset in endpoints.get("subsets") or []:
        ports = slice_ports(subset.get("ports") or [])
        pkey = ports_key(ports)
        taken = 0
        for ready, field_name in ((True, "addresses"), (False, "notReadyAddresses")):
            for address in subset.get(field_name) or []:
                if taken >= max_per_subset:
                    break
                typed = address_type(address.get("ip") or "")
                if typed is None:
                    continue
                family, ip = typed
                group = groups.setdefault((family, pkey), Group(family, ports))
                if ip not in group.endpoints:
                    group.endpoints[ip] = mirrored_endpoint(address, ip, ready)
                    taken += 1
    return groups


def slice_labels(endpoints: Obj) -> dict[str, str]:
    meta = endpoints.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != SKIP_MIRROR_LABEL}
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def slice_annotations(endpoints: Obj) -> dict[str, str]:
    return {k: v for k, v in ((endpoints.get("metadata") or {}).get("annotations") or {}).items()
            if k not in (TRIGGER_TIME_ANNOTATION, LAST_APPLIED_ANNOTATION)}


# -- the reconciler -------------------------------------------------------------------------

def _desired_slice(endpoints: Obj, base: Obj | None, group: Group, chunk: list[Obj]) -> Obj:
    out: Obj = copy.deepcopy(base) if base is not None else new_slice(endpoints)
    meta = out.setdefault("metadata", {})
    meta["labels"] = slice_labels(endpoints)
    annotations = slice_annotations(endpoints)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    set_controller_ref(meta, endpoints, "Endpoints")
    out["addressType"] = group.address_type
    out["ports"] = copy.deepcopy(group.ports)
    out["endpoints"] = chunk
    return out


def _norm_endpoint(ep: Obj) -> Obj:
    ref = ep.get("targetRef") or {}
    return {"addresses": list(ep.get("addresses") or []),
            "ready": bool((ep.get("conditions") or {}).get("ready")),
            "targetRef": {k: ref.get(k) or "" for k in ("kind", "namespace", "name", "uid")},
            "nodeName": ep.get("nodeName") or "", "hostname": ep.get("hostname") or ""}


def _differs(existing: Obj, desired: Obj) -> bool:
    em, dm = existing.get("metadata") or {}, desired["metadata"]
    return ([_norm_endpoint(e) for e in existing.get("endpoints") or []]
            != [_norm_endpoint(e) for e in desired.get("endpoints") or []]
            or ports_key(existing.get("ports") or ()) != ports_key(desired.get("ports") or ())
            or (em.get("labels") or {}) != dm["labels"]
            or (em.get("annotations") or {}) != (dm.get("annotations") or {})
            or (em.get("ownerReferences") or []) != dm["ownerReferences"])


def plan_mirror(endpoints: Obj | None, svc: Obj | None, existing: Iterable[Obj],
                max_per_subset: int = MAX_ENDPOINTS_PER_SUBSET) -> SlicePlan:
    """What to create, update and delete so that the mirrored slices of one Endpoints
    (`existing`, those this controller manages for that name) list exactly its addresses.
    Slices already holding a (addressType, ports) group are rewritten in place, oldest
    name first; an Endpoints that should not be mirrored loses all its slices."""
    existing = sorted(existing, key=lambda s: (s.get("metadata") or {}).get("name") or "")
    plan = SlicePlan()
    if not should_mirror(endpoints, svc):
        plan.delete.extend(existing)
        return plan
    assert endpoints is not None
    groups = desired_groups(endpoints, max_per_subset)
    by_group: dict[tuple[Any, ...], list[Obj]] = {}
    for s in existing:
        by_group.setdefault((s.get("addressType"), ports_key(s.get("ports") or ())), []).append(s)
    for key, group in groups.items():
        eps = sorted(group.endpoints.values(), key=lambda e: e["addresses"])
        chunks = [eps[i:i + max_per_subset] for i in range(0, len(eps), max_per_subset)] or [[]]
        holders = by_group.pop(key, [])
        for i, chunk in enumerate(chunks):
            if i < len(holders):
                want = _desired_slice(endpoints, holders[i], group, chunk)
                if _differs(holders[i], want):
                    plan.update.append(want)
            else:
                plan.create.append(_desired_slice(endpoints, None, group, chunk))
        plan.delete.extend(holders[len(chunks):])
    for rest in by_group.values():
        plan.delete.extend(rest)
    return plan


# -- the controller -------------------------------------------------------------------------

def mirror_key(slice_: Obj) -> str | None:
    """The Endpoints (namespace/name) a mirrored slice belongs to."""
    return managed_slice_key(slice_, CONTROLLER_NAME)


class EndpointSliceMirroringController:
    """Keeps the mirrored EndpointSlices of every user-made Endpoints.
    Options: `max_endpoints_per_subset` (default 1000)."""

    def __init__(self, client: Client, factory: Informers, **options: Any) -> None:
        self.client = client
        self.max_per_subset = int(options.get("max_endpoints_per_subset", MAX_ENDPOINTS_PER_SUBSET))
        self.endpoints = factory.informer(ENDPOINTS)
        self.services = factory.informer(SERVICES)
        self.slices = factory.informer(ENDPOINTSLICES, indexers={"mirror": managed_slice_indexer(CONTROLLER_NAME)})
        self.queue = WorkQueue("endpointslicemirroring")
        self.tracker = SliceTracker()
        add_object_handler(self.endpoints, self._enqueue_obj)
        add_object_handler(self.services, self._enqueue_obj)
        add_object_handler(self.slices, self._slice_changed)

    def _enqueue_obj(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _slice_changed(self, slice_: Obj) -> None:
        key = mirror_key(slice_)
        if key:
            self.queue.add(key)

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "endpointslicemirroring", (409,),
                          quiet=(StaleCache,), level=logging.INFO, logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        cached = {(s.get("metadata") or {}).get("name"): s for s in self.slices.by_index("mirror", key)}
        if self.tracker.stale(key, cached):
            raise StaleCache(key)
        plan = plan_mirror(self.endpoints.get(ns, name), self.services.get(ns, name), cached.values(),
                           self.max_per_subset)
        await apply_slice_plan(self.client, ns, key, plan, self.tracker, CONTROLLER_NAME)
        if not cached and not plan.create:
            self.tracker.forget(key)
        return Result.done()
