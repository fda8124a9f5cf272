"""CustomResourceDefinitions: from a CRD object to served resources, and its lifecycle.

A CRD's served versions become registry entries as soon as the watch cache sees
it, and disappear when it is deleted; the custom resources of a deleted CRD are
removed before the CRD is let go (finalizer `customresourcecleanup.apiextensions.k8s.io`).
The CRD's own rules (validation, the status the real server's CRD controllers set)
are its strategy's, in `kybernetes.api.kinds.crd`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kybernetes.api.kinds.crd import CLEANUP_FINALIZER, CRD, accepted_names
from kybernetes.api.registry import Registry, ResourceInfo, ScalePaths
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

if TYPE_CHECKING:
    from kybernetes.apiserver.resources import ResourceService

CRD_PREFIX = "/registry/apiextensions.k8s.io/customresourcedefinitions/"
log = logging.getLogger(__name__)


def resource_infos(crd: dict[str, Any]) -> list[ResourceInfo]:
    """One ResourceInfo per served version of the CRD."""
    spec = crd.get("spec") or {}
    names = accepted_names(spec)
    versions = spec.get("versions") or []
    served = {v.get("name", "") for v in versions if v.get("served", True)}
    # Objects are written in the storage version and read in the version asked for. Those
    # written before the storage version changed stay in theirs until written again, so a
    # CRD of several versions converts on every read (apiVersion only: strategy None).
    storage = next((v.get("name", "") for v in versions if v.get("storage")), "")
    storage_version = storage if storage in served else ""
    mixed = len(versions) > 1
    out = []
    for v in versions:
        if not v.get("served", True):
            continue
        subs = (v.get("subresources") or {})
        subresources: list[str] = []
        scale = None
        if "status" in subs:
            subresources.append("status")
        if "scale" in subs:
            sc = subs["scale"] or {}
            subresources.append("scale")
            scale = ScalePaths(sc.get("specReplicasPath", ".spec.replicas"),
                               sc.get("statusReplicasPath", ".status.replicas"),
                               sc.get("labelSelectorPath"))
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object",
                                                                       "x-kubernetes-preserve-unknown-fields": True}
        out.append(ResourceInfo(
            group=spec.get("group", ""), version=v.get("name", ""), kind=names.get("kind", ""),
            plural=names.get("plural", ""), singular=names.get("singular", ""),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            subresources=tuple(subresources), scale=scale, crd_schema=schema,
            printer_columns=v.get("additionalPrinterColumns"),
            # Set on the other versions only, as for built-in kinds: it names where they are stored.
            storage_version=storage_version if v.get("name", "") != storage_version else "",
            extra={"crd": crd["metadata"]["name"], "mixed_versions": mixed},
        ))
    return out


class CrdController:
    """Keeps the registry in step with stored CRDs and cleans up deleted ones."""

    def __init__(self, registry: Registry, cache: WatchCache, service: ResourceService) -> None:
        self.registry = registry
        self.cache = cache
        self.service = service
        self._served: dict[str, list[tuple[str, str, str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        for co in self.cache.list(CRD_PREFIX):
            self._register(co.obj)
            if co.obj["metadata"].get("deletionTimestamp"):
                self.schedule_cleanup(co.obj)
        self.cache.add_listener(self._on_event)
        self.service.kinds.add_deletion_listener(CRD, self.schedule_cleanup)

    def _on_event(self, ev: CacheEvent) -> None:
        if not ev.key.startswith(CRD_PREFIX):
            return
        if ev.type == "DELETED":
            self._unregister(ev.current.obj["metadata"]["name"])
        else:
            self._register(ev.current.obj)

    def _register(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        self._unregister(name)
        served = []
        for info in resource_infos(crd):
            self.registry.add(info)
            served.append((info.group, info.version, info.plural))
        self._served[name] = served

    def _unregister(self, name: str) -> None:
        for gvr in self._served.pop(name, []):
            self.registry.remove(*gvr)

    def schedule_cleanup(self, crd: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._cleanup(crd["metadata"]["name"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cleanup(self, name: str) -> None:
        from kybernetes.apiserver.resources import WriteContext

        ctx = WriteContext(field_manager="kybernetes-crd-cleanup")
        for _ in range(600):
            co = self.cache.get(CRD_PREFIX + name)
            if co is None:
                return
            spec = co.obj.get("spec") or {}
            prefix = f"/registry/{spec.get('group')}/{(spec.get('names') or {}).get('plural')}/"
            remaining = self.cache.list(prefix)
            infos = resource_infos(co.obj)
            if remaining and infos:
                info = infos[0]
                for item in remaining:
                    m = item.obj["metadata"]
                    if m.get("deletionTimestamp"):
                        continue
                    try:
                        await self.service.delete(info, m.get("namespace"), m["name"], {}, ctx)
                    except Exception as e:  # noqa: BLE001 - keep cleaning the rest
                        log.warning("crd cleanup: deleting %s failed: %s", item.key, e)
                await asyncio.sleep(0.2)
                continue
            new = om.deep_copy(co.obj)
            new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or []
                                             if f != CLEANUP_FINALIZER]
            crd_info = self.registry.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            try:
                await self.service.update_object(crd_info, co, new, ctx, "", expected=co.rev)
                return
            except Exception as e:  # noqa: BLE001 - retry on conflict
                log.debug("crd cleanup retry: %s", e)
                await asyncio.sleep(0.1)
