"""The scheduler process: feeds the cache and the queue from pod and node informers, runs
`schedule_one` for one pod at a time, assumes the choice at once and binds through
`pods/binding` with a bounded number of bindings in flight; on failure records a
`FailedScheduling` event and the `PodScheduled=False` condition. When preemption chose a
node, the victims get the DisruptionTarget condition and a graceful delete, the pod its
`status.nominatedNodeName`, and it waits in the queue until the victims are gone. Pods
with PersistentVolumeClaims also go through volume binding (`volumebinding`): claim,
volume and class events requeue the pods waiting for them, and before a pod is bound the
chosen static PVs are pre-bound and claims to provision get the selected node."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.pods import pod_is_terminal, pod_key
from kybernetes.api.timefmt import now_rfc3339
from kybernetes.client import Client, Informers
from kybernetes.client.resources import NODES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, Resource
from kybernetes.scheduler.cache import ClusterCache, PodInfo
from kybernetes.scheduler.core import schedule_one
from kybernetes.scheduler.preemption import (
    Budget,
    Candidate,
    budget_of,
    disruption_condition,
    lower_nominated,
)
from kybernetes.scheduler.queue import SchedulingQueue
from kybernetes.scheduler.volumebinding import PodVolumes, VolumeBinder, waiting_on_claim

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_SCHEDULER = "default-scheduler"
PDBS = Resource.for_kind("policy/v1", "PodDisruptionBudget")
STORAGECLASSES = Resource.for_kind("storage.k8s.io/v1", "StorageClass")


def responsible_for(pod: Obj, scheduler_name: str) -> bool:
    """A pod this scheduler must place: unbound, ours, not being deleted, not finished,
    not held back by scheduling gates."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return False
    if (spec.get("schedulerName") or DEFAULT_SCHEDULER) != scheduler_name:
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if spec.get("schedulingGates"):
        return False
    return not pod_is_terminal(pod)


def node_changed_for_scheduling(old: Obj, new: Obj) -> bool:
    """Whether a node update can change a scheduling decision (heartbeats cannot)."""
    if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
        return True
    o_spec, n_spec = old.get("spec") or {}, new.get("spec") or {}
    if o_spec.get("taints") != n_spec.get("taints") or o_spec.get("unschedulable") != n_spec.get("unschedulable"):
        return True
    o_st, n_st = old.get("status") or {}, new.get("status") or {}
    return o_st.get("allocatable") != n_st.get("allocatable") or o_st.get("capacity") != n_st.get("capacity") \
        or o_st.get("images") != n_st.get("images")


def binding_body(pod: Obj, node: str) -> Obj:
    meta = pod.get("metadata") or {}
    md: Obj = {"name": meta.get("name"), "namespace": meta.get("namespace") or "default"}
    if meta.get("uid"):
        md["uid"] = meta["uid"]
    return {"apiVersion": "v1", "kind": "Binding", "metadata": md,
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def scheduled_condition_patch(pod: Obj, message: str, now: str, nominated_node: str | None = None) -> Obj | None:
    """The status patch that sets PodScheduled=False/Unschedulable with `message` (and
    `status.nominatedNodeName` when preemption chose a node), or None when the pod already
    says exactly that (no write for nothing)."""
    status = pod.get("status") or {}
    current = None
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled":
            current = cond
    nominate = nominated_node is not None and status.get("nominatedNodeName") != nominated_node
    if current is not None and current.get("status") == "False" and current.get("reason") == "Unschedulable" \
            and current.get("message") == message and not nominate:
        return None
    transition = now
    if current is not None and current.get("status") == "False" and current.get("lastTransitionTime"):
        transition = current["lastTransitionTime"]
    patch: Obj = {"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": None, "lastTransitionTime": transition,
    }]}}
    if nominate:
        patch["status"]["nominatedNodeName"] = nominated_node
    return patch


def nominated_node_of(pod: Obj) -> str:
    return (pod.get("status") or {}).get("nominatedNodeName") or ""


