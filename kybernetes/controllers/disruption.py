"""The disruption controller: keeps every PodDisruptionBudget's status (healthy pods, the
disruptions it allows, evictions approved but not yet carried out) true to its pods.

The decisions are `disruption_plan.plan_budget` (pure). `DisruptionController` is the shell: it
watches budgets, pods and the workloads whose scale a budget is measured against, and writes
the status subresource. The eviction subresource in the API server reads that status.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from kybernetes.api.disruption import budget_selects
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
    Resource,
)
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import EventRecorder
from kybernetes.controllers.disruption_plan import (
    cleared_disruption,
    plan_budget,
    stale_disruption_in,
    workload_scale,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "controllermanager"
PDBS = Resource.for_kind("policy/v1", "PodDisruptionBudget")
_WORKLOADS = {"Deployment": DEPLOYMENTS, "ReplicaSet": REPLICASETS, "ReplicationController": REPLICATIONCONTROLLERS,
              "StatefulSet": STATEFULSETS}


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> Obj:
    return _meta(obj).get("labels") or {}


class DisruptionController:
    NAME = "disruption"

    def __init__(self, client: Client, factory: Informers,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.client = client
        self.clock = clock
        self.queue = WorkQueue(self.NAME)
        # Pods an eviction marked as disruption targets, until they go or the mark is cleared.
        self.stale_queue = WorkQueue("disruption-stale-pods")
        self.pdbs = factory.informer(PDBS)
        self.pods = factory.informer(PODS)
        self.workloads = {kind: factory.informer(res) for kind, res in _WORKLOADS.items()}
        self._record = EventRecorder(client, COMPONENT)
        add_object_handler(self.pdbs, lambda pdb: self.queue.add(object_key(pdb)))
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        for informer in self.workloads.values():
            informer.add_handler(on_update=self._workload_updated)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _enqueue_for(self, namespace: str, labels: Obj | None) -> None:
        for pdb in self.pdbs.by_index("namespace", namespace):
            if labels is None or budget_selects(pdb, labels):
                self.queue.add(object_key(pdb))

    def _pod_changed(self, pod: Obj) -> None:
        self._enqueue_for(_meta(pod).get("namespace") or "", _labels(pod))
        wait = stale_disruption_in(pod, self.clock())
        if wait is not None:
            self.stale_queue.add_after(object_key(pod), wait + 0.05)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_changed(new)
        if _labels(old) != _labels(new):
            self._pod_changed(old)

    def _workload_updated(self, old: Obj, new: Obj) -> None:
        # A new scale changes what percentage budgets expect.
        if (old.get("spec") or {}).get("replicas") != (new.get("spec") or {}).get("replicas"):
            self._enqueue_for(_meta(new).get("namespace") or "", None)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log))
            tg.create_task(run_workers(self.stale_queue, self.sync_stale_pod, 1, self.stale_queue.name, (404, 409),
                                       logger=log))

    async def sync_stale_pod(self, key: str) -> Result:
        """Clear the DisruptionTarget condition of a pod an eviction marked but never deleted."""
        ns, _, name = key.rpartition("/")
        pod = self.pods.get(ns or None, name)
        now = self.clock()
        wait = stale_disruption_in(pod, now) if pod is not None else None
        if pod is None or wait is None:
            return Result.done()
        if wait > 0:
            return Result.after(wait + 0.05)
        # The informer's pod is a trimmed view: only the status is written, from a fresh read.
        fresh = await self.client.get(PODS, ns or None, name)
        if stale_disruption_in(fresh, now) == 0:
            await self.client.update(PODS, ns or None, name, cleared_disruption(fresh, now), subresource="status")
        return Result.done()

    def _workload(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = self.workloads.get(kind)
        return informer.get(namespace, name) if informer is not None else None

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        pdb = self.pdbs.get(ns or None, name)
        if pdb is None:
            return Result.done()
        pdb = {**pdb, "apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}
        now = self.clock()
        plan = plan_budget(pdb, self.pods.by_index("namespace", ns),
                           lambda ref, namespace: workload_scale(ref, namespace, self._workload), now)
        if plan.status is not None:
            for obj, type_, reason, message in plan.events:
                self._record(obj, type_, reason, message)
            await self._write_status(pdb, plan.status)
        if plan.error is not None:
            raise RuntimeError(plan.error)
        return Result.after_or_done(plan.recheck_after)

    async def _write_status(self, pdb: Obj, status: Obj) -> None:
        # Written on the version read: an eviction that took a disruption meanwhile must not be
        # overwritten (the conflict requeues this budget and it is computed again).
        meta = _meta(pdb)
        await self.client.update(PDBS, meta.get("namespace"), meta.get("name") or "", {**pdb, "status": status},
                                 subresource="status")
