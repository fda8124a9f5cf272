"""The node's local-path provisioner (as k3s ships one, run here by every agent for its own
node): it watches claims and volumes, makes a directory under `<data dir>/storage` for a
claim the scheduler selected this node for and creates the PersistentVolume pinned to this
node; when such a volume is released with reclaim policy Delete it removes the directory
(never following a link, never outside the storage root) and then the PV object. What to do
is decided in `kybernetes.api.localpath`; this module is the I/O."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import stat
from collections.abc import Callable
from typing import Any

from kybernetes.api import localpath
from kybernetes.api.errors import ApiError
from kybernetes.api.storage import LOCAL_PATH_PROVISIONER, claim_class
from kybernetes.client import Client, Informers, WorkQueue, object_key, run_workers
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
STORAGECLASSES = Resource.for_kind("storage.k8s.io/v1", "StorageClass")
FIELD_MANAGER = "kyb-local-path"
RETRY_PROBLEM = 5.0


class UnsafePathError(Exception):
    """A volume names a path the provisioner must not remove."""


def make_volume_dir(root: str, name: str) -> str:
    """`root/name` with the contract's modes (the root 0700, the volume 0777); an existing
    directory is reused (a retry after a failed PV create)."""
    os.makedirs(root, mode=localpath.STORAGE_ROOT_MODE, exist_ok=True)
    os.chmod(root, localpath.STORAGE_ROOT_MODE)
    path = os.path.join(root, name)
    try:
        os.mkdir(path)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafePathError(f"{path} exists and is not a directory") from None
    # chmod after mkdir: the process umask would otherwise narrow the mode.
    os.chmod(path, localpath.VOLUME_DIR_MODE)
    return path


def remove_volume_dir(root: str, path: str) -> None:
    """Remove a volume's directory: only a direct child of `root`; a symlink there is
    unlinked, never followed, and the tree walk does not follow links inside either."""
    if not localpath.removable_path(path, root):
        raise UnsafePathError(f"refusing to remove {path}: not a volume directory under {root}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux has the fd-based walk
        raise UnsafePathError("this platform cannot remove a tree without following symlinks")
    shutil.rmtree(path)


def _involved(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"kind": obj.get("kind") or ("PersistentVolumeClaim" if meta.get("namespace") else "PersistentVolume"),
            "apiVersion": "v1",
            "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "resourceVersion") if meta.get(k)}}


class LocalPathProvisioner:
    """Provision and reclaim local-path volumes of one node. The constructor takes its
    informers from `factory`; the caller starts the factory, then awaits `run()`."""

    def __init__(self, client: Client, factory: Informers, node_name: str, data_dir: str,
                 on_claim: Callable[[Obj], None] | None = None) -> None:
        self.client = client
        self.node_name = node_name
        # PVs name absolute paths, and only paths under an absolute root are ever removed.
        self.root = localpath.storage_root(os.path.abspath(data_dir))
        self.component = f"{LOCAL_PATH_PROVISIONER}_{node_name}"
        self.claims = factory.informer(PERSISTENTVOLUMECLAIMS)
        self.volumes = factory.informer(PERSISTENTVOLUMES)
        self.classes = factory.informer(STORAGECLASSES)
        self.queue = WorkQueue("local-path")
        self._on_claim = on_claim
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda _o, n: self._claim_changed(n))
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda _o, n: self._volume_changed(n))

    def _claim_changed(self, pvc: Obj) -> None:
        if localpath.claim_to_provision(pvc, self.node_name):
            self.queue.add("claim:" + object_key(pvc))
        if self._on_claim is not None:
            self._on_claim(pvc)

    def _volume_changed(self, pv: Obj) -> None:
        if localpath.volume_to_delete(pv, self.node_name):
            self.queue.add("volume:" + object_key(pv))

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, "local-path", logger=log)

    async def sync(self, key: str) -> Result:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            ns, _, name = rest.partition("/")
            return await self._provision(ns, name)
        return await self._reclaim(rest)

    async def _provision(self, namespace: str, name: str) -> Result:
        pvc = self.claims.get(namespace, name)
        if pvc is None or not localpath.claim_to_provision(pvc, self.node_name):
            return Result.done()
        pv_name = localpath.volume_name(pvc)
        if self.volumes.get(None, pv_name) is not None:
            return Result.done()  # provisioned already; the PV controller binds it
        cls = self.classes.get(None, claim_class(pvc))
        problem = localpath.provisioning_problem(pvc, cls)
        if problem:
            await self.client.event(_involved(pvc), "Warning", "ProvisioningFailed", problem, self.component)
            return Result.after(RETRY_PROBLEM)
        assert cls is not None
        await self.client.event(_involved(pvc), "Normal", "Provisioning",
                                f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
                                self.component)
        dirname = localpath.directory_name(pv_name, pvc)
        try:
            path = await asyncio.to_thread(make_volume_dir, self.root, dirname)
        except (OSError, UnsafePathError) as e:
            await self.client.event(_involved(pvc), "Warning", "ProvisioningFailed",
                                    f"failed to provision volume with StorageClass \"{claim_class(pvc)}\": {e}",
                                    self.component)
            return Result.after(RETRY_PROBLEM)
        pv = localpath.provisioned_volume(pvc, cls, self.node_name, path)
        try:
            await self.client.create(PERSISTENTVOLUMES, None, pv, field_manager=FIELD_MANAGER)
        except ApiError as e:
            if e.code != 409:
                raise
        log.info("provisioned %s for claim %s/%s at %s", pv_name, namespace, name, path)
        await self.client.event(_involved(pvc), "Normal", "ProvisioningSucceeded",
                                f"Successfully provisioned volume {pv_name}", self.component)
        return Result.done()

    async def _reclaim(self, name: str) -> Result:
        pv = self.volumes.get(None, name)
        if pv is None or not localpath.volume_to_delete(pv, self.node_name):
            return Result.done()
        path = localpath.volume_path(pv)
        try:
            await asyncio.to_thread(remove_volume_dir, self.root, path)
        except (OSError, UnsafePathError) as e:
            await self.client.event(_involved(pv), "Warning", "VolumeFailedDelete", str(e), self.component)
            return Result.after(30.0)
        uid = (pv.get("metadata") or {}).get("uid")
        try:
            await self.client.delete(PERSISTENTVOLUMES, None, name, preconditions={"uid": uid} if uid else None)
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        log.info("deleted volume %s and its directory %s", name, path)
        return Result.done()
