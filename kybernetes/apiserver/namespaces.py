"""Namespace lifecycle inside the API server: bootstrap and termination.

On first start the server creates `default`, `kube-system`, `kube-public` and
`kube-node-lease`. A deleted namespace turns Terminating (no new content may be
created in it); everything in it is deleted, then its `kubernetes` finalizer is
removed and the namespace goes away, as the namespace controller does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import WatchCache

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NS_PREFIX = "/registry/core/namespaces/"
log = logging.getLogger(__name__)


class NamespaceLifecycle:
    def __init__(self, registry: Registry, cache: WatchCache, service: ResourceService) -> None:
        self.registry = registry
        self.cache = cache
        self.service = service
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        info = self.registry.get("", "v1", "namespaces")
        assert info is not None
        ctx = WriteContext(field_manager="kybernetes-server")
        for name in SYSTEM_NAMESPACES:
            if self.cache.get(NS_PREFIX + name) is None:
                try:
                    await self.service.create(info, None, {"metadata": {"name": name}}, ctx)
                except ApiError as e:
                    if e.code != 409:
                        raise
        self.service.on_marked_deleted["Namespace"] = lambda _info, obj: self.schedule(obj["metadata"]["name"])
        for co in self.cache.list(NS_PREFIX):
            if co.obj["metadata"].get("deletionTimestamp"):
                self.schedule(co.obj["metadata"]["name"])

    def schedule(self, name: str) -> None:
        if name in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(self._finalize(name))
        self._tasks[name] = task
        task.add_done_callback(lambda _t: self._tasks.pop(name, None))

    async def stop(self) -> None:
        for t in list(self._tasks.values()):
            t.cancel()

    def _contents(self, name: str) -> list[tuple[Any, Any]]:
        out = []
        for info in self.registry.all():
            if not info.namespaced:
                continue
            for co in self.cache.list(info.storage_prefix() + name + "/"):
                out.append((info, co))
        return out

    async def _finalize(self, name: str) -> None:
        ctx = WriteContext(field_manager="kybernetes-namespace-controller")
        delay = 0.05
        while True:
            ns = self.cache.get(NS_PREFIX + name)
            if ns is None:
                return
            contents = self._contents(name)
            if contents:
                for info, co in contents:
                    if co.obj["metadata"].get("deletionTimestamp"):
                        continue
                    try:
                        await self.service.delete(info, name, co.obj["metadata"]["name"],
                                                  {"propagationPolicy": "Background"}, ctx)
                    except ApiError as e:
                        if e.code not in (404, 409):
                            log.warning("namespace %s: deleting %s: %s", name, co.key, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            info = self.registry.get("", "v1", "namespaces")
            new = om.deep_copy(ns.obj)
            spec = new.setdefault("spec", {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
            try:
                await self.service._update_from(info, ns, new, ctx, "", expected=ns.rev)  # noqa: SLF001
            except ApiError as e:
                if e.code != 409:
                    log.warning("namespace %s: finalize: %s", name, e)
                await asyncio.sleep(0.05)
                continue
            return
