"""The seams between the components and the client library, as Protocols: what a
controller, the scheduler, the node agent, the proxy or DNS may call on an API client
(`Client`), on a local cache of one resource (`Cache`, `SharedInformer`) and on the
factory that shares informers (`Informers`).

`ApiClient`, `Informer` and `InformerFactory` are the implementations over HTTP;
`kybernetes.testing.fakes` has in-memory ones for unit tests. Components annotate their
constructors with these Protocols, so anything that keeps the contract can stand in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from kybernetes.client.resources import Resource

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], list[str]]


class Client(Protocol):
    """The API verbs. Every failure the server reports raises `ApiError`."""

    async def get(self, res: Resource, namespace: str | None, name: str, subresource: str = "") -> Obj: ...

    async def list(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> Obj: ...

    async def create(self, res: Resource, namespace: str | None, obj: Obj,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj: ...

    async def update(self, res: Resource, namespace: str | None, name: str, obj: Obj,
                     subresource: str = "", field_manager: str | None = None) -> Obj: ...

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", field_manager: str | None = None, force: bool = False) -> Obj: ...

    async def delete(self, res: Resource, namespace: str | None, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj: ...

    async def delete_collection(self, res: Resource, namespace: str | None, label_selector: str = "",
                                propagation_policy: str | None = None) -> Obj: ...

    async def create_subresource(self, res: Resource, namespace: str | None, name: str, subresource: str,
                                 body: Obj) -> Obj: ...

    def watch(self, res: Resource, namespace: str | None = None, resource_version: str = "",
              label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
              allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) events of one watch request until the server ends it."""
        ...

    async def get_raw(self, path: str) -> Any:
        """A GET of any path (discovery documents), decoded."""
        ...

    async def event(self, involved: Obj, type_: str, reason: str, message: str, component: str) -> None:
        """Record a core/v1 Event about `involved`; best effort, never raises."""
        ...

    async def close(self) -> None: ...


class Cache(Protocol):
    """Reads of a local copy of one resource. Objects returned are the cache's own:
    callers must not change them."""

    def get(self, namespace: str | None, name: str) -> Obj | None: ...

    def get_by_key(self, key: str) -> Obj | None:
        """By "namespace/name" (or "name" for a cluster-scoped object)."""
        ...

    def list(self) -> list[Obj]: ...

    def by_index(self, index: str, value: str) -> list[Obj]: ...

    def keys_by_index(self, index: str, value: str) -> set[str]: ...


class SharedInformer(Cache, Protocol):
    """A cache kept current from the API, with handlers called on every change. It
    indexes by "namespace" and "owner" (controller owner uid) from the start."""

    synced: asyncio.Event

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None: ...

    def add_handler(self, on_add: Callable[[Obj], None] | None = None,
                    on_update: Callable[[Obj, Obj], None] | None = None,
                    on_delete: Callable[[Obj], None] | None = None) -> None:
        """Handlers run synchronously on the event loop; a handler added after the
        first sync is called with every cached object as an add."""
        ...


class Informers(Protocol):
    """Shared informers of one process: one per resource, namespace and selectors."""

    def informer(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", indexers: dict[str, IndexFunc] | None = None) -> SharedInformer: ...

    async def start(self) -> None: ...

    async def wait_synced(self, timeout: float = 60.0) -> None: ...

    async def stop(self) -> None: ...
