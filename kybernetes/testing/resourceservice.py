"""The API server's request core without HTTP, for unit tests: a `ResourceService` on a
real SQLite store (no fsync) and its watch cache, with some namespaces already made."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from kybernetes.api.registry import Registry
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import WatchCache
from kybernetes.storage.sqlite import SQLiteStore


@asynccontextmanager
async def resource_service(data_dir: str | os.PathLike[str], namespaces: Iterable[str] = ("default",),
                           ) -> AsyncIterator[ResourceService]:
    """A started service whose store lives in `data_dir`; closed (cache, then store) on exit."""
    store = SQLiteStore(os.path.join(data_dir, "state.db"), fsync=False)
    await store.start()
    cache = WatchCache(store)
    try:
        await cache.start()
        service = ResourceService(store, cache)
        ns_info = Registry().get("", "v1", "namespaces")
        for name in namespaces:
            await service.create(ns_info, None, {"metadata": {"name": name}}, WriteContext(field_manager="test"))
        yield service
    finally:
        await cache.close()
        await store.close()
