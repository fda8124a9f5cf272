"""The node lifecycle controller: node health from heartbeats, condition taints, NoExecute
evictions, and pod CIDR allocation.

- Health: a node's kubelet renews its Lease in `kube-node-lease` (and posts status); when
  neither changes for `node_monitor_grace_period`, the node's conditions become Unknown
  ("Kubelet stopped posting node status.") and its pods are marked not ready.
- Taints: the condition taints (`node.kubernetes.io/unreachable`, `not-ready`, pressure,
  `unschedulable`, ...) follow the node's conditions and spec.
- Taint manager: pods on a node with NoExecute taints are deleted once their matching
  tolerations' `tolerationSeconds` have run out (at once without a matching toleration).
- Pod CIDRs: every node gets a free subnet of `cluster_cidr` in `spec.podCIDR(s)`.

Heartbeat age is measured on this controller's clock from when it saw the heartbeat
change, never from the timestamps inside the objects, so clock skew between machines
cannot make a node look dead.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ipaddress
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.pods import condition, pod_is_ready, pod_is_terminal, toleration_matches
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result, SyncFn
from kybernetes.client.resources import LEASES, NODES, PODS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.podutil import format_time, node_index, parse_time

log = logging.getLogger(__name__)


class CidrExhausted(Exception):
    """The cluster CIDR has no free node subnet: an operator's sizing matter, retried
    with backoff (a deleted node frees one), reported as a CIDRNotAvailable event."""

Obj = dict[str, Any]
Clock = Callable[[], dt.datetime]

NODE_LEASE_NAMESPACE = "kube-node-lease"
COMPONENT = "node-controller"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# Conditions a kubelet reports; all of them turn Unknown when it goes silent.
HEARTBEAT_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# NoSchedule taints that mirror a condition being True.
CONDITION_TAINTS = {"MemoryPressure": TAINT_MEMORY_PRESSURE, "DiskPressure": TAINT_DISK_PRESSURE,
                    "PIDPressure": TAINT_PID_PRESSURE, "NetworkUnavailable": TAINT_NETWORK_UNAVAILABLE}
MANAGED_TAINT_KEYS = frozenset({TAINT_NOT_READY, TAINT_UNREACHABLE, TAINT_UNSCHEDULABLE, *CONDITION_TAINTS.values()})

STOPPED_POSTING = "Kubelet stopped posting node status."
NEVER_POSTED = "Kubelet never posted node status."


def ready_status(node: Obj) -> str | None:
    """"True", "False", "Unknown", or None when the node never reported Ready."""
    c = condition(node, "Ready")
    return c.get("status") if c else None


# -- heartbeats ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Heartbeat:
    """What this controller last saw of a node's heartbeats, and when (its own clock)."""

    lease_renew: str | None
    ready_heartbeat: str | None
    probe_time: dt.datetime


def _beats(node: Obj, lease: Obj | None) -> tuple[str | None, str | None]:
    renew = ((lease or {}).get("spec") or {}).get("renewTime")
    ready = condition(node, "Ready")
    return renew, (ready or {}).get("lastHeartbeatTime")


def observe_heartbeat(prev: Heartbeat | None, node: Obj, lease: Obj | None, now: dt.datetime) -> Heartbeat:
    """The new heartbeat record: the probe time moves to `now` when the lease was renewed
    or the kubelet posted a new Ready heartbeat since `prev` (or on first sight)."""
    renew, ready = _beats(node, lease)
    if prev is None or (renew, ready) != (prev.lease_renew, prev.ready_heartbeat):
        return Heartbeat(renew, ready, now)
    return prev


def heartbeat_expired(hb: Heartbeat, node: Obj, now: dt.datetime, grace: float, startup_grace: float) -> bool:
    """A node that has never reported Ready gets the (longer) startup grace period."""
    limit = grace if ready_status(node) is not None else max(grace, startup_grace)
    return (now - hb.probe_time).total_seconds() > limit


