"""The StatefulSet controller: pods with stable names, network identities and claims, in
order (OrderedReady) or all at once (Parallel), rolled forward by RollingUpdate (from the
highest ordinal down to the partition) or OnDelete, with the template history kept in
ControllerRevisions for `kubectl rollout status|history|undo`, and the state in the status.

The decisions are in `statefulset_plan` (pure). `StatefulSetController` is the shell: it
watches StatefulSets, pods, claims and ControllerRevisions, keeps the revision history,
claims pods, creates claims before their pods, creates, fixes and deletes pods under
expectations, sets claim owners for the retention policy, and writes the status.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from kybernetes.api.pods import pod_is_terminating
from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONTROLLERREVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import (
    EventRecorder,
    PodOwnerShell,
    apply_claim,
    bump_collision_count,
    claim_revisions,
    delete_quietly,
    first_error,
    is_namespace_terminating,
    write_status,
)
from kybernetes.controllers.podutil import controller_ref, orphan_index
from kybernetes.controllers.replicaset import EXPECTATIONS_TTL, Expectations, slow_start_batch
from kybernetes.controllers.revisions import new_revision, revision_matches, revision_number
from kybernetes.controllers.statefulset_plan import (
    KIND,
    Plan,
    claim_pods,
    current_revision,
    plan_statefulset,
    pod_revision,
    revisions_to_prune,
    status_changed,
    update_revision,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "statefulset-controller"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _with_kind(sts: Obj) -> Obj:
    return {**sts, "apiVersion": "apps/v1", "kind": KIND}


def _guarded(obj: Mapping[str, Any], ops: list[Obj]) -> list[Obj]:
    # The test operations make the patch fail if the object was replaced since the snapshot.
    return [{"op": "test", "path": "/metadata/uid", "value": _uid(obj)}, *ops]


class StatefulSetController(PodOwnerShell):
    owner_kind = KIND

    def __init__(self, client: Client, factory: Informers, *,
                 expectations_ttl: float = EXPECTATIONS_TTL) -> None:
        self.client = client
        self.component = COMPONENT
        self.queue = WorkQueue("statefulset")
        self.expectations = Expectations(expectations_ttl)
        self.sets = self.owners = factory.informer(STATEFULSETS)
        self.pods = factory.informer(PODS, indexers={"orphan": orphan_index})
        self.revisions = factory.informer(CONTROLLERREVISIONS, indexers={"orphan": orphan_index})
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self._record = EventRecorder(client, COMPONENT)
        self.sets.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                              on_delete=self._owner_deleted)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.revisions.add_handler(on_add=self._owned_changed, on_update=lambda old, new: self._owned_changed(new),
                                   on_delete=self._owned_changed)
        self.claims.add_handler(on_delete=self._claim_deleted)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_is_terminating(new) and not pod_is_terminating(old):
            self._pod_deleted(new)
        else:
            self._pod_moved(old, new)

    def _claim_deleted(self, claim: Obj) -> None:
        # A new pod may be waiting for a claim of an earlier one to go.
        for sts in self.sets.by_index("namespace", _meta(claim).get("namespace") or ""):
            if (sts.get("spec") or {}).get("volumeClaimTemplates"):
                self._enqueue(sts)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "statefulset", (404, 409, 422), logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        cached = self.sets.get(ns or None, name)
        if cached is None:
            self.expectations.forget(key)
            return Result.done()
        sts = _with_kind(cached)
        selector = (sts.get("spec") or {}).get("selector")
        if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
            self._record(sts, "Warning", "SelectingAll",
                         "This statefulset is selecting all pods. A non-empty selector is required.")
            return Result.done()
        pods = [*self.pods.by_index("owner", _uid(sts)), *self.pods.by_index("orphan", ns)]
        claim = claim_pods(sts, pods)
        await apply_claim(self.client, STATEFULSETS, sts, claim.adopt, claim.release, COMPONENT)
        own = claim.pods
        revisions = await claim_revisions(self.client, STATEFULSETS, sts, self.revisions, COMPONENT)
        update, revisions = await self._update_revision(sts, revisions)
        current = current_revision(sts, revisions, update)
        count = int((sts.get("status") or {}).get("collisionCount") or 0)
        satisfied = self.expectations.satisfied(key)
        plan = plan_statefulset(sts, own, lambda n: self.claims.get(ns, n), current, update,
                                dt.datetime.now(dt.UTC), count)
        error: BaseException | None = None
        if satisfied and not _meta(sts).get("deletionTimestamp"):
            error = await self._carry_out(sts, key, plan)
        live = {_name(current), _name(update), *(pod_revision(p) for p in own)}
        for rev in revisions_to_prune(sts, revisions, live):
            await delete_quietly(self.client, CONTROLLERREVISIONS, ns, rev)
        if status_changed(sts.get("status"), plan.status):
            await write_status(self.client, STATEFULSETS, sts, plan.status)
        return self._finish(key, error, plan.requeue_after)

    # -- history -----------------------------------------------------------------------

    async def _update_revision(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, list[Obj]]:
        """The revision of the set's template: the latest when it holds it, an earlier equal
        one renumbered (a rollback), or a new one; and the history including it."""
        ns = _meta(sts).get("namespace")
        found, renumber = update_revision(sts, revisions)
        if found is not None and renumber is None:
            return found, revisions
        if found is not None:
            updated = await self.client.patch(CONTROLLERREVISIONS, ns, _name(found), {"revision": renumber}, "merge")
            return updated, [r for r in revisions if _uid(r) != _uid(found)] + [updated]
        number = max((revision_number(r) for r in revisions), default=0) + 1
        revision = new_revision(sts, number, KIND)
        try:
            created = await self.client.create(CONTROLLERREVISIONS, ns, revision, field_manager=COMPONENT)
            return created, [*revisions, created]
        except ApiError as e:
            if e.code != 409:
                raise
        existing = await self.client.get(CONTROLLERREVISIONS, ns, _name(revision))
        if revision_matches(sts, existing) and (controller_ref(existing) or {}).get("uid") == _uid(sts):
            return existing, [r for r in revisions if _uid(r) != _uid(existing)] + [existing]
        await bump_collision_count(self.client, STATEFULSETS, sts, revision)

    # -- pods and claims ---------------------------------------------------------------

    async def _carry_out(self, sts: Obj, key: str, plan: Plan) -> BaseException | None:
        """Claim owners and identities first, then the creations (slow start, each pod's
        claims before it) and deletions; returns the first error."""
        ns = _meta(sts).get("namespace")
        set_name = _name(sts)
        for claim, refs in plan.claim_refs:
            ops = [{"op": "add", "path": "/metadata/ownerReferences", "value": refs}] if refs else \
                [{"op": "remove", "path": "/metadata/ownerReferences"}]
            await self._patch_quietly(PERSISTENTVOLUMECLAIMS, ns, claim, _guarded(claim, ops))
        for pod, labels in plan.relabel:
            await self._patch_quietly(PODS, ns, pod, {"metadata": {"labels": labels}}, "merge")
            self._record(sts, "Normal", "SuccessfulUpdate", f"update Pod {_name(pod)} in StatefulSet {set_name} "
                                                            "successful")
        for claim in plan.claims:
            await self._create_claim(sts, claim, None)
        creates, deletes = plan.create, plan.delete
        if not creates and not deletes:
            return None
        self.expectations.expect(key, creates=len(creates), deletes=[object_key(p) for p in deletes])
        unobserved = 0

        async def create_one(i: int) -> None:
            nonlocal unobserved
            item = creates[i]
            pod_name = _name(item.pod)
            try:
                for claim in item.claims:
                    await self._create_claim(sts, claim, pod_name)
                await self.client.create(PODS, ns, item.pod, field_manager=COMPONENT)
            except ApiError as e:
                unobserved += 1
                if e.code == 409:
                    return  # the informer has not shown it yet
                if is_namespace_terminating(e):
                    return
                self._record(sts, "Warning", "FailedCreate",
                             f"create Pod {pod_name} in StatefulSet {set_name} failed error: {e.message}")
                raise
            except BaseException:
                unobserved += 1
                raise
            self._record(sts, "Normal", "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {set_name} "
                                                            "successful")

        async def create_all() -> BaseException | None:
            done, err = await slow_start_batch(len(creates), create_one)
            self.expectations.creation_observed(key, len(creates) - done + unobserved)
            return err

        return await first_error(create_all(), *(self._delete_pod(sts, key, p) for p in deletes))

    def _deleted_message(self, owner: Obj, pod: Obj) -> str:
        return f"delete Pod {_name(pod)} in StatefulSet {_name(owner)} successful"

    def _delete_failed_message(self, owner: Obj, pod: Obj, error: str) -> str:
        return f"delete Pod {_name(pod)} in StatefulSet {_name(owner)} failed error: {error}"

    async def _create_claim(self, sts: Obj, claim: Obj, pod_name: str | None) -> None:
        ns = _meta(sts).get("namespace")
        try:
            await self.client.create(PERSISTENTVOLUMECLAIMS, ns, claim, field_manager=COMPONENT)
        except ApiError as e:
            if e.code == 409:
                return
            self._record(sts, "Warning", "FailedCreate",
                         f"create Claim {_name(claim)} for Pod {pod_name or ''} in StatefulSet {_name(sts)} "
                         f"failed error: {e.message}")
            raise
        self._record(sts, "Normal", "SuccessfulCreate",
                     f"create Claim {_name(claim)} Pod {pod_name or ''} in StatefulSet {_name(sts)} success")

    async def _patch_quietly(self, res: Any, ns: str | None, obj: Obj, body: Any, patch_type: str = "json") -> None:
        try:
            await self.client.patch(res, ns, _name(obj), body, patch_type=patch_type, field_manager=COMPONENT)
        except ApiError as e:
            if e.code not in (404, 409, 422):
                raise
