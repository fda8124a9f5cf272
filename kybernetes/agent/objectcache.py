"""The ConfigMaps and Secrets the node's pods use, each followed by a watch of that one
object (the kubelet's `Watch` change-detection strategy).

A pod's volumes and environment read them here instead of asking the API server at every
sync, and a change to one wakes the pods that use it at once, where a periodic resync
would find it only at its next round. An object is watched while a pod on the node names
it; the node authorizer lets a node watch exactly those, one name per watch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kybernetes.api import nodegraph
from kybernetes.client.informer import Informer
from kybernetes.client.protocols import Client
from kybernetes.client.resources import CONFIGMAPS, SECRETS, Resource

Obj = dict[str, Any]
Ref = tuple[str, str, str]  # (nodegraph kind, namespace, name)

# The API kind a volume or env source names, by the node graph's word for it.
WATCHED: dict[str, tuple[str, Resource]] = {nodegraph.CONFIGMAP: ("ConfigMap", CONFIGMAPS),
                                            nodegraph.SECRET: ("Secret", SECRETS)}
_BY_KIND = {kind: word for word, (kind, _res) in WATCHED.items()}


def watched_references(pod: Obj | None) -> frozenset[Ref]:
    """The ConfigMaps and Secrets `pod` names (volumes, env, envFrom, image pull secrets)."""
    if pod is None:
        return frozenset()
    return frozenset(ref for ref in nodegraph.pod_references(pod) if ref[0] in WATCHED)


class ReferencedObjects:
    """Watches of the objects the node's pods name; `on_change(pod key)` for each pod that
    names an object when it changes, appears or goes."""

    def __init__(self, client: Client, on_change: Callable[[str], None]) -> None:
        self.client = client
        self.on_change = on_change
        self._refs: dict[str, frozenset[Ref]] = {}  # pod key -> what it names
        self._users: dict[Ref, set[str]] = {}  # object -> pod keys naming it
        self._watches: dict[Ref, Informer] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def set_pod(self, key: str, pod: Obj | None) -> None:
        """Follow what `pod` (None: gone from the node) names, and no longer what it did."""
        refs = watched_references(pod)
        old = self._refs.get(key, frozenset())
        if refs == old:
            return
        for ref in old - refs:
            users = self._users.get(ref)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._users[ref]
                    self._unwatch(ref)
        for ref in refs - old:
            self._users.setdefault(ref, set()).add(key)
            if ref not in self._watches:
                self._watch(ref)
        if refs:
            self._refs[key] = refs
        else:
            self._refs.pop(key, None)

    def get(self, kind: str, namespace: str, name: str) -> tuple[bool, Obj | None]:
        """(known, object): known once the object's watch has listed it; the object is
        None when it does not exist."""
        word = _BY_KIND.get(kind)
        informer = self._watches.get((word, namespace, name)) if word else None
        if informer is None or not informer.synced.is_set():
            return False, None
        return True, informer.get(namespace, name)

    def watched(self) -> set[Ref]:
        return set(self._watches)

    async def close(self) -> None:
        for ref in list(self._watches):
            self._unwatch(ref)
        await asyncio.gather(*self._stopping, return_exceptions=True)

    def _watch(self, ref: Ref) -> None:
        word, namespace, name = ref
        informer = Informer(self.client, WATCHED[word][1], namespace=namespace,
                            field_selector=f"metadata.name={name}")

        def changed(obj: Obj) -> None:
            # The first listing is no change: the pods naming it read it when they sync.
            if informer.synced.is_set() and (obj.get("metadata") or {}).get("name") == name:
                for key in sorted(self._users.get(ref, ())):
                    self.on_change(key)

        informer.add_handler(on_add=changed, on_update=lambda _old, new: changed(new), on_delete=changed)
        self._watches[ref] = informer
        informer.start()

    def _unwatch(self, ref: Ref) -> None:
        informer = self._watches.pop(ref, None)
        if informer is not None:
            task = asyncio.get_running_loop().create_task(informer.stop())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
