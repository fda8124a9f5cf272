"""The Deployment controller: rolls a Deployment's pod template out through
ReplicaSets (RollingUpdate or Recreate), keeps revisions and history, and reports
rollout progress in the Deployment's status, as `kubectl rollout` expects.

The decisions are in `deployment_plan` (pure). `DeploymentController` is the shell:
it watches Deployments, ReplicaSets and pods, claims ReplicaSets by selector
(adopting orphans, releasing those that no longer match), runs a plan and carries it
out through the API, then requeues while a progress deadline is pending.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.informer import add_object_handler
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.deployment_plan import (
    CreateReplicaSet,
    DeleteReplicaSet,
    Plan,
    UpdateReplicaSet,
    adoption_patch,
    claim_replicasets,
    create_conflict_is_ours,
    plan_deployment,
    release_patch,
    status_with_collision,
)
from kybernetes.controllers.podutil import controller_ref, live_owner, selecting

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "deployment-controller"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _with_kind(deploy: Obj) -> Obj:
    return {**deploy, "apiVersion": "apps/v1", "kind": "Deployment"}


class DeploymentController:
    def __init__(self, client: Client, factory: Informers, *,
                 progress_resync_seconds: float = 5.0) -> None:
        """`progress_resync_seconds`: while a rollout is in progress the deployment is
        looked at again at least this often, besides the ReplicaSet events that drive it."""
        self.client = client
        self.progress_resync_seconds = progress_resync_seconds
        self.queue = WorkQueue("deployment")
        self.deployments = factory.informer(DEPLOYMENTS)
        self.replicasets = factory.informer(REPLICASETS)
        self.pods = factory.informer(PODS)
        add_object_handler(self.deployments, self._enqueue)
        self.replicasets.add_handler(on_add=self._rs_added, on_update=self._rs_updated,
                                     on_delete=self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _enqueue(self, deploy: Obj) -> None:
        self.queue.add(object_key(deploy))

    def _deployment_for(self, obj: Obj, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        return live_owner(self.deployments, obj, ref)

    def _enqueue_selecting(self, rs: Obj) -> None:
        """An orphan ReplicaSet wakes every deployment that could adopt it."""
        for d in selecting(self.deployments, rs):
            self._enqueue(d)

    def _rs_added(self, rs: Obj) -> None:
        ref = controller_ref(rs)
        if ref is None:
            self._enqueue_selecting(rs)
            return
        d = self._deployment_for(rs, ref)
        if d is not None:
            self._enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref is not None and (new_ref is None or old_ref.get("uid") != new_ref.get("uid")):
            d = self._deployment_for(old, old_ref)
            if d is not None:
                self._enqueue(d)
        if new_ref is not None:
            d = self._deployment_for(new, new_ref)
            if d is not None:
                self._enqueue(d)
        elif _meta(old).get("labels") != _meta(new).get("labels") or old_ref is not None:
            self._enqueue_selecting(new)

    def _rs_deleted(self, rs: Obj) -> None:
        d = self._deployment_for(rs, controller_ref(rs))
        if d is not None:
            self._enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        # Recreate waits for the last old pod to disappear before it starts the new ones.
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(_meta(pod).get("namespace"), ref.get("name") or "")
        if rs is None:
            return
        d = self._deployment_for(rs, controller_ref(rs))
        if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            self._enqueue(d)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "deployment", (404, 409), logger=log)

    # -- one pass ----------------------------------------------------------------------

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        cached = self.deployments.get(ns or None, name)
        if cached is None:
            return Result.done()
        deploy = _with_kind(cached)
        owned = await self._claim(deploy)
        pods_by_rs: dict[str, list[Obj]] = {}
        if ((deploy.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
            for rs in owned:
                uid = _meta(rs).get("uid")
                if uid:
                    pods_by_rs[uid] = self.pods.by_index("owner", uid)
        plan = plan_deployment(deploy, owned, pods_by_rs, dt.datetime.now(dt.UTC))
        await self.apply(deploy, owned, plan)
        delay = plan.requeue_after
        if plan.in_progress:
            delay = self.progress_resync_seconds if delay is None else min(delay, self.progress_resync_seconds)
        return Result.after_or_done(delay)

    async def _claim(self, deploy: Obj) -> list[Obj]:
        ns = _meta(deploy).get("namespace")
        claim = claim_replicasets(deploy, self.replicasets.by_index("namespace", ns or ""))
        owned = list(claim.owned)
        if claim.adopt:
            # The cache may be stale: a deployment deleted or replaced meanwhile must not
            # adopt anything, or the garbage collector would take the ReplicaSets with it.
            fresh = await self.client.get(DEPLOYMENTS, ns, _meta(deploy).get("name") or "")
            if _meta(fresh).get("uid") != _meta(deploy).get("uid") or _meta(fresh).get("deletionTimestamp"):
                return owned
            for rs in claim.adopt:
                try:
                    owned.append(await self.client.patch(REPLICASETS, ns, _meta(rs).get("name") or "",
                                                         adoption_patch(rs, deploy), "merge"))
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise
        for rs in claim.release:
            try:
                await self.client.patch(REPLICASETS, ns, _meta(rs).get("name") or "", release_patch(rs, deploy),
                                        "merge")
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
        return owned

    async def apply(self, deploy: Obj, owned: list[Obj], plan: Plan) -> None:
        """Carry out `plan`: ReplicaSet changes in order, then the deployment's revision
        annotation and status. Events are recorded only for what succeeded."""
        ns = _meta(deploy).get("namespace")
        latest: dict[str, Obj] = {_meta(rs).get("name") or "": rs for rs in owned}
        for reason, message in plan.warnings:
            await self.client.event(deploy, "Warning", reason, message, COMPONENT)
        for action in plan.actions:
            if isinstance(action, CreateReplicaSet):
                created = await self._create(deploy, action)
                if created is None:
                    return
                latest[_meta(created).get("name") or ""] = created
                if action.event:
                    await self.client.event(deploy, "Normal", "ScalingReplicaSet", action.event, COMPONENT)
            elif isinstance(action, UpdateReplicaSet):
                base = latest.get(action.name)
                if base is None:
                    continue
                body = copy.deepcopy(base)
                body.setdefault("apiVersion", "apps/v1")
                body.setdefault("kind", "ReplicaSet")
                body["metadata"]["annotations"] = action.annotations
                body.setdefault("spec", {})["replicas"] = action.replicas
                body["spec"]["minReadySeconds"] = action.min_ready_seconds
                latest[action.name] = await self.client.update(REPLICASETS, ns, action.name, body)
                if action.event:
                    await self.client.event(deploy, "Normal", "ScalingReplicaSet", action.event, COMPONENT)
            elif isinstance(action, DeleteReplicaSet):
                try:
                    await self.client.delete(REPLICASETS, ns, action.name,
                                             preconditions={"uid": action.uid} if action.uid else None)
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise
        current = deploy
        if plan.annotations:
            patch = {"metadata": {"resourceVersion": _meta(deploy).get("resourceVersion"),
                                  "annotations": plan.annotations}}
            current = _with_kind(await self.client.patch(DEPLOYMENTS, ns, _meta(deploy).get("name") or "",
                                                         patch, "merge"))
        if plan.status is not None:
            body = copy.deepcopy(current)
            body["status"] = plan.status
            await self.client.update(DEPLOYMENTS, ns, _meta(deploy).get("name") or "", body, subresource="status")

    async def _create(self, deploy: Obj, action: CreateReplicaSet) -> Obj | None:
        """Create the new ReplicaSet. On a name clash with a ReplicaSet that is not ours
        (a hash collision), bump status.collisionCount so the next pass picks another name;
        returns None when the pass must stop there."""
        ns = _meta(deploy).get("namespace")
        try:
            return await self.client.create(REPLICASETS, ns, copy.deepcopy(action.obj))
        except ApiError as e:
            if e.code != 409:
                raise
        name = _meta(action.obj).get("name") or ""
        existing = await self.client.get(REPLICASETS, ns, name)
        if create_conflict_is_ours(deploy, existing):
            return existing
        body = copy.deepcopy(deploy)
        body["status"] = status_with_collision(deploy)
        await self.client.update(DEPLOYMENTS, ns, _meta(deploy).get("name") or "", body, subresource="status")
        log.info("deployment %s/%s: ReplicaSet name %s collides, collisionCount now %s", ns,
                 _meta(deploy).get("name"), name, body["status"]["collisionCount"])
        return None
