"""The simulated kubelets: many fake nodes served by one asyncio loop.

`SimulatedNodes` registers N Node objects, keeps one Lease per node fresh in
`kube-node-lease`, posts the nodes' Ready condition now and then, and walks
pods bound to its nodes through start (Running/Ready), completion
(run-to-completion pods) and final deletion. All delayed work goes through
timer heaps drained by fixed pools of workers (one lane for node heartbeats,
one for pods), so the cost is proportional to the work due, not to the number
of nodes or pods, and a pod backlog cannot starve the leases.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Hashable
from typing import Any

from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.localpath import pod_claims
from kybernetes.client import ApiError, Client, Informers
from kybernetes.client.resources import LEASES, NODES, PODS
from kybernetes.simnodes import model
from kybernetes.simnodes.storage import SimLocalPath
from kybernetes.simnodes.timers import TimerHeap

log = logging.getLogger(__name__)

Obj = dict[str, Any]
FIELD_MANAGER = "kyb-sim-nodes"


def _node_index(pod: Obj) -> list[str]:
    name = model.pod_node(pod)
    return [name] if name else []


def _claim_index(pod: Obj) -> list[str]:
    ns = (pod.get("metadata") or {}).get("namespace", "")
    return [f"{ns}/{claim}" for claim in pod_claims(pod)]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Lane:
    """A timer heap with its own dispatcher and workers. Node heartbeats and pod
    steps run in separate lanes so a backlog of pod work never delays leases."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self.timers = TimerHeap()
        self.wake = asyncio.Event()
        self.target = float("inf")
        self.queue: asyncio.Queue[tuple[Hashable, Any]] | None = None


