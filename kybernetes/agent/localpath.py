"""The node's local-path provisioner (as k3s ships one, run here by every agent for its own
node): the shared provisioner (`kybernetes.client.localpath`) with the node's disk, which
makes a directory under `<data dir>/storage` for each volume and, when a volume is released
with reclaim policy Delete, removes it (never following a link, never outside the storage
root). This module owns that disk I/O."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Callable
from typing import Any

from kybernetes.api import localpath
from kybernetes.client import Client, Informers
from kybernetes.client import localpath as provisioner

Obj = dict[str, Any]
FIELD_MANAGER = "kyb-local-path"


class UnsafePathError(OSError):
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


class NodeDisk:
    """The volumes of this node: directories under its storage root `root`."""

    def __init__(self, root: str) -> None:
        self.root = root

    async def make(self, node: str, dirname: str) -> str:
        return await asyncio.to_thread(make_volume_dir, self.root, dirname)

    async def remove(self, path: str) -> None:
        await asyncio.to_thread(remove_volume_dir, self.root, path)


class LocalPathProvisioner(provisioner.LocalPathProvisioner):
    """Provision and reclaim local-path volumes of one node. The constructor takes its
    informers from `factory`; the caller starts the factory, then awaits `run()`."""

    def __init__(self, client: Client, factory: Informers, node_name: str, data_dir: str,
                 on_claim: Callable[[Obj], None] | None = None) -> None:
        # PVs name absolute paths, and only paths under an absolute root are ever removed.
        self.root = localpath.storage_root(os.path.abspath(data_dir))
        super().__init__(client, factory, {node_name}, NodeDisk(self.root), field_manager=FIELD_MANAGER,
                         on_claim=on_claim)
