"""The PersistentVolume binder: binds claims to volumes both ways and keeps both phases
(Pending / Available / Bound / Released / Failed / Lost), marks claims for their class's
provisioner, and grows local-path volumes a bound claim asks more of.

The decisions are `pvbinder_plan` (pure). `PersistentVolumeBinder` is the shell: it keeps
two queues (claims by "namespace/name", volumes by name), carries a plan's writes out in
order on the versions each write returns, and records its events once per change of
what a claim or volume is waiting for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.api.storage import ANN_BIND_COMPLETED
from kybernetes.api.timefmt import rfc3339
from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import (
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    STORAGECLASSES,
    Resource,
)
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.pvbinder_plan import (
    Event,
    Plan,
    merged_for_write,
    plan_claim,
    plan_volume,
    pods_waiting_for,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "persistentvolume-controller"
# Pods by the claims they use ("namespace/claim"): shared with the protection controller.
POD_CLAIMS_INDEX = "pvc-users"
_CLAIMS_BY_VOLUME = "pvbinder-volume"
RESYNC_SECONDS = 15.0
_VOLUMES_BY_CLAIM = "pvbinder-claim"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def pod_claims(pod: Mapping[str, Any]) -> list[str]:
    """The informer index of pods by "namespace/claim" of each claim they use."""
    ns = _meta(pod).get("namespace") or ""
    return sorted({f"{ns}/{v['persistentVolumeClaim'].get('claimName')}" for v in _spec(pod).get("volumes") or ()
                   if isinstance(v, Mapping) and isinstance(v.get("persistentVolumeClaim"), Mapping)})


def _claim_volume(claim: Mapping[str, Any]) -> list[str]:
    name = _spec(claim).get("volumeName")
    return [name] if name else []


def _volume_claim(pv: Mapping[str, Any]) -> list[str]:
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, Mapping):
        return []
    return [f"{ref.get('namespace') or ''}/{ref.get('name') or ''}"]


def _with_kind(obj: Mapping[str, Any], res: Resource) -> Obj:
    return {**obj, "apiVersion": res.api_version, "kind": res.kind}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PersistentVolumeBinder:
    NAME = "persistentvolume-binder"

    def __init__(self, client: Client, factory: Informers, clock: Callable[[], dt.datetime] = _now) -> None:
        self.client = client
        self.clock = clock
        self.claim_queue = WorkQueue("persistentvolume-binder-claims")
        self.volume_queue = WorkQueue("persistentvolume-binder-volumes")
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS, indexers={_CLAIMS_BY_VOLUME: _claim_volume})
        self.volumes = factory.informer(PERSISTENTVOLUMES, indexers={_VOLUMES_BY_CLAIM: _volume_claim})
        self.classes = factory.informer(STORAGECLASSES)
        self.pods = factory.informer(PODS, indexers={POD_CLAIMS_INDEX: pod_claims})
        # What was last said about each object (by uid), so a resync does not repeat it.
        self._said: dict[str, tuple[str, str]] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda _o, n: self._claim_changed(n),
                                on_delete=self._claim_deleted)
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda _o, n: self._volume_changed(n),
                                 on_delete=self._volume_deleted)
        self.classes.add_handler(on_add=self._class_changed, on_update=lambda _o, n: self._class_changed(n))
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated)

    # -- informer handlers (enqueue only) ----------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        self.claim_queue.add(object_key(claim))
        for name in _claim_volume(claim):
            self.volume_queue.add(name)

    def _claim_deleted(self, claim: Obj) -> None:
        self._said.pop(str(_meta(claim).get("uid") or ""), None)
        for pv in self.volumes.by_index(_VOLUMES_BY_CLAIM, object_key(claim)):
            self.volume_queue.add(object_key(pv))
        for name in _claim_volume(claim):
            self.volume_queue.add(name)

    def _volume_changed(self, pv: Obj) -> None:
        self.volume_queue.add(object_key(pv))
        # A provisioned or pre-bound volume completes its claim's binding; a claim that
        # named this volume before it existed can take it now.
        for key in _volume_claim(pv):
            self.claim_queue.add(key)
        for claim in self.claims.by_index(_CLAIMS_BY_VOLUME, object_key(pv)):
            self.claim_queue.add(object_key(claim))
        if not _spec(pv).get("claimRef") and (pv.get("status") or {}).get("phase") == "Available":
            # A volume free to take: the claims still looking for one try again.
            for claim in self.claims.list():
                if not _spec(claim).get("volumeName"):
                    self.claim_queue.add(object_key(claim))

    def _volume_deleted(self, pv: Obj) -> None:
        self._said.pop(str(_meta(pv).get("uid") or ""), None)
        for claim in self.claims.by_index(_CLAIMS_BY_VOLUME, object_key(pv)):
            self.claim_queue.add(object_key(claim))

    def _class_changed(self, sc: Obj) -> None:
        name = _meta(sc).get("name")
        for claim in self.claims.list():
            if ANN_BIND_COMPLETED not in (_meta(claim).get("annotations") or {}) or \
                    _spec(claim).get("storageClassName") in (None, name):
                self.claim_queue.add(object_key(claim))

    def _pod_added(self, pod: Obj) -> None:
        if not _spec(pod).get("nodeName"):
            for key in pod_claims(pod):
                self.claim_queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _spec(old).get("nodeName") != _spec(new).get("nodeName"):
            for key in pod_claims(new):
                self.claim_queue.add(key)

    # -- workers -------------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_workers(self.claim_queue, self.sync_claim, workers, self.claim_queue.name,
                                       (404, 409), logger=log))
            tg.create_task(run_workers(self.volume_queue, self.sync_volume, workers, self.volume_queue.name,
                                       (404, 409), logger=log))

    def _classes(self) -> dict[str, Obj]:
        return {str(_meta(sc).get("name") or ""): sc for sc in self.classes.list()}

    async def sync_claim(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        claim = self.claims.get(ns, name)
        if claim is None:
            return Result.done()
        waiting = pods_waiting_for(claim, self.pods.by_index(POD_CLAIMS_INDEX, key))
        plan = plan_claim(claim, self.volumes.list(), lambda n: self.volumes.get(None, n), self._classes(),
                          waiting, rfc3339(self.clock()))
        if plan.confirm_volume_gone is not None and await self._exists(PERSISTENTVOLUMES, None,
                                                                       plan.confirm_volume_gone):
            return Result.after(1.0)  # the cache is behind the server
        await self._carry_out(plan, claim)
        if ANN_BIND_COMPLETED not in (_meta(claim).get("annotations") or {}):
            # As upstream's periodic resync: an unbound claim looks again now and then.
            return Result.after(RESYNC_SECONDS)
        return Result.done()

    async def sync_volume(self, key: str) -> Result:
        pv = self.volumes.get(None, key)
        if pv is None:
            return Result.done()
        plan = plan_volume(pv, lambda ns, n: self.claims.get(ns, n), rfc3339(self.clock()))
        if plan.confirm_claim_gone:
            ref = _spec(pv).get("claimRef") or {}
            try:
                live = await self.client.get(PERSISTENTVOLUMECLAIMS, ref.get("namespace") or "", ref.get("name") or "")
            except ApiError as e:
                if e.code != 404:
                    raise
            else:
                if _meta(live).get("uid") == ref.get("uid"):
                    return Result.after(1.0)  # the claim exists; the cache has not seen it yet
        if plan.enqueue_claim is not None:
            self.claim_queue.add(plan.enqueue_claim)
        await self._carry_out(plan, None)
        return Result.done()

    async def _exists(self, res: Resource, namespace: str | None, name: str) -> bool:
        try:
            await self.client.get(res, namespace, name)
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return True

    async def _carry_out(self, plan: Plan, claim: Obj | None) -> None:
        latest: dict[str, Obj] = {}
        if claim is not None:
            latest["claim"] = claim
        if plan.volume is not None:
            latest["volume"] = plan.volume
        for event in plan.events_before:
            self._record(event, latest)
        written: dict[str, str] = {}
        for write in plan.writes:
            res = PERSISTENTVOLUMECLAIMS if write.target == "claim" else PERSISTENTVOLUMES
            body = merged_for_write(write, written.get(write.target))
            meta = _meta(body)
            stored = await self.client.update(res, meta.get("namespace") or None, meta.get("name") or "",
                                              _with_kind(body, res), subresource=write.subresource)
            latest[write.target] = stored
            written[write.target] = str(_meta(stored).get("resourceVersion") or "")
        for event in plan.events:
            self._record(event, latest)

    def _record(self, event: Event, latest: Mapping[str, Obj]) -> None:
        obj = latest.get(event.target)
        if obj is None:
            return
        uid = str(_meta(obj).get("uid") or "")
        said = (event.reason, event.message)
        if self._said.get(uid) == said:
            return
        self._said[uid] = said
        if len(self._said) > 100_000:
            self._said.clear()
        res = PERSISTENTVOLUMECLAIMS if event.target == "claim" else PERSISTENTVOLUMES
        task = asyncio.get_running_loop().create_task(self.client.event(
            _with_kind(obj, res), type_=event.type, reason=event.reason, message=event.message, component=COMPONENT))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

