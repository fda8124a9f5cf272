"""Informers: a local, indexed copy of one resource kept current by list + watch.

An informer lists (consistent read), then watches from the list's
resourceVersion, re-watching from the last seen revision when a watch ends and
relisting on `410 Gone`. Handlers run synchronously on the event loop for
every add/update/delete, so controllers only enqueue keys there. Indexes
answer "pods of this node", "objects in this namespace", "dependents of this
owner" without scanning.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from kybernetes.api.errors import ApiError
from kybernetes.client.protocols import Client, IndexFunc, SharedInformer
from kybernetes.client.resources import Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# Takes a decoded object the informer owns (it may change it) and returns what to keep.
Transform = Callable[[Obj], Obj]


def object_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def namespace_index(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def owner_index(obj: Obj) -> list[str]:
    """uids of the object's controller owner (the `owner` index)."""
    return [ref["uid"] for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("controller") and ref.get("uid")]


class Informer:
    def __init__(self, client: Client, res: Resource, namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", indexers: dict[str, IndexFunc] | None = None,
                 transform: Transform | None = None) -> None:
        self.client = client
        self.transform = transform
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store: dict[str, Obj] = {}
        self.indexers: dict[str, IndexFunc] = {"namespace": namespace_index, "owner": owner_index}
        self.indexers.update(indexers or {})
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self.indexers}
        self._handlers: list[tuple[Any, Any, Any]] = []
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._task: asyncio.Task[None] | None = None

    # -- configuration -----------------------------------------------------------------

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        for name, fn in indexers.items():
            if name in self.indexers:
                continue
            self.indexers[name] = fn
            idx: dict[str, set[str]] = {}
            for key, obj in self.store.items():
                for v in fn(obj):
                    idx.setdefault(v, set()).add(key)
            self._indexes[name] = idx

    def add_handler(self, on_add: Callable[[Obj], None] | None = None,
                    on_update: Callable[[Obj, Obj], None] | None = None,
                    on_delete: Callable[[Obj], None] | None = None) -> None:
        self._handlers.append((on_add, on_update, on_delete))
        if self.synced.is_set() and on_add is not None:
            for obj in list(self.store.values()):
                on_add(obj)

    # -- reads -------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.store.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return list(self.store.values())

    def by_index(self, index: str, value: str) -> list[Obj]:
        keys = self._indexes[index].get(value)
        if not keys:
            return []
        return [self.store[k] for k in keys if k in self.store]

    def keys_by_index(self, index: str, value: str) -> set[str]:
        return set(self._indexes[index].get(value) or ())

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    backoff = 0.2
                await self._watch()
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.code == 410:
                    need_list = True
                    continue
                log.warning("informer %s: %s", self.res.plural, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as e:
                log.info("informer %s: connection problem: %s", self.res.plural, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _list(self) -> None:
        items: list[Obj] = []
        cont = ""
        rv = ""
        while True:
            page = await self.client.list(self.res, self.namespace, self.label_selector, self.field_selector,
                                          limit=500, continue_=cont)
            items.extend(page.get("items") or [])
            rv = (page.get("metadata") or {}).get("resourceVersion", "")
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                break
        fresh = {object_key(o): o for o in items}
        for key in list(self.store):
            if key not in fresh:
                self._delete(self.store[key])
        for obj in fresh.values():
            self._upsert(obj)
        self.resource_version = rv
        self.synced.set()

    async def _watch(self) -> None:
        timeout = random.randint(300, 600)
        async for type_, obj in self.client.watch(self.res, self.namespace, self.resource_version,
                                                   self.label_selector, self.field_selector, timeout):
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if type_ == "BOOKMARK":
                if rv:
                    self.resource_version = rv
                continue
            if type_ == "DELETED":
                self._delete(obj)
            else:
                self._upsert(obj)
            if rv:
                self.resource_version = rv

    # -- store -------------------------------------------------------------------------

    def _index_add(self, key: str, obj: Obj) -> None:
        for name, fn in self.indexers.items():
            idx = self._indexes[name]
            for v in fn(obj):
                idx.setdefault(v, set()).add(key)

    def _index_remove(self, key: str, obj: Obj) -> None:
        for name, fn in self.indexers.items():
            idx = self._indexes[name]
            for v in fn(obj):
                s = idx.get(v)
                if s is not None:
                    s.discard(key)
                    if not s:
                        del idx[v]

    def _upsert(self, obj: Obj) -> None:
        # Like client-go's TransformStripManagedFields in the controller manager and the
        # scheduler: nobody here reads managedFields, and they are a large part of each object.
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        if self.transform is not None:
            obj = self.transform(obj)
        key = object_key(obj)
        old = self.store.get(key)
        if old is not None:
            if (old.get("metadata") or {}).get("resourceVersion") == (obj.get("metadata") or {}).get(
                    "resourceVersion"):
                return
            self._index_remove(key, old)
        self.store[key] = obj
        self._index_add(key, obj)
        for on_add, on_update, _ in self._handlers:
            try:
                if old is None:
                    if on_add is not None:
                        on_add(obj)
                elif on_update is not None:
                    on_update(old, obj)
            except Exception:  # noqa: BLE001 - one handler's bug must not stop the informer
                log.exception("informer %s handler failed", self.res.plural)

    def _delete(self, obj: Obj) -> None:
        if self.transform is not None:
            obj = self.transform(obj)
        key = object_key(obj)
        old = self.store.pop(key, None)
        if old is None:
            return
        self._index_remove(key, old)
        for _, _, on_delete in self._handlers:
            if on_delete is not None:
                try:
                    on_delete(obj)
                except Exception:  # noqa: BLE001 - one handler's bug must not stop the informer
                    log.exception("informer %s delete handler failed", self.res.plural)


def add_object_handler(informer: SharedInformer, handler: Callable[[Obj], None], *, deletes: bool = True) -> None:
    """Register `handler` on `informer` for every add, update (with the new object) and,
    unless `deletes` is False, delete: for controllers that only enqueue a key."""
    informer.add_handler(on_add=handler, on_update=lambda _old, new: handler(new),
                         on_delete=handler if deletes else None)


class InformerFactory:
    """Shared informers: one per (resource, namespace, selectors) for all controllers of a process.

    `transforms` are applied to every object of a resource before it is stored (like
    client-go's SetTransform): a process that reads only part of an object keeps only
    that part, which is most of its memory when it holds thousands of pods."""

    def __init__(self, client: Client, transforms: Mapping[Resource, Transform] | None = None) -> None:
        self.client = client
        self.transforms = dict(transforms or {})
        self._informers: dict[tuple[Resource, str | None, str, str], Informer] = {}

    def informer(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", indexers: dict[str, IndexFunc] | None = None) -> Informer:
        key = (res, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, res, namespace, label_selector, field_selector, indexers,
                           self.transforms.get(res))
            self._informers[key] = inf
            if self._started:
                inf.start()
        elif indexers:
            inf.add_indexers(indexers)
        return inf

    _started = False

    async def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_synced(self, timeout: float = 60.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self._informers.values())), timeout)

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()
