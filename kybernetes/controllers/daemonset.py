"""The DaemonSet controller: one pod of a DaemonSet on every node that should run it,
placed through the scheduler (each pod pinned to its node by required node affinity),
rolled forward by RollingUpdate or OnDelete, with its template history kept in
ControllerRevisions for `kubectl rollout history|undo`, and its state in the status.

The decisions are in `daemonset_plan` (pure). `DaemonSetController` is the shell: it
watches DaemonSets, nodes, pods and ControllerRevisions, keeps the revision history,
claims pods, creates and deletes them in slow-start batches under expectations, and
writes the status subresource.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.api.pods import pod_is_terminating
from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import (
    EventRecorder,
    PodOwnerShell,
    apply_claim,
    bump_collision_count,
    claim_revisions,
    delete_quietly,
    first_error,
    write_status,
)
from kybernetes.controllers.daemonset_plan import (
    BURST_REPLICAS,
    HASH_LABEL,
    Eligibility,
    FailedPodBackoff,
    History,
    claim_pods,
    current_hash,
    dedup_relabels,
    new_daemon_pod,
    plan_daemonset,
    plan_history,
    revision_matches,
    selects_everything,
    status_changed,
)
from kybernetes.controllers.podutil import orphan_index
from kybernetes.controllers.replicaset import EXPECTATIONS_TTL, Expectations, slow_start_batch

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "daemonset-controller"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _with_kind(ds: Obj) -> Obj:
    return {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}


def _node_placement(node: Mapping[str, Any]) -> tuple[Any, ...]:
    # What decides whether a daemon belongs on a node; heartbeats change none of it.
    spec = node.get("spec") or {}
    return (_meta(node).get("labels"), spec.get("taints"), spec.get("unschedulable"))


class DaemonSetController(PodOwnerShell):
    owner_kind = "DaemonSet"

    def __init__(self, client: Client, factory: Informers, *, burst: int = BURST_REPLICAS,
                 expectations_ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.component = COMPONENT
        self.burst = burst
        self.clock = clock
        self.queue = WorkQueue("daemonset")
        self.expectations = Expectations(expectations_ttl)
        self.backoff = FailedPodBackoff()
        self.daemonsets = self.owners = factory.informer(DAEMONSETS)
        self.nodes = factory.informer(NODES)
        self.pods = factory.informer(PODS, indexers={"orphan": orphan_index})
        self.revisions = factory.informer(CONTROLLERREVISIONS, indexers={"orphan": orphan_index})
        self._record = EventRecorder(client, COMPONENT)
        self.daemonsets.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                    on_delete=self._owner_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated,
                               on_delete=self._node_changed)
        self.revisions.add_handler(on_add=self._owned_changed, on_update=lambda old, new: self._owned_changed(new),
                                   on_delete=self._owned_changed)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_is_terminating(new):
            self._pod_deleted(new)
        else:
            self._pod_moved(old, new)

    def _node_changed(self, node: Obj) -> None:
        for ds in self.daemonsets.list():
            self._enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _node_placement(old) == _node_placement(new):
            return
        for ds in self.daemonsets.list():
            rules = Eligibility.of(ds)
            if rules.check(old) != rules.check(new):
                self._enqueue(ds)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "daemonset", (404, 409, 422), logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        cached = self.daemonsets.get(ns or None, name)
        if cached is None:
            self.expectations.forget(key)
            return Result.done()
        ds = _with_kind(cached)
        if selects_everything(ds):
            self._record(ds, "Warning", "SelectingAll",
                         "This daemon set is selecting all pods. A non-empty selector is required.")
            return Result.done()
        if _meta(ds).get("deletionTimestamp"):
            return Result.done()
        pods = [*self.pods.by_index("owner", _meta(ds).get("uid") or ""), *self.pods.by_index("orphan", ns)]
        revisions = await claim_revisions(self.client, DAEMONSETS, ds, self.revisions, COMPONENT)
        history = plan_history(ds, revisions)
        current = await self._keep_history(ds, history, pods)
        hash_ = current_hash(current)
        nodes = self.nodes.list()
        now = dt.datetime.now(dt.UTC)
        clock = self.clock()
        self.backoff.gc(clock)
        plan = plan_daemonset(ds, nodes, pods, hash_, history.old, now, self.backoff, clock,
                              expectations_satisfied=self.expectations.satisfied(key), burst=self.burst)
        await apply_claim(self.client, DAEMONSETS, ds, plan.claim.adopt, plan.claim.release, COMPONENT)
        for type_, reason, message in plan.sync.events:
            self._record(ds, type_, reason, message)
        error: BaseException | None = None
        if plan.sync.create_on or plan.sync.delete:
            error = await self._sync_nodes(ds, key, plan.sync.create_on, plan.sync.delete, hash_)
        for rev in plan.prune:
            await delete_quietly(self.client, CONTROLLERREVISIONS, ns, rev)
        if status_changed(ds.get("status"), plan.status):
            await write_status(self.client, DAEMONSETS, ds, plan.status)
        return self._finish(key, error, plan.sync.requeue_after)

    # -- history -----------------------------------------------------------------------

    async def _keep_history(self, ds: Obj, history: History, pods: list[Obj]) -> Obj:
        """The current revision, created or renumbered as needed; duplicates folded into it."""
        ns = _meta(ds).get("namespace")
        for rev in history.label:
            await self.client.patch(CONTROLLERREVISIONS, ns, _name(rev),
                                    {"metadata": {"labels": {HASH_LABEL: _name(rev)}}}, "merge")
        if history.create is not None:
            return await self._snapshot(ds, history.create)
        current = history.current
        assert current is not None
        if history.duplicates:
            keep = current_hash(current)
            claim = claim_pods(ds, pods)
            for pod in dedup_relabels(claim, history.duplicates, keep):
                await self.client.patch(PODS, ns, _name(pod), {"metadata": {"labels": {HASH_LABEL: keep}}},
                                        "merge")
            for rev in history.duplicates:
                await delete_quietly(self.client, CONTROLLERREVISIONS, ns, rev)
        if history.renumber_to is not None:
            current = await self.client.patch(CONTROLLERREVISIONS, ns, _name(current),
                                              {"revision": history.renumber_to}, "merge")
        return current

    async def _snapshot(self, ds: Obj, revision: Obj) -> Obj:
        ns = _meta(ds).get("namespace")
        try:
            return await self.client.create(CONTROLLERREVISIONS, ns, revision, field_manager=COMPONENT)
        except ApiError as e:
            if e.code != 409:
                raise
        existing = await self.client.get(CONTROLLERREVISIONS, ns, _name(revision))
        if revision_matches(ds, existing):
            return existing
        await bump_collision_count(self.client, DAEMONSETS, ds, revision)

    # -- pods --------------------------------------------------------------------------

    async def _sync_nodes(self, ds: Obj, key: str, create_on: list[str], delete: list[Obj],
                          hash_: str) -> BaseException | None:
        """Create a pod for each node of `create_on` (slow start) and delete `delete`, under
        expectations; returns the first error."""
        self.expectations.expect(key, creates=len(create_on), deletes=[object_key(p) for p in delete])
        ignored = 0

        async def create_one(i: int) -> None:
            nonlocal ignored
            if not await self._create_pod(ds, new_daemon_pod(ds, create_on[i], hash_)):
                ignored += 1

        async def creates() -> BaseException | None:
            successes, err = await slow_start_batch(len(create_on), create_one)
            self.expectations.creation_observed(key, len(create_on) - successes + ignored)
            return err

        return await first_error(creates(), *(self._delete_pod(ds, key, p) for p in delete))
