"""Generic ephemeral volumes (upstream pkg/controller/volume/ephemeral): for each
`volumes[].ephemeral` of a pod, the PersistentVolumeClaim `<pod>-<volume>` is created from
its `volumeClaimTemplate`, owned by the pod (controller reference, so the garbage collector
deletes it with the pod). The scheduler waits for the claim and binds it like any other;
the node agent mounts it, refusing a claim of that name the pod does not own.

`wanted_claims` decides from the pod; `EphemeralVolumeController` creates what the claim
cache lacks. A claim of that name that belongs to someone else is left alone (the
scheduler reports "pod is not owner"), as upstream."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.client import Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PODS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.podutil import owner_reference

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def claim_name(pod: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
    return f"{(pod.get('metadata') or {}).get('name', '')}-{volume.get('name', '')}"


def _ephemeral_volumes(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [v for v in (pod.get("spec") or {}).get("volumes") or ()
            if isinstance(v, Mapping) and isinstance(v.get("ephemeral"), Mapping)]


def wanted_claims(pod: Mapping[str, Any]) -> list[Obj]:
    """The claims a pod's ephemeral volumes need (none for a pod being deleted)."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    out = []
    for vol in _ephemeral_volumes(pod):
        template = vol["ephemeral"].get("volumeClaimTemplate") or {}
        tmeta = template.get("metadata") or {}
        claim_meta: Obj = {"name": claim_name(pod, vol), "namespace": meta.get("namespace", ""),
                           "ownerReferences": [owner_reference(pod, "v1", "Pod")]}
        for key in ("labels", "annotations"):
            if tmeta.get(key):
                claim_meta[key] = dict(tmeta[key])
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_meta,
                    "spec": dict(template.get("spec") or {})})
    return out


class EphemeralVolumeController:
    NAME = "ephemeral-volume"

    def __init__(self, client: Client, factory: Informers) -> None:
        self.client = client
        self.queue = WorkQueue(self.NAME)
        self.pods = factory.informer(PODS)
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n))
        # A claim deleted while its pod still needs it is made again, as upstream.
        self.claims.add_handler(on_delete=self._claim_gone)

    def _pod_changed(self, pod: Obj) -> None:
        if _ephemeral_volumes(pod):
            self.queue.add(object_key(pod))

    def _claim_gone(self, claim: Obj) -> None:
        for ref in (claim.get("metadata") or {}).get("ownerReferences") or ():
            if ref.get("kind") == "Pod" and ref.get("controller"):
                self.queue.add(f"{(claim.get('metadata') or {}).get('namespace', '')}/{ref.get('name', '')}")

    async def run(self, workers: int = 1) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        pod = self.pods.get(ns, name)
        if pod is None:
            return Result.done()
        for claim in wanted_claims(pod):
            if self.claims.get(ns, claim["metadata"]["name"]) is not None:
                continue
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, ns, claim)
            except ApiError as e:
                if e.code != 409:  # made meanwhile (by us or someone else): the cache will say
                    raise
        return Result.done()
