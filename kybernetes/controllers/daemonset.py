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

import asyncio
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
from kybernetes.controllers.daemonset_plan import (
    BURST_REPLICAS,
    HASH_LABEL,
    Claim,
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
from kybernetes.controllers.podutil import (
    compile_selector,
    controller_ref,
    live_owner,
    orphan_index,
    selecting,
)
from kybernetes.controllers.replicaset import (
    EXPECTATIONS_TTL,
    Expectations,
    adopt_patch,
    release_patch,
    slow_start_batch,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "daemonset-controller"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _with_kind(ds: Obj) -> Obj:
    return {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}


def _node_placement(node: Mapping[str, Any]) -> tuple[Any, ...]:
    # What decides whether a daemon belongs on a node; heartbeats change none of it.
    spec = node.get("spec") or {}
    return (_meta(node).get("labels"), spec.get("taints"), spec.get("unschedulable"))


class DaemonSetController:
    def __init__(self, client: Client, factory: Informers, *, burst: int = BURST_REPLICAS,
                 expectations_ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.burst = burst
        self.clock = clock
        self.queue = WorkQueue("daemonset")
        self.expectations = Expectations(expectations_ttl)
        self.backoff = FailedPodBackoff()
        self.daemonsets = factory.informer(DAEMONSETS)
        self.nodes = factory.informer(NODES)
        self.pods = factory.informer(PODS, indexers={"orphan": orphan_index})
        self.revisions = factory.informer(CONTROLLERREVISIONS, indexers={"orphan": orphan_index})
        self._event_tasks: set[asyncio.Task[None]] = set()
        self.daemonsets.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                    on_delete=self._ds_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated,
                               on_delete=self._node_changed)
        self.revisions.add_handler(on_add=self._revision_changed,
                                   on_update=lambda old, new: self._revision_changed(new),
                                   on_delete=self._revision_changed)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _enqueue(self, ds: Obj) -> None:
        self.queue.add(object_key(ds))

    def _ds_deleted(self, ds: Obj) -> None:
        key = object_key(ds)
        self.expectations.forget(key)
        self.queue.add(key)

    def _owner_of(self, obj: Obj) -> Obj | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        return live_owner(self.daemonsets, obj, ref)

    def _enqueue_selecting(self, pod: Obj) -> None:
        for ds in selecting(self.daemonsets, pod):
            self._enqueue(ds)

    def _pod_added(self, pod: Obj) -> None:
        if pod_is_terminating(pod):
            self._pod_deleted(pod)
            return
        ds = self._owner_of(pod)
        if ds is not None:
            key = object_key(ds)
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod) is None:
            self._enqueue_selecting(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_is_terminating(new):
            self._pod_deleted(new)
            return
        old_ref = controller_ref(old)
        if old_ref is not None and old_ref != controller_ref(new):
            old_ds = self._owner_of(old)
            if old_ds is not None:
                self._enqueue(old_ds)
        ds = self._owner_of(new)
        if ds is not None:
            self._enqueue(ds)
        elif controller_ref(new) is None:
            self._enqueue_selecting(new)

    def _pod_deleted(self, pod: Obj) -> None:
        ds = self._owner_of(pod)
        if ds is None:
            return
        key = object_key(ds)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

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

    def _revision_changed(self, rev: Obj) -> None:
        ds = self._owner_of(rev)
        if ds is not None:
            self._enqueue(ds)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "daemonset", (404, 409, 422), logger=log)

    def _record(self, ds: Obj, type_: str, reason: str, message: str) -> None:
        # Events are best effort and must not slow a burst of creates down.
        task = asyncio.get_running_loop().create_task(
            self.client.event(ds, type_=type_, reason=reason, message=message, component=COMPONENT))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

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
        pods = [*self.pods.by_index("owner", _uid(ds)), *self.pods.by_index("orphan", ns)]
        history = plan_history(ds, await self._claim_revisions(ds))
        current = await self._keep_history(ds, history, pods)
        hash_ = current_hash(current)
        nodes = self.nodes.list()
        now = dt.datetime.now(dt.UTC)
        clock = self.clock()
        self.backoff.gc(clock)
        plan = plan_daemonset(ds, nodes, pods, hash_, history.old, now, self.backoff, clock,
                              expectations_satisfied=self.expectations.satisfied(key), burst=self.burst)
        await self._claim(ds, plan.claim)
        for type_, reason, message in plan.sync.events:
            self._record(ds, type_, reason, message)
        error: BaseException | None = None
        if plan.sync.create_on or plan.sync.delete:
            error = await self._sync_nodes(ds, key, plan.sync.create_on, plan.sync.delete, hash_)
        for rev in plan.prune:
            await self._delete_quietly(CONTROLLERREVISIONS, ns, rev)
        if status_changed(ds.get("status"), plan.status):
            await self._write_status(ds, plan.status)
        if error is not None:
            if plan.sync.requeue_after is not None:
                self.queue.add_after(key, plan.sync.requeue_after)
            raise error
        return Result.after_or_done(plan.sync.requeue_after)

    # -- history -----------------------------------------------------------------------

    async def _claim_revisions(self, ds: Obj) -> list[Obj]:
        """The revisions `ds` controls, orphans its selector matches adopted first (left by a
        DaemonSet deleted with --cascade=orphan and created again, say)."""
        ns = _meta(ds).get("namespace")
        owned = list(self.revisions.by_index("owner", _uid(ds)))
        selector = compile_selector((ds.get("spec") or {}).get("selector"))
        orphans = [r for r in self.revisions.by_index("orphan", ns or "")
                   if selector.matches(_meta(r).get("labels") or {})]
        if not orphans:
            return owned
        fresh = await self.client.get(DAEMONSETS, ns, _name(ds))
        if _uid(fresh) != _uid(ds) or _meta(fresh).get("deletionTimestamp"):
            raise RuntimeError(f"DaemonSet {ns}/{_name(ds)} is gone or being deleted")
        for rev in orphans:
            try:
                owned.append(await self.client.patch(CONTROLLERREVISIONS, ns, _name(rev), adopt_patch(ds, rev),
                                                     patch_type="json", field_manager=COMPONENT))
            except ApiError as e:
                if e.code not in (404, 422):
                    raise
        return owned

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
                await self._delete_quietly(CONTROLLERREVISIONS, ns, rev)
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
        # A revision of another template (or owner) holds the name: a hash collision. Bump
        # collisionCount (unless our copy is stale) so the next pass hashes differently.
        fresh = _with_kind(await self.client.get(DAEMONSETS, ns, _name(ds)))
        old_count = (ds.get("status") or {}).get("collisionCount")
        fresh_count = (fresh.get("status") or {}).get("collisionCount")
        if fresh_count != old_count:
            raise RuntimeError(f"stale collisionCount ({old_count}, now {fresh_count}) of DaemonSet "
                               f"{ns}/{_name(ds)}; retrying")
        status = dict(fresh.get("status") or {})
        status["collisionCount"] = int(fresh_count or 0) + 1
        await self.client.update(DAEMONSETS, ns, _name(ds), {**fresh, "status": status}, subresource="status")
        raise RuntimeError(f"ControllerRevision {ns}/{_name(revision)} collides; collisionCount now "
                           f"{status['collisionCount']}")

    # -- pods --------------------------------------------------------------------------

    async def _claim(self, ds: Obj, claim: Claim) -> None:
        ns = _meta(ds).get("namespace")
        if claim.adopt:
            # The cached DaemonSet may be stale: never adopt for one deleted or replaced meanwhile.
            fresh = await self.client.get(DAEMONSETS, ns, _name(ds))
            if _uid(fresh) != _uid(ds) or _meta(fresh).get("deletionTimestamp"):
                raise RuntimeError(f"DaemonSet {ns}/{_name(ds)} is gone or being deleted")
        for pods, patch_for in ((claim.adopt, adopt_patch), (claim.release, release_patch)):
            for pod in pods:
                try:
                    await self.client.patch(PODS, ns, _name(pod), patch_for(ds, pod), patch_type="json",
                                            field_manager=COMPONENT)
                except ApiError as e:
                    if e.code not in (404, 422):
                        raise

    async def _sync_nodes(self, ds: Obj, key: str, create_on: list[str], delete: list[Obj],
                          hash_: str) -> BaseException | None:
        """Create a pod for each node of `create_on` (slow start) and delete `delete`, under
        expectations; returns the first error."""
        ns = _meta(ds).get("namespace")
        self.expectations.expect(key, creates=len(create_on), deletes=[object_key(p) for p in delete])
        ignored = 0

        async def create_one(i: int) -> None:
            nonlocal ignored
            try:
                pod = await self.client.create(PODS, ns, new_daemon_pod(ds, create_on[i], hash_),
                                               field_manager=COMPONENT)
            except ApiError as e:
                causes = (e.details or {}).get("causes") or []
                if any(c.get("reason") == "NamespaceTerminating" for c in causes):
                    ignored += 1
                    return
                self._record(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self._record(ds, "Normal", "SuccessfulCreate", f"Created pod: {_name(pod)}")

        async def delete_one(pod: Obj) -> None:
            try:
                await self.client.delete(PODS, ns, _name(pod), preconditions={"uid": _uid(pod)})
            except ApiError as e:
                self.expectations.deletion_observed(key, object_key(pod))
                if e.code in (404, 409):
                    return
                self._record(ds, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self._record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {_name(pod)}")

        async def creates() -> BaseException | None:
            successes, err = await slow_start_batch(len(create_on), create_one)
            self.expectations.creation_observed(key, len(create_on) - successes + ignored)
            return err

        results = await asyncio.gather(creates(), *(delete_one(p) for p in delete), return_exceptions=True)
        for r in results:
            if isinstance(r, asyncio.CancelledError):
                raise r
        errors = [r for r in results if isinstance(r, BaseException)]
        return errors[0] if errors else None

    async def _delete_quietly(self, res: Any, ns: str | None, obj: Obj) -> None:
        try:
            await self.client.delete(res, ns, _name(obj), preconditions={"uid": _uid(obj)})
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    async def _write_status(self, ds: Obj, status: Obj) -> None:
        ns = _meta(ds).get("namespace")
        try:
            await self.client.update(DAEMONSETS, ns, _name(ds), {**ds, "status": status}, subresource="status")
        except ApiError as e:
            if e.code != 409:
                raise
            # Someone wrote the DaemonSet since our snapshot; the counts are still ours to report,
            # but a collisionCount bumped meanwhile must survive.
            fresh = _with_kind(await self.client.get(DAEMONSETS, ns, _name(ds)))
            merged = dict(status)
            fresh_count = (fresh.get("status") or {}).get("collisionCount")
            if fresh_count is not None:
                merged["collisionCount"] = fresh_count
            await self.client.update(DAEMONSETS, ns, _name(ds), {**fresh, "status": merged},
                                     subresource="status")
