"""The local-path provisioner of simulated nodes: the shared provisioner
(`kybernetes.client.localpath`, the same decisions and API objects as a real agent's) with a
disk that exists nowhere. A claim the scheduler selected one of these nodes for gets its
PersistentVolume (at a path that exists on no disk), a released Delete volume of theirs is
deleted, and the simulator holds a pod until its claims are bound, as a kubelet waits to
mount them."""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any

from kybernetes.api import localpath
from kybernetes.api.storage import claim_is_bound
from kybernetes.client import Client, Informers
from kybernetes.client import localpath as provisioner

Obj = dict[str, Any]
FIELD_MANAGER = "kyb-sim-nodes"
# Where a simulated node would keep its volumes; nothing is created there.
SIM_DATA_DIR = "/var/lib/kybernetes-sim"


class NoDisk:
    """Volume paths under a simulated node's would-be data directory; nothing on any disk."""

    async def make(self, node: str, dirname: str) -> str:
        return f"{localpath.storage_root(f'{SIM_DATA_DIR}/{node}')}/{dirname}"

    async def remove(self, path: str) -> None:
        return None


class SimLocalPath(provisioner.LocalPathProvisioner):
    """Provision and reclaim local-path volumes for the simulated nodes in `nodes` (a live
    view of the names being served). `on_claim` hears every claim change."""

    def __init__(self, client: Client, factory: Informers, nodes: Container[str],
                 on_claim: Callable[[Obj], None] | None = None) -> None:
        super().__init__(client, factory, nodes, NoDisk(), field_manager=FIELD_MANAGER, name="sim-local-path",
                         workers=4, on_claim=on_claim)

    def claims_bound(self, pod: Obj) -> bool:
        """Every claim the pod mounts is Bound (a missing one is not)."""
        ns = (pod.get("metadata") or {}).get("namespace")
        for name in localpath.pod_claims(pod):
            pvc = self.claims.get(ns, name)
            if pvc is None or not claim_is_bound(pvc):
                return False
        return True
