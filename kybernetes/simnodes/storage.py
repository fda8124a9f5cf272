"""The local-path provisioner of simulated nodes: the same decisions as a real agent's
(`kybernetes.api.localpath`), with API objects only. A claim the scheduler selected one of
these nodes for gets its PersistentVolume (at a path that exists on no disk), a released
Delete volume of theirs is deleted, and the simulator holds a pod until its claims are bound,
as a kubelet waits to mount them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from typing import Any

from kybernetes.api import localpath
from kybernetes.api.errors import ApiError
from kybernetes.api.storage import ANN_SELECTED_NODE, LOCAL_PATH_PROVISIONER, claim_class, claim_is_bound
from kybernetes.client import Client, Informers, WorkQueue, object_key, run_workers
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
STORAGECLASSES = Resource.for_kind("storage.k8s.io/v1", "StorageClass")
FIELD_MANAGER = "kyb-sim-nodes"
# Where a simulated node would keep its volumes; nothing is created there.
SIM_DATA_DIR = "/var/lib/kybernetes-sim"


class SimLocalPath:
    """Provision and reclaim local-path volumes for the simulated nodes in `nodes` (a live
    view of the names being served). `on_claim` hears every claim change."""

    def __init__(self, client: Client, factory: Informers, nodes: Container[str],
                 on_claim: Callable[[Obj], None] | None = None) -> None:
        self.client = client
        self.nodes = nodes
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = factory.informer(PERSISTENTVOLUMES)
        self.classes = factory.informer(STORAGECLASSES)
        self.queue = WorkQueue("sim-local-path")
        self._on_claim = on_claim
        self.stats = {"provisioned": 0, "reclaimed": 0}
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda _o, n: self._claim_changed(n))
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda _o, n: self._volume_changed(n))

    def claims_bound(self, pod: Obj) -> bool:
        """Every claim the pod mounts is Bound (a missing one is not)."""
        ns = (pod.get("metadata") or {}).get("namespace")
        for name in localpath.pod_claims(pod):
            pvc = self.claims.get(ns, name)
            if pvc is None or not claim_is_bound(pvc):
                return False
        return True

    def _selected_node(self, pvc: Obj) -> str:
        node = str(((pvc.get("metadata") or {}).get("annotations") or {}).get(ANN_SELECTED_NODE) or "")
        return node if node in self.nodes and localpath.claim_to_provision(pvc, node) else ""

    def _claim_changed(self, pvc: Obj) -> None:
        if self._selected_node(pvc):
            self.queue.add("claim:" + object_key(pvc))
        if self._on_claim is not None:
            self._on_claim(pvc)

    def _volume_changed(self, pv: Obj) -> None:
        node = localpath.volume_node(pv)
        if node in self.nodes and localpath.volume_to_delete(pv, node):
            self.queue.add("volume:" + object_key(pv))

    async def run(self, workers: int = 4) -> None:
        await run_workers(self.queue, self.sync, workers, "sim-local-path", logger=log)

    async def sync(self, key: str) -> Result:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            ns, _, name = rest.partition("/")
            return await self._provision(ns, name)
        return await self._reclaim(rest)

    async def _provision(self, namespace: str, name: str) -> Result:
        pvc = self.claims.get(namespace, name)
        node = self._selected_node(pvc) if pvc is not None else ""
        if pvc is None or not node:
            return Result.done()
        pv_name = localpath.volume_name(pvc)
        if self.volumes.get(None, pv_name) is not None:
            return Result.done()
        cls = self.classes.get(None, claim_class(pvc))
        if localpath.provisioning_problem(pvc, cls):
            return Result.after(5.0)
        assert cls is not None
        path = f"{localpath.storage_root(f'{SIM_DATA_DIR}/{node}')}/{localpath.directory_name(pv_name, pvc)}"
        try:
            await self.client.create(PERSISTENTVOLUMES, None, localpath.provisioned_volume(pvc, cls, node, path),
                                     field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 409:
                raise
            return Result.done()
        self.stats["provisioned"] += 1
        meta = pvc.get("metadata") or {}
        await self.client.event({"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                 "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")}},
                                "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}",
                                f"{LOCAL_PATH_PROVISIONER}_{node}")
        return Result.done()

    async def _reclaim(self, name: str) -> Result:
        pv = self.volumes.get(None, name)
        if pv is None:
            return Result.done()
        node = localpath.volume_node(pv)
        if node not in self.nodes or not localpath.volume_to_delete(pv, node):
            return Result.done()
        uid = (pv.get("metadata") or {}).get("uid")
        try:
            await self.client.delete(PERSISTENTVOLUMES, None, name, preconditions={"uid": uid} if uid else None)
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            return Result.done()
        self.stats["reclaimed"] += 1
        return Result.done()