def unknown_conditions(node: Obj, now: dt.datetime) -> list[Obj]:
    """The conditions to write when the kubelet went silent: every heartbeat condition not
    already Unknown turns Unknown (a missing one is added as never posted). Empty when
    nothing changes."""
    stamp = format_time(now)
    created = (node.get("metadata") or {}).get("creationTimestamp") or stamp
    out = []
    for type_ in HEARTBEAT_CONDITIONS:
        cur = condition(node, type_)
        if cur is None:
            out.append({"type": type_, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                        "message": NEVER_POSTED, "lastHeartbeatTime": created, "lastTransitionTime": stamp})
        elif cur.get("status") != "Unknown":
            new = dict(cur)
            new.update(status="Unknown", reason="NodeStatusUnknown", message=STOPPED_POSTING,
                       lastTransitionTime=stamp)
            out.append(new)
    return out


# -- condition taints ---------------------------------------------------------------------

def _taint_id(t: Obj) -> tuple[str, str]:
    return (t.get("key") or "", t.get("effect") or "")


def wanted_condition_taints(node: Obj) -> set[tuple[str, str]]:
    """The (key, effect) condition taints the node should carry now."""
    want: set[tuple[str, str]] = set()
    ready = ready_status(node)
    if ready == "False":
        want |= {(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")}
    elif ready == "Unknown":
        want |= {(TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")}
    for type_, key in CONDITION_TAINTS.items():
        c = condition(node, type_)
        if c and c.get("status") == "True":
            want.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        want.add((TAINT_UNSCHEDULABLE, "NoSchedule"))
    return want


def desired_taints(node: Obj, now: dt.datetime) -> list[Obj] | None:
    """The node's full taint list with the condition taints reconciled (others untouched,
    kept ones keep their timeAdded, new NoExecute ones are stamped `now`), or None when the
    current list is already right."""
    current = list((node.get("spec") or {}).get("taints") or [])
    want = wanted_condition_taints(node)
    have = {_taint_id(t) for t in current if t.get("key") in MANAGED_TAINT_KEYS}
    if have == want:
        return None
    out = [t for t in current if t.get("key") not in MANAGED_TAINT_KEYS or _taint_id(t) in want]
    for key, effect in sorted(want - have):
        taint: Obj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = format_time(now)
        out.append(taint)
    return out


# -- taint manager ------------------------------------------------------------------------

def _taint_seconds(pod: Obj, taint: Obj, default_seconds: int) -> float | None:
    """How long the pod may stay under this taint: 0 if untolerated (the default seconds
    for not-ready/unreachable, which every pod tolerates for a while), the smallest
    tolerationSeconds of the matching tolerations, None if one tolerates it forever."""
    matching = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if toleration_matches(t, taint)]
    if not matching:
        if taint.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE):
            return float(max(default_seconds, 0))
        return 0.0
    limited = [t.get("tolerationSeconds") for t in matching if t.get("tolerationSeconds") is not None]
    if not limited:
        return None
    return float(max(min(limited), 0))


def eviction_time(pod: Obj, taints: Iterable[Obj], default_seconds: int, now: dt.datetime) -> dt.datetime | None:
    """When the taint manager deletes the pod: the earliest over the node's NoExecute taints
    of `timeAdded` (or `now` if unset) plus the time the pod tolerates it. None when the
    pod tolerates every NoExecute taint forever (or there is none)."""
    when: dt.datetime | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        seconds = _taint_seconds(pod, taint, default_seconds)
        if seconds is None:
            continue
        start = parse_time(taint.get("timeAdded")) or now
        t = start + dt.timedelta(seconds=seconds)
        if when is None or t < when:
            when = t
    return when


def pods_to_mark_not_ready(node: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """Pods of a node whose kubelet went silent that still claim to be Ready."""
    if ready_status(node) != "Unknown":
        return []
    node_name = (node.get("metadata") or {}).get("name")
    out = []
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name:
            continue
        if pod_is_terminal(pod):
            continue
        if pod_is_ready(pod):
            out.append(pod)
    return out


def not_ready_patch(pod: Obj, now: dt.datetime) -> Obj:
    """A strategic-merge status patch setting the pod's Ready condition False."""
    cur = condition(pod, "Ready") or {"type": "Ready"}
    new = dict(cur)
    new.update(status="False", lastTransitionTime=format_time(now))
    return {"status": {"conditions": [new]}}


# -- pod CIDRs ----------------------------------------------------------------------------

class CidrAllocator:
    """Hands out the subnets of `cluster_cidr` with prefix length `mask_size`, round robin
    from the last allocation so a just-released subnet is not reused at once (routes to
    it may linger)."""

    def __init__(self, cluster_cidr: str = "10.42.0.0/16", mask_size: int = 24) -> None:
        self.network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask_size < self.network.prefixlen or mask_size > self.network.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self.count = 1 << (mask_size - self.network.prefixlen)
        self._step = 1 << (self.network.max_prefixlen - mask_size)
        self.used: set[int] = set()
        self._next = 0

    def _index(self, cidr: str) -> int | None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size:
            return None
        if not net.subnet_of(self.network):
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step

    def _cidr(self, index: int) -> str:
        addr = ipaddress.ip_address(int(self.network.network_address) + index * self._step)
        return f"{addr}/{self.mask_size}"

    def occupy(self, cidr: str) -> bool:
        """Mark a subnet in use (a node already has it); False if it is not ours."""
        i = self._index(cidr)
        if i is None:
            return False
        self.used.add(i)
        return True

    def release(self, cidr: str) -> None:
        i = self._index(cidr)
        if i is not None:
            self.used.discard(i)

    def allocate(self) -> str | None:
        """The next free subnet, or None when the cluster CIDR is exhausted."""
        if len(self.used) >= self.count:
            return None
        for offset in range(self.count):
            i = (self._next + offset) % self.count
            if i not in self.used:
                self.used.add(i)
                self._next = (i + 1) % self.count
                return self._cidr(i)
        return None


def node_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or [])
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


# -- the controller -----------------------------------------------------------------------

def _noexecute(node: Obj | None) -> list[Obj]:
    return [t for t in ((node or {}).get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def key_in(keys: set[str], obj: Obj) -> bool:
    return object_key(obj) in keys


def _with_kind(obj: Obj, api_version: str, kind: str) -> Obj:
    return {**obj, "apiVersion": obj.get("apiVersion") or api_version, "kind": obj.get("kind") or kind}


class NodeLifecycleController:
    """Options: `node_monitor_grace_period` (s, 40), `node_startup_grace_period` (s, 60),
    `node_monitor_period` (s, 5), `default_toleration_seconds` (300),
    `allocate_node_cidrs` (True), `cluster_cidr` ("10.42.0.0/16"), `node_cidr_mask_size` (24),
    `clock` (a function returning an aware datetime)."""

    def __init__(self, client: Client, factory: Informers, **options: Any) -> None:
        self.client = client
        self.grace = float(options.get("node_monitor_grace_period", 40.0))
        self.startup_grace = float(options.get("node_startup_grace_period", 60.0))
        self.monitor_period = float(options.get("node_monitor_period", 5.0))
        self.default_toleration_seconds = int(options.get("default_toleration_seconds", 300))
        self.allocate_cidrs = bool(options.get("allocate_node_cidrs", True))
        self.cidrs = CidrAllocator(options.get("cluster_cidr", "10.42.0.0/16"),
                                   int(options.get("node_cidr_mask_size", 24)))
        self.clock: Clock = options.get("clock") or (lambda: dt.datetime.now(dt.UTC))

        self.nodes = factory.informer(NODES)
        self.leases = factory.informer(LEASES, namespace=NODE_LEASE_NAMESPACE)
        self.pods = factory.informer(PODS, indexers={"node": node_index})
        self.node_queue = WorkQueue("node-lifecycle")
        self.evict_queue = WorkQueue("taint-eviction")
        self.cidr_queue = WorkQueue("node-ipam")
        self.heartbeats: dict[str, Heartbeat] = {}
        # Subnets handed out whose patch the informer has not shown yet; reused on
        # retry so a node never gets two.
        self._pending_cidr: dict[str, str] = {}
        self._eviction_scheduled: set[str] = set()

        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted)
        add_object_handler(self.leases, self._lease_changed, deletes=False)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- handlers -------------------------------------------------------------------------

    def _observe(self, node: Obj) -> Heartbeat:
        name = (node.get("metadata") or {}).get("name") or ""
        hb = observe_heartbeat(self.heartbeats.get(name), node, self.leases.get(NODE_LEASE_NAMESPACE, name),
                               self.clock())
        self.heartbeats[name] = hb
        return hb

    def _node_added(self, node: Obj) -> None:
        self._observe(node)
        name = node["metadata"]["name"]
        self.node_queue.add(name)
        self.cidr_queue.add(name)
        self._enqueue_pods_of(name)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self._observe(new)
        name = new["metadata"]["name"]
        self.node_queue.add(name)
        if not node_cidrs(new):
            self.cidr_queue.add(name)
        if _noexecute(old) != _noexecute(new):
            self._enqueue_pods_of(name)

    def _node_deleted(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        self.heartbeats.pop(name, None)
        for cidr in node_cidrs(node):
            self.cidrs.release(cidr)
        pending = self._pending_cidr.pop(name, None)
        if pending:
            self.cidrs.release(pending)

    def _lease_changed(self, lease: Obj) -> None:
        name = (lease.get("metadata") or {}).get("name") or ""
        node = self.nodes.get(None, name)
        if node is not None:
            self._observe(node)

    def _enqueue_pods_of(self, node_name: str) -> None:
        for key in self.pods.keys_by_index("node", node_name):
            self.evict_queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        node = self.nodes.get(None, node_name)
        if _noexecute(node) or key_in(self._eviction_scheduled, pod):
            self.evict_queue.add(object_key(pod))
        if node is not None and ready_status(node) == "Unknown":
            self.node_queue.add(node_name)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName") or \
                (old.get("spec") or {}).get("tolerations") != (new.get("spec") or {}).get("tolerations") or \
                condition(old, "Ready") != condition(new, "Ready"):
            self._pod_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self._eviction_scheduled.discard(object_key(pod))

    # -- run ------------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        # Subnets already assigned are known only from the nodes themselves.
        for node in self.nodes.list():
            for cidr in node_cidrs(node):
                self.cidrs.occupy(cidr)

        def serve(queue: WorkQueue, sync: SyncFn, n: int) -> Coroutine[Any, Any, None]:
            # Conflicts are routine (our informer lags our own writes); other failures are news.
            return run_workers(queue, sync, n, queue.name, (409,), expected=(CidrExhausted,), level=logging.INFO,
                               logger=log)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._monitor())
            tg.create_task(serve(self.node_queue, self.sync_node, workers))
            tg.create_task(serve(self.evict_queue, self.sync_pod, workers))
            if self.allocate_cidrs:
                tg.create_task(serve(self.cidr_queue, self.sync_cidr, 1))

    async def _monitor(self) -> None:
        while True:
            try:
                now = self.clock()
                for node in self.nodes.list():
                    hb = self._observe(node)
                    if heartbeat_expired(hb, node, now, self.grace, self.startup_grace) and \
                            unknown_conditions(node, now):
                        self.node_queue.add(node["metadata"]["name"])
            except Exception:  # noqa: BLE001 - the monitor must outlive one bad object
                log.exception("node monitor pass failed")
            await asyncio.sleep(self.monitor_period)

    # -- node health and taints -----------------------------------------------------------

    async def sync_node(self, name: str) -> Result:
        node = self.nodes.get(None, name)
        if node is None:
            return Result.done()
        now = self.clock()
        hb = self._observe(node)
        if heartbeat_expired(hb, node, now, self.grace, self.startup_grace):
            changed = unknown_conditions(node, now)
            if changed:
                was_ready = ready_status(node) == "True"
                node = await self.client.patch(NODES, None, name, {"status": {"conditions": changed}},
                                               patch_type="strategic", subresource="status",
                                               field_manager=COMPONENT)
                if was_ready:
                    await self.client.event(_with_kind(node, "v1", "Node"), "Normal", "NodeNotReady",
                                            f"Node {name} status is now: NodeNotReady", COMPONENT)
        taints = desired_taints(node, now)
        if taints is not None:
            body = copy.deepcopy(node)
            body.setdefault("spec", {})["taints"] = taints
            if not taints:
                body["spec"].pop("taints")
            node = await self.client.update(NODES, None, name, body, field_manager=COMPONENT)
        for pod in pods_to_mark_not_ready(node, self.pods.by_index("node", name)):
            meta = pod["metadata"]
            try:
                await self.client.patch(PODS, meta["namespace"], meta["name"], not_ready_patch(pod, now),
                                        patch_type="strategic", subresource="status", field_manager=COMPONENT)
            except ApiError as e:
                if e.code != 404:
                    raise
        return Result.done()

    # -- NoExecute evictions --------------------------------------------------------------

    async def sync_pod(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        pod = self.pods.get(ns, name)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._eviction_scheduled.discard(key)
            return Result.done()
        node = self.nodes.get(None, (pod.get("spec") or {}).get("nodeName") or "")
        now = self.clock()
        when = eviction_time(pod, _noexecute(node), self.default_toleration_seconds, now) if node else None
        if when is None:
            if key in self._eviction_scheduled:
                self._eviction_scheduled.discard(key)
                await self.client.event(_with_kind(pod, "v1", "Pod"), "Normal", "TaintManagerEviction",
                                        f"Cancelling deletion of Pod {key}", COMPONENT)
            return Result.done()
        if when > now:
            self._eviction_scheduled.add(key)
            return Result.after((when - now).total_seconds())
        self._eviction_scheduled.discard(key)
        await self.client.event(_with_kind(pod, "v1", "Pod"), "Normal", "TaintManagerEviction",
                                f"Marking for deletion Pod {key}", COMPONENT)
        try:
            await self.client.patch(PODS, ns, name, {"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": format_time(now)}]}}, patch_type="strategic", subresource="status",
                field_manager=COMPONENT)
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            log.debug("DisruptionTarget condition for %s not set: %s", key, e)
        try:
            await self.client.delete(PODS, ns, name, preconditions={"uid": pod["metadata"].get("uid", "")})
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        return Result.done()

    # -- pod CIDRs ------------------------------------------------------------------------

    async def sync_cidr(self, name: str) -> Result:
        node = self.nodes.get(None, name)
        if node is None:
            return Result.done()
        if node_cidrs(node):
            self._pending_cidr.pop(name, None)
            return Result.done()
        cidr = self._pending_cidr.get(name) or self.cidrs.allocate()
        if cidr is None:
            await self.client.event(_with_kind(node, "v1", "Node"), "Normal", "CIDRNotAvailable",
                                    f"Node {name} status is now: CIDRNotAvailable", COMPONENT)
            raise CidrExhausted(f"no pod CIDR left in {self.cidrs.network} for node {name}")
        self._pending_cidr[name] = cidr
        try:
            await self.client.patch(NODES, None, name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}},
                                    field_manager=COMPONENT)
        except ApiError as e:
            if e.code == 404:
                self._pending_cidr.pop(name, None)
                self.cidrs.release(cidr)
                return Result.done()
            raise
        return Result.done()
