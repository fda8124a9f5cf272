"""The EndpointSlice controller: for every Service with a selector, `discovery.k8s.io/v1`
EndpointSlices (at most 100 endpoints each, one port mapping per slice, one address
family per slice) listing the matching pods with their ready/serving/terminating
conditions. Slices are owned by their Service, so deleting the Service lets the garbage
collector remove them.

`plan_slices` is the pure reconciler: it keeps endpoints in the slices they already sit
in, fills slices with room before creating new ones, and writes only what changed.

What any slice-writing controller needs is also kept here once and shared with the
mirroring controller: the plan (`SlicePlan`) and its writer (`apply_slice_plan`), the
guard against a stale informer (`SliceTracker`), a new slice's skeleton, the controller
owner reference, and which slices a controller manages.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.labels import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from kybernetes.api.pods import pod_is_ready, pod_is_terminating
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import ENDPOINTSLICES, NODES, PODS, SERVICES
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.endpoints import (
    HEADLESS_LABEL,
    TRIGGER_TIME_ANNOTATION,
    is_headless,
    last_change_trigger_time,
    pod_endpoint_fingerprint,
    pod_ip_for_family,
    pods_selected,
    ports_key,
    resolved_ports,
    service_ip_families,
    service_selector,
    services_for_pod,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from kybernetes.controllers.podutil import node_index, owner_reference

log = logging.getLogger(__name__)

Obj = dict[str, Any]

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100


# -- desired endpoints --------------------------------------------------------------------

def slice_endpoint(pod: Obj, svc: Obj, ip: str, node: Obj | None) -> Obj:
    """One EndpointSlice endpoint for a pod. `ready` is never true for a terminating pod
    (unless the Service publishes not-ready addresses); `serving` is the pod's readiness."""
    serving = pod_is_ready(pod)
    terminating = pod_is_terminating(pod)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    meta = pod.get("metadata") or {}
    ep: Obj = {
        "addresses": [ip],
        "conditions": {"ready": publish or (serving and not terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                      "uid": meta.get("uid", "")},
    }
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name:
        ep["nodeName"] = node_name
    zone = (((node or {}).get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        ep["zone"] = zone
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def endpoint_key(ep: Obj) -> str:
    """Identity of an endpoint across syncs: its pod, else its addresses."""
    uid = (ep.get("targetRef") or {}).get("uid")
    return f"uid:{uid}" if uid else "ip:" + ",".join(ep.get("addresses") or [])


@dataclass
class PortGroup:
    ports: list[Obj]
    endpoints: dict[str, Obj] = field(default_factory=dict)


def desired_endpoints(svc: Obj, pods: Iterable[Obj], nodes: Mapping[str, Obj],
                      family: str) -> dict[tuple[Any, ...], PortGroup]:
    """The endpoints one address family of the Service should list, grouped by the ports
    each pod resolves (pods differing in named-port numbers land in different slices)."""
    groups: dict[tuple[Any, ...], PortGroup] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ip = pod_ip_for_family(pod, family)
        if ip is None:
            continue
        ports = resolved_ports(svc, pod)
        key = ports_key(ports)
        group = groups.get(key)
        if group is None:
            group = groups[key] = PortGroup(sorted(ports, key=lambda p: (p["name"], p["port"], p["protocol"])))
        node = nodes.get((pod.get("spec") or {}).get("nodeName") or "")
        ep = slice_endpoint(pod, svc, ip, node)
        group.endpoints[endpoint_key(ep)] = ep
    return groups


def slice_labels(svc: Obj) -> dict[str, str]:
    meta = svc.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


# -- slices of any slice-writing controller ------------------------------------------------

@dataclass
class SlicePlan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def new_slice(owner: Obj) -> Obj:
    """The skeleton of a new EndpointSlice named after `owner`, in its namespace."""
    meta = owner.get("metadata") or {}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": f"{meta.get('name', '')}-", "namespace": meta.get("namespace")}}


def set_controller_ref(slice_meta: Obj, owner: Obj, kind: str) -> None:
    """Make `owner` the slice's controller, keeping others' non-controller references."""
    uid = (owner.get("metadata") or {}).get("uid")
    others = [r for r in slice_meta.get("ownerReferences") or [] if r.get("uid") != uid and not r.get("controller")]
    slice_meta["ownerReferences"] = [owner_reference(owner, "v1", kind), *others]


def managed_slice_key(slice_: Obj, controller: str) -> str | None:
    """The namespace/name of the object a slice lists endpoints for (its service-name
    label), if `controller` manages the slice."""
    meta = slice_.get("metadata") or {}
    labels = meta.get("labels") or {}
    name = labels.get(SERVICE_NAME_LABEL)
    if not name or labels.get(MANAGED_BY_LABEL) != controller:
        return None
    return f"{meta.get('namespace')}/{name}"


def managed_slice_indexer(controller: str) -> Callable[[Obj], list[str]]:
    """An informer index of the slices `controller` manages, by `managed_slice_key`."""
    def index(slice_: Obj) -> list[str]:
        key = managed_slice_key(slice_, controller)
        return [key] if key else []
    return index


# -- the reconciler -----------------------------------------------------------------------


def _norm_endpoint(ep: Obj) -> Obj:
    cond = ep.get("conditions") or {}
    ref = ep.get("targetRef") or {}
    return {"addresses": list(ep.get("addresses") or []),
            "conditions": {k: bool(cond.get(k)) for k in ("ready", "serving", "terminating")},
            "targetRef": {k: ref.get(k) or "" for k in ("kind", "namespace", "name", "uid")},
            "nodeName": ep.get("nodeName") or "", "zone": ep.get("zone") or "", "hostname": ep.get("hostname") or ""}


def _norm_ports(ports: Any) -> tuple[Any, ...] | None:
    return None if ports is None else ports_key(ports)


def _slice_differs(existing: Obj, desired: Obj) -> bool:
    if [_norm_endpoint(e) for e in existing.get("endpoints") or []] != \
            [_norm_endpoint(e) for e in desired.get("endpoints") or []]:
        return True
    if _norm_ports(existing.get("ports") or None) != _norm_ports(desired.get("ports") or None):
        return True
    if ((existing.get("metadata") or {}).get("labels") or {}) != desired["metadata"]["labels"]:
        return True
    uid = desired["metadata"]["ownerReferences"][0]["uid"]
    refs = (existing.get("metadata") or {}).get("ownerReferences") or []
    return not any(r.get("uid") == uid and r.get("controller") for r in refs)


def _new_slice(svc: Obj, family: str, ports: list[Obj] | None, endpoints: list[Obj],
               annotations: dict[str, str]) -> Obj:
    out = new_slice(svc)
    out["metadata"]["labels"] = slice_labels(svc)
    set_controller_ref(out["metadata"], svc, "Service")
    out["addressType"] = family
    out["endpoints"] = endpoints
    if annotations:
        out["metadata"]["annotations"] = dict(annotations)
    if ports is not None:
        out["ports"] = ports
    return out


def _rewritten(existing: Obj, svc: Obj, ports: list[Obj] | None, endpoints: list[Obj],
               annotations: dict[str, str]) -> Obj:
    out = copy.deepcopy(existing)
    meta = out.setdefault("metadata", {})
    meta["labels"] = slice_labels(svc)
    set_controller_ref(meta, svc, "Service")
    merged = {**(meta.get("annotations") or {}), **annotations}
    if merged:
        meta["annotations"] = merged
    out["endpoints"] = endpoints
    if ports is None:
        out.pop("ports", None)
    else:
        out["ports"] = ports
    return out


def _is_placeholder(slice_: Obj) -> bool:
    return not slice_.get("endpoints") and not slice_.get("ports")


def plan_slices(svc: Obj, pods: Iterable[Obj], nodes: Mapping[str, Obj], existing: Iterable[Obj],
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """What to create, update and delete so that the Service's managed slices list exactly
    the desired endpoints. `pods` are the pods the selector matches; `existing` the slices
    this controller manages for the Service. Endpoints stay in the slice that holds them;
    new ones fill slices with room first; a Service with no endpoints keeps one empty
    placeholder slice, as Kubernetes does."""
    pods = list(pods)
    existing = sorted(existing, key=lambda s: (s.get("metadata") or {}).get("name") or "")
    families = service_ip_families(svc)
    trigger = last_change_trigger_time(svc, pods)
    annotations = {TRIGGER_TIME_ANNOTATION: trigger} if trigger else {}
    plan = SlicePlan()
    kept: list[tuple[Obj, list[Obj] | None, list[Obj]]] = []
    any_endpoints = False

    for family in families:
        groups = desired_endpoints(svc, pods, nodes, family)
        any_endpoints = any_endpoints or any(g.endpoints for g in groups.values())
        holders: dict[tuple[Any, ...], list[tuple[Obj, list[Obj]]]] = {}
        for s in existing:
            if s.get("addressType") != family or _is_placeholder(s):
                continue
            group = groups.get(_norm_ports(s.get("ports") or []) or ())
            if group is None:
                plan.delete.append(s)
                continue
            placed = []
            for ep in s.get("endpoints") or []:
                want = group.endpoints.pop(endpoint_key(ep), None)
                if want is not None and len(placed) < max_per_slice:
                    placed.append(want)
                elif want is not None:
                    group.endpoints[endpoint_key(ep)] = want
            if placed:
                holders.setdefault(_norm_ports(s.get("ports") or []) or (), []).append((s, placed))
            else:
                plan.delete.append(s)
        for key, group in groups.items():
            remaining = sorted(group.endpoints.values(), key=lambda e: e["addresses"])
            for s, placed in holders.get(key, []):
                room = max_per_slice - len(placed)
                if room > 0 and remaining:
                    placed.extend(remaining[:room])
                    remaining = remaining[room:]
                kept.append((s, group.ports, placed))
            for i in range(0, len(remaining), max_per_slice):
                plan.create.append(_new_slice(svc, family, group.ports, remaining[i:i + max_per_slice], annotations))

    for s, ports, endpoints in kept:
        desired = _rewritten(s, svc, ports, endpoints, {})
        if _slice_differs(s, desired):
            plan.update.append(_rewritten(s, svc, ports, endpoints, annotations))

    placeholders = [s for s in existing if _is_placeholder(s)]
    if any_endpoints:
        plan.delete.extend(placeholders)
    else:
        keep = next((s for s in placeholders if s.get("addressType") == families[0]), None)
        plan.delete.extend(s for s in placeholders if s is not keep)
        if keep is None:
            plan.create.append(_new_slice(svc, families[0], None, [], annotations))
        else:
            desired = _rewritten(keep, svc, None, [], {})
            if _slice_differs(keep, desired):
                plan.update.append(_rewritten(keep, svc, None, [], annotations))
    # Slices of families the Service no longer has go away too.
    doomed = {id(s) for s in plan.delete}
    plan.delete.extend(s for s in existing
                       if s.get("addressType") not in families and not _is_placeholder(s) and id(s) not in doomed)
    return plan


# -- stale-informer guard -----------------------------------------------------------------

def _rv_int(rv: str | None) -> int | None:
    try:
        return int(rv or "")
    except ValueError:
        return None


class StaleCache(Exception):
    """The informer does not yet show this controller's own slice writes; retry shortly."""


class SliceTracker:
    """Remembers this controller's own slice writes until the informer shows them, so
    that a sync never plans from a cache that misses a slice it just created (which would
    create a duplicate) or still shows one it deleted."""

    def __init__(self) -> None:
        self._created: dict[str, set[str]] = {}
        self._deleted: dict[str, set[str]] = {}
        self._updated: dict[str, dict[str, str]] = {}

    def created(self, svc_key: str, name: str) -> None:
        self._created.setdefault(svc_key, set()).add(name)

    def deleted(self, svc_key: str, name: str) -> None:
        self._deleted.setdefault(svc_key, set()).add(name)

    def updated(self, svc_key: str, name: str, rv: str) -> None:
        self._updated.setdefault(svc_key, {})[name] = rv

    def forget(self, svc_key: str) -> None:
        self._created.pop(svc_key, None)
        self._deleted.pop(svc_key, None)
        self._updated.pop(svc_key, None)

    def stale(self, svc_key: str, cached: Mapping[str, Obj]) -> bool:
        """True while the cached slices (by name) do not yet reflect our writes; entries
        the cache has caught up with are dropped."""
        created = self._created.get(svc_key, set())
        created -= {n for n in created if n in cached}
        deleted = self._deleted.get(svc_key, set())
        deleted -= {n for n in deleted if n not in cached}
        updated = self._updated.get(svc_key, {})
        for name in list(updated):
            have = cached.get(name)
            if have is None:
                del updated[name]
                continue
            have_rv = _rv_int((have.get("metadata") or {}).get("resourceVersion"))
            want_rv = _rv_int(updated[name])
            if have_rv is None or want_rv is None or have_rv >= want_rv:
                del updated[name]
        return bool(created or deleted or updated)


async def apply_slice_plan(client: Client, namespace: str, key: str, plan: SlicePlan, tracker: SliceTracker,
                           field_manager: str) -> None:
    """Write `plan`, telling `tracker` about each write so that the next sync of `key`
    waits for the informer to show them."""
    for s in plan.create:
        made = await client.create(ENDPOINTSLICES, namespace, s, field_manager=field_manager)
        tracker.created(key, made["metadata"]["name"])
    for s in plan.update:
        done = await client.update(ENDPOINTSLICES, namespace, s["metadata"]["name"], s, field_manager=field_manager)
        tracker.updated(key, done["metadata"]["name"], done["metadata"].get("resourceVersion", ""))
    for s in plan.delete:
        sname = s["metadata"]["name"]
        try:
            await client.delete(ENDPOINTSLICES, namespace, sname)
        except ApiError as e:
            if e.code != 404:
                raise
        tracker.deleted(key, sname)


# -- the controller -----------------------------------------------------------------------

def slice_service_key(slice_: Obj) -> str | None:
    return managed_slice_key(slice_, CONTROLLER_NAME)


class EndpointSliceController:
    """Keeps the EndpointSlices of every selecting Service.
    Options: `max_endpoints_per_slice` (default 100)."""

    def __init__(self, client: Client, factory: Informers, **options: Any) -> None:
        self.client = client
        self.max_per_slice = int(options.get("max_endpoints_per_slice", MAX_ENDPOINTS_PER_SLICE))
        self.services = factory.informer(SERVICES)
        self.pods = factory.informer(PODS, indexers={"node": node_index})
        self.nodes = factory.informer(NODES)
        self.slices = factory.informer(ENDPOINTSLICES, indexers={"service": managed_slice_indexer(CONTROLLER_NAME)})
        self.queue = WorkQueue("endpointslice")
        self.tracker = SliceTracker()
        add_object_handler(self.services, self._enqueue_obj)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        add_object_handler(self.slices, self._slice_changed)
        self.nodes.add_handler(on_update=self._node_updated)

    # -- handlers -------------------------------------------------------------------------

    def _enqueue_obj(self, obj: Obj) -> None:
        self.queue.add(object_key(obj))

    def _slice_changed(self, slice_: Obj) -> None:
        key = slice_service_key(slice_)
        if key:
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        for key in services_for_pod(self.services.by_index("namespace", ns), pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        labels_changed = (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels")
        if not labels_changed and pod_endpoint_fingerprint(old) == pod_endpoint_fingerprint(new):
            return
        self._pod_changed(new)
        if labels_changed:
            self._pod_changed(old)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        def zone(n: Obj) -> str | None:
            return ((n.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL)

        if zone(old) == zone(new):
            return
        for pod in self.pods.by_index("node", (new.get("metadata") or {}).get("name") or ""):
            self._pod_changed(pod)

    # -- workers --------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "endpointslices", (409,), quiet=(StaleCache,),
                          level=logging.INFO, logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        svc = self.services.get(ns, name)
        if svc is None:
            # The garbage collector removes the slices through their owner reference.
            self.tracker.forget(key)
            return Result.done()
        if service_selector(svc) is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            return Result.done()
        cached = {(s.get("metadata") or {}).get("name"): s for s in self.slices.by_index("service", key)}
        if self.tracker.stale(key, cached):
            raise StaleCache(key)
        pods = pods_selected(svc, self.pods.by_index("namespace", ns))
        nodes = {n: self.nodes.get(None, n) or {} for n in {(p.get("spec") or {}).get("nodeName") for p in pods} if n}
        plan = plan_slices(svc, pods, nodes, cached.values(), self.max_per_slice)
        await apply_slice_plan(self.client, ns, key, plan, self.tracker, CONTROLLER_NAME)
        return Result.done()