def _as_pod(pod: Obj) -> Obj:
    # Objects from a list carry no kind; the event's involvedObject needs one.
    if pod.get("kind"):
        return pod
    return {**pod, "kind": "Pod", "apiVersion": "v1"}


class Scheduler:
    """`await Scheduler(client, factory).run()`; the caller starts the informer factory
    (as for controllers). `max_inflight` bounds concurrent bindings."""

    def __init__(self, client: Client, factory: Informers, scheduler_name: str = DEFAULT_SCHEDULER,
                 *, max_inflight: int = 64, percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.factory = factory
        self.name = scheduler_name
        self.cache = ClusterCache()
        self.queue = SchedulingQueue(clock)
        self.rng = rng or random.Random()
        self.percentage = percentage_of_nodes_to_score
        self.max_inflight = max_inflight
        self.flush_interval = 0.5
        self.scheduled = 0
        self.failed = 0
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.preempted = 0
        self.pods = factory.informer(PODS)
        self.nodes = factory.informer(NODES)
        self.pdbs = factory.informer(PDBS)
        self._budgets: list[Budget] | None = None
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.pdbs.add_handler(self._pdb_changed, lambda _old, new: self._pdb_changed(new), self._pdb_changed)
        self.volumes = VolumeBinder(factory.informer(PERSISTENTVOLUMECLAIMS), factory.informer(PERSISTENTVOLUMES),
                                    factory.informer(STORAGECLASSES))
        self.volumes.claims.add_handler(self._claim_changed, lambda _old, new: self._claim_changed(new),
                                        self.volumes.claim_deleted)
        self.volumes.volumes.add_handler(self._volume_changed, lambda _old, new: self._volume_changed(new),
                                         self.volumes.volume_deleted)
        self.volumes.classes.add_handler(self._class_changed, lambda _old, new: self._class_changed(new))

    def budgets(self) -> list[Budget]:
        """The PodDisruptionBudgets as preemption reads them, parsed once per change."""
        if self._budgets is None:
            self._budgets = [budget_of(pdb) for pdb in self.pdbs.list()]
        return self._budgets

    # -- informer handlers ---------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if node_changed_for_scheduling(old, new):
            self.cache.set_node(new)
            self.queue.move_all()

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node((node.get("metadata") or {}).get("name") or "")

    def _pdb_changed(self, _pdb: Obj) -> None:
        self._budgets = None

    # Upstream's VolumeBinding events: any claim, volume or class added or updated may help
    # pods waiting for volumes (a claim event only the pods using it).

    def _claim_changed(self, claim: Obj) -> None:
        self.volumes.claim_changed(claim)
        self.queue.move_volume_waiting(waiting_on_claim(claim))

    def _volume_changed(self, pv: Obj) -> None:
        self.volumes.volume_changed(pv)
        self.queue.move_volume_waiting()

    def _class_changed(self, _sc: Obj) -> None:
        self.queue.move_volume_waiting()

    def _track_nomination(self, pod: Obj) -> None:
        """Follow status.nominatedNodeName of unbound pods (ours or another scheduler's)."""
        node = nominated_node_of(pod)
        key = pod_key(pod)
        if node and not (pod.get("spec") or {}).get("nodeName") and not pod_is_terminal(pod):
            if self.cache.nominated_node.get(key) != node:
                self.cache.nominate(PodInfo(pod), node)
        elif key in self.cache.nominated_node and not node:
            self.cache.unnominate(key)

    def _pod_added(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.add_pod(pod)
            self._assigned_pod_changed()
        else:
            if nominated_node_of(pod):
                self._track_nomination(pod)
            if responsible_for(pod, self.name):
                self.queue.add(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = pod_key(new)
        if (new.get("spec") or {}).get("nodeName"):
            if not (old.get("spec") or {}).get("nodeName"):
                self.queue.delete(key)
                self.cache.unnominate(key)
                self.cache.confirm(new)
                self._assigned_pod_changed()
                return
            was_terminal = pod_is_terminal(old)
            self.cache.update_pod(old, new)
            if pod_is_terminal(new) and not was_terminal:
                self.queue.move_all()
            return
        if nominated_node_of(new) or key in self.cache.nominated_node:
            self._track_nomination(new)
        if self.cache.is_assumed(key):
            return  # a binding is in flight; its outcome decides
        if responsible_for(new, self.name):
            self.queue.add(new)
        else:
            self.queue.delete(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        self.cache.unnominate(key)
        if key in self.cache.pods:
            self.cache.remove_pod(key)
            self.queue.move_all()

    def _assigned_pod_changed(self) -> None:
        # A new pod on a node can only help pods that want to be near others.
        self.queue.move_all(only_pod_affinity=True)

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled; bindings in flight are awaited on the way out."""
        await self.factory.wait_synced()
        flusher = asyncio.create_task(self._flush_loop())
        try:
            while True:
                await self._slots.acquire()
                try:
                    pod, attempts = await self.queue.pop()
                except BaseException:
                    self._slots.release()
                    raise
                try:
                    self._schedule(pod, attempts)
                except Exception:  # noqa: BLE001 - one pod's surprise must not stop scheduling
                    log.exception("scheduling %s failed", pod_key(pod))
                    self._slots.release()
                    self.queue.backoff(pod)
                # Let informer events and binding responses in between decisions.
                await asyncio.sleep(0)
        finally:
            flusher.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(flusher, *self._tasks, return_exceptions=True)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.queue.flush()

    def _schedule(self, pod: Obj, attempts: int) -> None:
        key = pod_key(pod)
        latest = self.pods.get_by_key(key)
        if latest is None or not responsible_for(latest, self.name) or self.cache.is_assumed(key):
            self.queue.done(key)
            self._slots.release()
            return
        info = PodInfo(latest)
        volumes = self.volumes.prefilter(info) if info.claims else None
        result = schedule_one(info, self.cache, self.rng, self.percentage, self.budgets(), volumes)
        if result.node is None:
            self._slots.release()
            self.failed += 1
            self.queue.unschedulable(latest, self.queue.cycle, volumes=bool(info.claims))
            log.info("pod %s unschedulable: %s", key, result.message)
            chosen = result.preemption
            if chosen is not None:
                self._nominate(info, chosen)
            self._spawn(self._record_failure(latest, result.message, chosen.node if chosen else None))
            return
        self.cache.unnominate(key)
        self.cache.assume(info, result.node)
        writes = None
        if volumes is not None:
            node = self.cache.nodes[result.node].node
            writes = self.volumes.assume(volumes, node) if node is not None else None
        self._spawn(self._bind(latest, result.node, writes))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prebind(self, pod: Obj, writes: PodVolumes) -> bool:
        """The VolumeBinding PreBind writes; on failure the reservation is undone, the pod
        retried after its backoff, and the event says why."""
        try:
            await self.volumes.bind(self.client, writes)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a taken PV (409) or network trouble: retry the pod
            self.volumes.revert(writes)
            self.cache.forget(pod_key(pod))
            log.info("pre-binding volumes of %s failed: %s", pod_key(pod), e)
            latest = self.pods.get_by_key(pod_key(pod))
            if latest is not None and responsible_for(latest, self.name):
                self.queue.backoff(latest)
            else:
                self.queue.done(pod_key(pod))
            why = e.message if isinstance(e, ApiError) else str(e)
            self._spawn(self.client.event(_as_pod(pod), "Warning", "FailedScheduling",
                                          f'running PreBind plugin "VolumeBinding": {why}', self.name))
            return False

    async def _bind(self, pod: Obj, node: str, writes: PodVolumes | None = None) -> None:
        key = pod_key(pod)
        meta = pod.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name") or ""
        try:
            if writes is not None and not await self._prebind(pod, writes):
                return
            await self.client.create_subresource(PODS, ns, name, "binding", binding_body(pod, node))
        except ApiError as e:
            self.cache.forget(key)
            if e.code in (404, 409):
                # Gone, bound by someone else, or replaced by a namesake: what the
                # informer holds now decides whether it still needs a node.
                latest = self.pods.get_by_key(key)
                if latest is not None and responsible_for(latest, self.name):
                    self.queue.backoff(latest)
                else:
                    self.queue.done(key)
                return
            log.warning("binding %s to %s failed: %s", key, node, e)
            self.queue.backoff(pod)
            self.queue.move_all()
            await self.client.event(_as_pod(pod), "Warning", "FailedScheduling",
                                    f"Binding rejected: {e.message}", self.name)
            return
        except asyncio.CancelledError:
            self.cache.forget(key)
            if writes is not None:
                self.volumes.revert(writes)
            raise
        except Exception as e:  # noqa: BLE001 - network trouble: retry later
            log.warning("binding %s to %s failed: %s", key, node, e)
            self.cache.forget(key)
            self.queue.backoff(pod)
            return
        finally:
            self._slots.release()
        self.scheduled += 1
        self.queue.done(key)
        await self.client.event(_as_pod(pod), "Normal", "Scheduled",
                                f"Successfully assigned {ns}/{name} to {node}", self.name)

    # -- preemption -----------------------------------------------------------------------

    def _nominate(self, info: PodInfo, chosen: Candidate) -> None:
        """Reserve the node for the preemptor at once, take the room from lower-priority
        pods nominated there, and evict the victims in the background."""
        self.preempted += 1
        for other in lower_nominated(info, self.cache, chosen.node):
            self.cache.unnominate(other.key)
            self._spawn(self._clear_nomination(other.pod))
        self.cache.nominate(info, chosen.node)
        log.info("pod %s preempts %s on %s", info.key, ", ".join(v.key for v in chosen.victims), chosen.node)
        for victim in chosen.victims:
            self._spawn(self._evict(info.pod, victim.pod, chosen.node))

    async def _evict(self, preemptor: Obj, victim: Obj, node: str) -> None:
        """As upstream: the DisruptionTarget condition first, then a graceful delete."""
        meta = victim.get("metadata") or {}
        ns, name = meta.get("namespace") or "default", meta.get("name") or ""
        condition = disruption_condition((preemptor.get("spec") or {}).get("schedulerName") or self.name,
                                         now_rfc3339())
        try:
            await self.client.patch(PODS, ns, name, {"status": {"conditions": [condition]}}, "strategic",
                                    subresource="status")
            await self.client.delete(PODS, ns, name, preconditions={"uid": meta["uid"]} if meta.get("uid") else None)
        except ApiError as e:
            if e.code not in (404, 409):
                log.warning("could not preempt %s: %s", pod_key(victim), e)
            return
        except Exception as e:  # noqa: BLE001 - the preemptor's next attempt looks again
            log.warning("could not preempt %s: %s", pod_key(victim), e)
            return
        pmeta = preemptor.get("metadata") or {}
        await self.client.event(_as_pod(victim), "Normal", "Preempted",
                                f"Preempted by {pmeta.get('namespace') or 'default'}/{pmeta.get('name')} on node "
                                f"{node}", self.name)

    async def _clear_nomination(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        try:
            await self.client.patch(PODS, meta.get("namespace") or "default", meta.get("name") or "",
                                    {"status": {"nominatedNodeName": None}}, "merge", subresource="status")
        except Exception as e:  # noqa: BLE001 - best effort, as upstream
            log.warning("could not clear the nomination of %s: %s", pod_key(pod), e)

    async def _record_failure(self, pod: Obj, message: str, nominated_node: str | None = None) -> None:
        meta = pod.get("metadata") or {}
        await self.client.event(_as_pod(pod), "Warning", "FailedScheduling", message, self.name)
        patch = scheduled_condition_patch(pod, message, now_rfc3339(), nominated_node)
        if patch is None:
            return
        try:
            await self.client.patch(PODS, meta.get("namespace") or "default", meta.get("name") or "", patch,
                                    "strategic", subresource="status")
        except ApiError as e:
            if e.code != 404:
                log.warning("could not set PodScheduled on %s: %s", pod_key(pod), e)
        except Exception as e:  # noqa: BLE001 - best effort; the next attempt writes again
            log.warning("could not set PodScheduled on %s: %s", pod_key(pod), e)

