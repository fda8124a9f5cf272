"""The local-path provisioner's shell, shared by the node agent (which makes and removes
real directories) and the simulated nodes (which only make the API objects): it watches
claims and volumes, gives a claim the scheduler selected one of its nodes for a
PersistentVolume pinned to that node, and deletes a released Delete volume of its nodes,
its directory first. What to do is decided in `kybernetes.api.localpath`; where a volume's
data lives is the `Disk`'s business."""

from __future__ import annotations

import logging
from collections.abc import Callable, Container
from typing import Any, Protocol

from kybernetes.api import localpath
from kybernetes.api.errors import ApiError
from kybernetes.api.storage import ANN_SELECTED_NODE, LOCAL_PATH_PROVISIONER, claim_class
from kybernetes.client.informer import object_key
from kybernetes.client.protocols import Client, Informers
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES
from kybernetes.client.workqueue import WorkQueue, run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
RETRY_PROBLEM = 5.0
RETRY_RECLAIM = 30.0


class Disk(Protocol):
    """Where the provisioner's volumes keep their data. Either call raises OSError (with a
    message fit for an event) when it cannot do what is asked."""

    async def make(self, node: str, dirname: str) -> str:
        """The absolute path of volume directory `dirname` on `node`, made (or reused: a
        retry after a failed PV create)."""
        ...

    async def remove(self, path: str) -> None:
        """Remove a released volume's directory (gone already is fine)."""
        ...


def _involved(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind") or ("PersistentVolumeClaim" if meta.get("namespace") else "PersistentVolume"),
            "apiVersion": "v1",
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion") if meta.get(k)}}


class LocalPathProvisioner:
    """Provision and reclaim the local-path volumes of the nodes in `nodes` (a live view of
    the names served). The constructor takes its informers from `factory`; the caller starts
    the factory, then awaits `run()`. `on_claim` hears every claim change."""

    def __init__(self, client: Client, factory: Informers, nodes: Container[str], disk: Disk, *,
                 field_manager: str, name: str = "local-path", workers: int = 2,
                 on_claim: Callable[[Obj], None] | None = None) -> None:
        self.client = client
        self.nodes = nodes
        self.disk = disk
        self.field_manager = field_manager
        self.name = name
        self.workers = workers
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = factory.informer(PERSISTENTVOLUMES)
        self.classes = factory.informer(STORAGECLASSES)
        self.queue = WorkQueue(name)
        self._on_claim = on_claim
        self.stats = {"provisioned": 0, "reclaimed": 0}
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda _o, n: self._claim_changed(n))
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda _o, n: self._volume_changed(n))

    def _selected_node(self, pvc: Obj) -> str:
        """The node of ours the claim is to be provisioned on, or ""."""
        node = str(((pvc.get("metadata") or {}).get("annotations") or {}).get(ANN_SELECTED_NODE) or "")
        return node if node in self.nodes and localpath.claim_to_provision(pvc, node) else ""

    def _node_to_reclaim(self, pv: Obj) -> str:
        """The node of ours whose released volume this is to delete, or ""."""
        node = localpath.volume_node(pv)
        return node if node in self.nodes and localpath.volume_to_delete(pv, node) else ""

    def _claim_changed(self, pvc: Obj) -> None:
        if self._selected_node(pvc):
            self.queue.add("claim:" + object_key(pvc))
        if self._on_claim is not None:
            self._on_claim(pvc)

    def _volume_changed(self, pv: Obj) -> None:
        if self._node_to_reclaim(pv):
            self.queue.add("volume:" + object_key(pv))

    async def run(self) -> None:
        await run_workers(self.queue, self.sync, self.workers, self.name, logger=log)

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
            return Result.done()  # provisioned already; the PV controller binds it
        component = f"{LOCAL_PATH_PROVISIONER}_{node}"
        cls = self.classes.get(None, claim_class(pvc))
        problem = localpath.provisioning_problem(pvc, cls)
        if problem:
            await self.client.event(_involved(pvc), "Warning", "ProvisioningFailed", problem, component)
            return Result.after(RETRY_PROBLEM)
        assert cls is not None
        await self.client.event(_involved(pvc), "Normal", "Provisioning",
                                f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
                                component)
        try:
            path = await self.disk.make(node, localpath.directory_name(pv_name, pvc))
        except OSError as e:
            await self.client.event(_involved(pvc), "Warning", "ProvisioningFailed",
                                    f"failed to provision volume with StorageClass \"{claim_class(pvc)}\": {e}",
                                    component)
            return Result.after(RETRY_PROBLEM)
        try:
            await self.client.create(PERSISTENTVOLUMES, None, localpath.provisioned_volume(pvc, cls, node, path),
                                     field_manager=self.field_manager)
        except ApiError as e:
            if e.code != 409:
                raise
            return Result.done()  # an earlier pass made it and said so
        self.stats["provisioned"] += 1
        log.debug("provisioned %s for claim %s/%s at %s", pv_name, namespace, name, path)
        await self.client.event(_involved(pvc), "Normal", "ProvisioningSucceeded",
                                f"Successfully provisioned volume {pv_name}", component)
        return Result.done()

    async def _reclaim(self, name: str) -> Result:
        pv = self.volumes.get(None, name)
        node = self._node_to_reclaim(pv) if pv is not None else ""
        if pv is None or not node:
            return Result.done()
        path = localpath.volume_path(pv)
        try:
            await self.disk.remove(path)
        except OSError as e:
            await self.client.event(_involved(pv), "Warning", "VolumeFailedDelete", str(e),
                                    f"{LOCAL_PATH_PROVISIONER}_{node}")
            return Result.after(RETRY_RECLAIM)
        uid = (pv.get("metadata") or {}).get("uid")
        try:
            await self.client.delete(PERSISTENTVOLUMES, None, name, preconditions={"uid": uid} if uid else None)
        except ApiError as e:
            if e.code not in (404, 409):
                raise
            return Result.done()
        self.stats["reclaimed"] += 1
        log.debug("deleted volume %s and its directory %s", name, path)
        return Result.done()