class SimulatedNodes:
    """N fake nodes and the kubelet behaviour of each, against the public API.

    Like the controllers, the constructor only obtains informers from `factory`;
    the caller starts the factory and waits for it to sync, then awaits `run()`.
    """

    def __init__(self, client: Client, factory: Informers, count: int, name_prefix: str = "sim-node-",
                 cpu: str = "32", memory: str = "256Gi", pods: int = 110, labels: dict[str, str] | None = None,
                 taints: list[Obj] | None = None, start_delay: float = 1.0, lease_interval: float = 10.0, *,
                 node_status_interval: float = 60.0, job_duration: float | None = 2.0, delete_delay: float = 0.5,
                 jitter: float = 0.2, max_inflight: int = 32, first_index: int = 0, pod_field_selector: str = "",
                 seed: int | None = None) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        self.client = client
        self.template = model.NodeTemplate(cpu=cpu, memory=memory, pods=pods, labels=dict(labels or {}),
                                           taints=list(taints or []))
        self.start_delay = start_delay
        self.lease_interval = lease_interval
        self.node_status_interval = node_status_interval
        self.job_duration = job_duration
        self.delete_delay = delete_delay
        self.jitter = jitter
        self.max_inflight = max(1, max_inflight)
        self.names = [model.node_name(name_prefix, first_index + i) for i in range(count)]
        self._index = {n: first_index + i for i, n in enumerate(self.names)}
        self._lease_phase = dict(zip(self.names, model.spread_offsets(count, lease_interval), strict=True))
        self._status_phase = dict(zip(self.names, model.spread_offsets(count, node_status_interval), strict=True))
        self._rnd = random.Random(seed)

        self._pods = factory.informer(PODS, field_selector=pod_field_selector, indexers={"node": _node_index,
                                                                                        "claim": _claim_index})
        self._nodes = factory.informer(NODES)
        self._leases = factory.informer(LEASES, namespace=model.LEASE_NAMESPACE)
        self._pods.add_handler(on_add=self._on_pod_event, on_update=lambda _old, new: self._on_pod_event(new),
                               on_delete=self._forget_pod)
        self._nodes.add_handler(on_add=self._on_node_event, on_update=lambda _old, new: self._on_node_event(new),
                                on_delete=self._on_node_deleted)
        self._leases.add_handler(on_delete=self._on_lease_deleted)

        self._active: set[str] = set()
        self._storage = SimLocalPath(client, factory, self._active, on_claim=self._on_claim_event)
        self._paused: set[str] = set()
        self._paused_by_annotation: set[str] = set()
        self._uids: dict[str, str] = {}
        self._lease_known: set[str] = set()
        # (namespace, name) -> (resourceVersion the write was based on, object the server returned):
        # our own writes, until the informer has caught up past the copy they replaced.
        self._written: dict[tuple[str, str], tuple[str, Obj]] = {}
        self._pools: dict[str, model.PodIpPool] = {}
        self._pod_lane = _Lane("pods", self.max_inflight)
        # Renewals must keep up even when every request waits on a busy server.
        self._node_lane = _Lane("nodes", max(4, self.max_inflight))
        self._inflight: set[Hashable] = set()
        self._attempts: dict[Hashable, int] = {}
        self._stopping = False
        self.registered = asyncio.Event()
        if count == 0:
            self.registered.set()
        self.stats: dict[str, int] = {"registered": 0, "started": 0, "completed": 0, "deleted": 0,
                                      "lease_renewals": 0, "status_posts": 0, "conflicts": 0, "errors": 0}

    # -- public controls --------------------------------------------------------------------

    async def run(self) -> None:
        """Register the nodes and serve them until cancelled."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for name in self.names:
            self._schedule(("register", name), now)
        tasks = [loop.create_task(self._storage.run(), name="simnodes-storage")]
        for lane in (self._node_lane, self._pod_lane):
            lane.queue = asyncio.Queue(maxsize=lane.workers * 2)
            tasks.append(loop.create_task(self._dispatch(lane), name=f"simnodes-{lane.name}-dispatch"))
            tasks += [loop.create_task(self._worker(lane), name=f"simnodes-{lane.name}-{i}")
                      for i in range(lane.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            await cancel_and_wait(tasks)

    async def wait_registered(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.registered.wait(), timeout)

    def pause_heartbeats(self, node_name: str) -> None:
        """Act like a node whose kubelet died: no lease renewals, no status, no pod progress."""
        self._require(node_name)
        self._paused.add(node_name)
        for kind in ("lease", "status"):
            self._node_lane.timers.cancel((kind, node_name))

    def resume_heartbeats(self, node_name: str) -> None:
        self._require(node_name)
        if node_name not in self._paused:
            return
        self._paused.discard(node_name)
        self._paused_by_annotation.discard(node_name)
        if node_name in self._active:
            now = asyncio.get_running_loop().time()
            self._schedule(("lease", node_name), now)
            self._schedule(("status", node_name), now)
            for pod in self._pods.by_index("node", node_name):
                self._observe_pod(pod)

    def is_paused(self, node_name: str) -> bool:
        return node_name in self._paused

    async def delete_nodes(self) -> None:
        """Remove this simulator's Node and Lease objects (for `--cleanup`)."""
        self._stopping = True
        sem = asyncio.Semaphore(self.max_inflight)

        async def one(name: str) -> None:
            async with sem:
                for res, ns in ((NODES, None), (LEASES, model.LEASE_NAMESPACE)):
                    try:
                        await self.client.delete(res, ns, name)
                    except ApiError as e:
                        if e.code != 404:
                            log.warning("deleting %s %s: %s", res.kind, name, e)

        await asyncio.gather(*(one(n) for n in self.names))
        self._active.clear()

    # -- informer handlers (synchronous, on the loop) -----------------------------------------

    def _on_pod_event(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        fresh = self._freshest((meta.get("namespace", ""), meta.get("name", "")), pod)
        self._observe_pod(fresh)

    def _freshest(self, key: tuple[str, str], cached: Obj) -> Obj:
        """The informer's copy, unless it is still the one our last write replaced."""
        written = self._written.get(key)
        if written is None:
            return cached
        base_rv, obj = written
        if (cached.get("metadata") or {}).get("resourceVersion") == base_rv:
            return obj
        # The watch is ordered, so any other version is our write or something after it.
        del self._written[key]
        return cached

    def _observe_pod(self, pod: Obj) -> None:
        node = model.pod_node(pod)
        if node not in self._active:
            return
        meta = pod.get("metadata") or {}
        key = ("pod", meta.get("namespace"), meta.get("name"))
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            self._pool(node).reserve(meta.get("uid", ""), ip)
        action = model.pod_action(pod, self.job_duration is not None)
        # A kubelet starts no container before the pod's claims are bound and mounted.
        if action is None or (action == model.START and not self._storage.claims_bound(pod)):
            self._pod_lane.timers.cancel(key)
            return
        delay = model.action_delay(action, pod, _utcnow(), self.start_delay, self.job_duration or 0.0,
                                   self.delete_delay, self.jitter, self._rnd)
        self._schedule(key, asyncio.get_running_loop().time() + delay, action, keep_earlier=True)

    def _on_claim_event(self, pvc: Obj) -> None:
        meta = pvc.get("metadata") or {}
        for pod in self._pods.by_index("claim", f"{meta.get('namespace', '')}/{meta.get('name', '')}"):
            self._on_pod_event(pod)

    def _forget_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        self._pod_lane.timers.cancel(("pod", meta.get("namespace"), meta.get("name")))
        self._written.pop((meta.get("namespace", ""), meta.get("name", "")), None)
        pool = self._pools.get(model.pod_node(pod))
        if pool is not None:
            pool.release(meta.get("uid", ""))

    def _on_node_event(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if name not in self._index:
            return
        if model.paused_by_annotation(node):
            if name not in self._paused:
                log.info("heartbeats of %s paused by annotation", name)
                self.pause_heartbeats(name)
                self._paused_by_annotation.add(name)
        elif name in self._paused_by_annotation:
            log.info("heartbeats of %s resumed by annotation", name)
            self._paused_by_annotation.discard(name)
            self.resume_heartbeats(name)

    def _on_node_deleted(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name", "")
        if name in self._active and not self._stopping:
            # Someone removed the node (a test, `kubectl delete node`): stop serving it
            # rather than fighting the deletion, as a decommissioned kubelet would.
            log.info("simulated node %s was deleted; no longer serving it", name)
            self._active.discard(name)
            for kind in ("lease", "status"):
                self._node_lane.timers.cancel((kind, name))

    def _on_lease_deleted(self, lease: Obj) -> None:
        name = (lease.get("metadata") or {}).get("name", "")
        self._lease_known.discard(name)
        if name in self._active and name not in self._paused and not self._stopping:
            self._schedule(("lease", name), asyncio.get_running_loop().time())

    # -- scheduling ---------------------------------------------------------------------------

    def _require(self, node_name: str) -> None:
        if node_name not in self._index:
            raise KeyError(f"{node_name} is not a node of this simulator")

    def _schedule(self, key: Hashable, due: float, payload: Any = None, keep_earlier: bool = False) -> None:
        assert isinstance(key, tuple)
        lane = self._pod_lane if key[0] == "pod" else self._node_lane
        if lane.timers.schedule(key, due, payload, keep_earlier) and due < lane.target:
            lane.wake.set()

    async def _dispatch(self, lane: _Lane) -> None:
        loop = asyncio.get_running_loop()
        assert lane.queue is not None
        while True:
            for item in lane.timers.pop_due(loop.time()):
                # Blocking here when the workers are saturated is the backpressure:
                # later deadlines simply wait in the heap.
                await lane.queue.put(item)
            nxt = lane.timers.next_due()
            lane.wake.clear()
            lane.target = nxt if nxt is not None else float("inf")
            timeout = None if nxt is None else max(0.0, nxt - loop.time())
            if timeout == 0.0:
                continue
            try:
                await asyncio.wait_for(lane.wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _worker(self, lane: _Lane) -> None:
        assert lane.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            key, payload = await lane.queue.get()
            if key in self._inflight:
                # The same object is being handled; look again once that finishes.
                self._schedule(key, loop.time() + 0.05, payload, keep_earlier=True)
                continue
            self._inflight.add(key)
            try:
                await self._execute(key, payload)
                self._attempts.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a failed step is retried, never fatal
                n = self._attempts.get(key, 0) + 1
                self._attempts[key] = n
                if isinstance(e, ApiError) and e.code == 409:
                    self.stats["conflicts"] += 1
                else:
                    self.stats["errors"] += 1
                    log.log(logging.WARNING if n >= 3 else logging.DEBUG, "simnodes %s: %s (attempt %d)",
                            key, e, n)
                self._schedule(key, loop.time() + min(0.25 * 2 ** (n - 1), 30.0), payload, keep_earlier=True)
            finally:
                self._inflight.discard(key)

    async def _execute(self, key: Hashable, payload: Any) -> None:
        assert isinstance(key, tuple)
        kind = key[0]
        if kind == "pod":
            await self._pod_step(key[1], key[2], payload)
        elif kind == "lease":
            await self._renew_lease(key[1])
        elif kind == "status":
            await self._post_status(key[1])
        elif kind == "register":
            await self._register(key[1])

    # -- nodes --------------------------------------------------------------------------------

    async def _register(self, name: str) -> None:
        if self._stopping:
            return
        now = model.rfc3339(_utcnow())
        existing = self._nodes.get(None, name)
        if existing is None:
            try:
                existing = await self.client.create(NODES, None, model.build_node(name, self._index[name],
                                                                                  self.template, now),
                                                    field_manager=FIELD_MANAGER)
            except ApiError as e:
                if e.code != 409:
                    raise
                existing = await self.client.get(NODES, None, name)
                await self._refresh_registration(name, existing, now)
        elif name not in self._paused:
            # A node left by an earlier run: take it over and report fresh status.
            await self._refresh_registration(name, existing, now)
        self._uids[name] = (existing.get("metadata") or {}).get("uid", "")
        self._active.add(name)
        self.stats["registered"] += 1
        if self.stats["registered"] >= len(self.names):
            self.registered.set()
        loop = asyncio.get_running_loop()
        self._schedule(("lease", name), loop.time())
        self._schedule(("status", name),
                       model.next_periodic(loop.time(), self._status_phase[name] + loop.time(),
                                           self.node_status_interval))
        for pod in self._pods.by_index("node", name):
            self._observe_pod(pod)

    async def _refresh_registration(self, name: str, node: Obj, now: str) -> None:
        fresh = model.build_node(name, self._index[name], self.template, now)
        status = dict(fresh["status"])
        status["conditions"] = model.node_conditions(now, (node.get("status") or {}).get("conditions"))
        await self.client.patch(NODES, None, name, {"status": status}, patch_type="strategic",
                                subresource="status", field_manager=FIELD_MANAGER)

    async def _post_status(self, name: str) -> None:
        if name not in self._active or name in self._paused:
            return
        node = self._nodes.get(None, name)
        now = model.rfc3339(_utcnow())
        conditions = model.node_conditions(now, ((node or {}).get("status") or {}).get("conditions"))
        try:
            await self.client.patch(NODES, None, name, {"status": {"conditions": conditions}},
                                    patch_type="strategic", subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404:
                self._on_node_deleted({"metadata": {"name": name}})
                return
            raise
        self.stats["status_posts"] += 1
        loop = asyncio.get_running_loop()
        self._schedule(("status", name), loop.time() + self.node_status_interval)

    async def _renew_lease(self, name: str) -> None:
        if name not in self._active or name in self._paused:
            return
        now = model.micro_time(_utcnow())
        if name not in self._lease_known and self._leases.get(model.LEASE_NAMESPACE, name) is None:
            try:
                await self.client.create(LEASES, model.LEASE_NAMESPACE,
                                         model.build_lease(name, self._uids.get(name, ""), now),
                                         field_manager=FIELD_MANAGER)
            except ApiError as e:
                if e.code != 409:
                    raise
                await self._patch_lease(name, now)
        else:
            try:
                await self._patch_lease(name, now)
            except ApiError as e:
                if e.code != 404:
                    raise
                self._lease_known.discard(name)
                await self.client.create(LEASES, model.LEASE_NAMESPACE,
                                         model.build_lease(name, self._uids.get(name, ""), now),
                                         field_manager=FIELD_MANAGER)
        self._lease_known.add(name)
        self.stats["lease_renewals"] += 1
        loop = asyncio.get_running_loop()
        # Renewals keep their per-node phase so load stays spread over the interval.
        self._schedule(("lease", name), model.next_periodic(loop.time(), self._lease_phase[name],
                                                            self.lease_interval))

    async def _patch_lease(self, name: str, now: str) -> None:
        await self.client.patch(LEASES, model.LEASE_NAMESPACE, name, model.lease_renewal(name, now),
                                patch_type="merge", field_manager=FIELD_MANAGER)

    # -- pods ---------------------------------------------------------------------------------

    def _pool(self, node: str) -> model.PodIpPool:
        pool = self._pools.get(node)
        cidr = model.node_pod_cidr(self._nodes.get(None, node))
        if not cidr:
            if pool is not None:
                return pool
            cidr = model.fallback_pod_cidr(self._index[node])
        if pool is None or pool.cidr != cidr:
            pool = model.PodIpPool(cidr)
            self._pools[node] = pool
        return pool

    async def _pod_step(self, namespace: str, name: str, action: str) -> None:
        pod = self._pods.get(namespace, name)
        if pod is None:
            return
        pod = self._freshest((namespace, name), pod)
        node = model.pod_node(pod)
        if node not in self._active or node in self._paused:
            return
        current = model.pod_action(pod, self.job_duration is not None)
        if current != action:
            self._observe_pod(pod)
            return
        meta = pod["metadata"]
        uid = meta.get("uid", "")
        if action == model.FINISH_DELETE:
            try:
                await self.client.delete(PODS, namespace, name, grace_period_seconds=0,
                                         preconditions={"uid": uid} if uid else None)
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
                return
            self.stats["deleted"] += 1
            return
        now = model.rfc3339(_utcnow())
        if action == model.START:
            ip = self._pool(node).allocate(uid)
            if ip is None:
                raise RuntimeError(f"no free pod IP on {node}")
            host_ip = model.node_internal_ip(self._index[node])
            status = model.running_pod_status(pod, host_ip, ip, now, lambda: f"{self._rnd.getrandbits(256):064x}")
        elif action == model.RESIZE:
            status = model.resized_pod_status(pod)
        else:
            status = model.succeeded_pod_status(pod, now)
        # The resourceVersion pins the write to the copy the status was computed
        # from; a conflict means newer state exists and the step is re-decided.
        body = {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": status}
        try:
            result = await self.client.patch(PODS, namespace, name, body, patch_type="merge",
                                             subresource="status", field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code == 404:
                return
            raise
        if self._pods.get(namespace, name) is not None:
            self._written[(namespace, name)] = (meta.get("resourceVersion", ""), result)
        if action == model.START:
            self.stats["started"] += 1
        elif action == model.COMPLETE:
            self.stats["completed"] += 1
            self._pool(node).release(uid)
        self._observe_pod(result)
