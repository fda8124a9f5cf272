"""Storage object in-use protection (upstream pkg/controller/volume/pvcprotection and
pvprotection): a claim being deleted keeps its `kubernetes.io/pvc-protection` finalizer
while a scheduled pod that has not terminated uses it, and a volume being deleted keeps
`kubernetes.io/pv-protection` while it is Bound. The finalizers themselves are added on
create by the kinds' strategies (`api/kinds/storage.py`).

`claim_in_use` and `finalizer_removed` decide; the two controllers are thin shells. Before a
claim's finalizer goes, the pods of its namespace are listed from the API server too, as
upstream does, so a pod the cache has not seen yet still holds the claim.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kybernetes.api.storage import PV_PROTECTION, PVC_PROTECTION
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.pvbinder import POD_CLAIMS_INDEX, pod_claims

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def pod_uses_claim(pod: Mapping[str, Any], claim_name: str) -> bool:
    """A pod holds a claim once it is scheduled (the agent will mount it) until it has
    terminated (Succeeded or Failed)."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    return any(isinstance(v, Mapping) and (v.get("persistentVolumeClaim") or {}).get("claimName") == claim_name
               for v in spec.get("volumes") or ())


def claim_in_use(claim: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> bool:
    name = str(_meta(claim).get("name") or "")
    ns = _meta(claim).get("namespace")
    return any(pod_uses_claim(p, name) for p in pods if _meta(p).get("namespace") == ns)


def finalizer_removed(obj: Mapping[str, Any], finalizer: str) -> Obj | None:
    """`obj` without `finalizer` when it is being deleted and has it; None otherwise."""
    meta = _meta(obj)
    finalizers = list(meta.get("finalizers") or ())
    if not meta.get("deletionTimestamp") or finalizer not in finalizers:
        return None
    return {**obj, "metadata": {**meta, "finalizers": [f for f in finalizers if f != finalizer]}}


def volume_in_use(pv: Mapping[str, Any]) -> bool:
    return (pv.get("status") or {}).get("phase") == "Bound"


class PVCProtectionController:
    NAME = "pvc-protection"

    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.queue = WorkQueue(self.NAME)
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self.pods = factory.informer(PODS, indexers={POD_CLAIMS_INDEX: pod_claims})
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda _o, n: self._claim_changed(n))
        self.pods.add_handler(on_update=self._pod_updated, on_delete=self._pod_gone)

    def _claim_changed(self, claim: Obj) -> None:
        if finalizer_removed(claim, PVC_PROTECTION) is not None:
            self.queue.add(object_key(claim))

    def _pod_gone(self, pod: Obj) -> None:
        for key in pod_claims(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase") or \
                (old.get("spec") or {}).get("nodeName") != (new.get("spec") or {}).get("nodeName"):
            self._pod_gone(new)

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        claim = self.claims.get(ns, name)
        if claim is None or finalizer_removed(claim, PVC_PROTECTION) is None:
            return Result.done()
        if claim_in_use(claim, self.pods.by_index(POD_CLAIMS_INDEX, key)):
            return Result.done()  # a pod update or delete brings the claim back
        live = await self.client.list(PODS, ns)
        if claim_in_use(claim, live.get("items") or []):
            return Result.after(1.0)
        updated = finalizer_removed(claim, PVC_PROTECTION)
        assert updated is not None
        await self.client.update(PERSISTENTVOLUMECLAIMS, ns, name,
                                 {**updated, "apiVersion": "v1", "kind": "PersistentVolumeClaim"})
        return Result.done()


class PVProtectionController:
    NAME = "pv-protection"

    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.queue = WorkQueue(self.NAME)
        self.volumes = factory.informer(PERSISTENTVOLUMES)
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda _o, n: self._volume_changed(n))

    def _volume_changed(self, pv: Obj) -> None:
        if finalizer_removed(pv, PV_PROTECTION) is not None and not volume_in_use(pv):
            self.queue.add(object_key(pv))

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log)

    async def sync(self, key: str) -> Result:
        pv = self.volumes.get(None, key)
        if pv is None or volume_in_use(pv):
            return Result.done()
        updated = finalizer_removed(pv, PV_PROTECTION)
        if updated is None:
            return Result.done()
        await self.client.update(PERSISTENTVOLUMES, None, key,
                                 {**updated, "apiVersion": "v1", "kind": "PersistentVolume"})
        return Result.done()
