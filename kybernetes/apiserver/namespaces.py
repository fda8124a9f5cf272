"""The namespaces every cluster starts with.

On first start the server creates `default`, `kube-system`, `kube-public` and
`kube-node-lease`. Deleting a namespace only marks it Terminating here (the
server refuses new content in it); emptying and finalizing it is the namespace
controller's work (`kybernetes/controllers/namespace.py`).
"""

from __future__ import annotations

from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import WatchCache

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NS_PREFIX = "/registry/core/namespaces/"


async def ensure_system_namespaces(registry: Registry, cache: WatchCache, service: ResourceService) -> None:
    info = registry.get("", "v1", "namespaces")
    assert info is not None
    ctx = WriteContext(field_manager="kybernetes-server")
    for name in SYSTEM_NAMESPACES:
        if cache.get(NS_PREFIX + name) is None:
            try:
                await service.create(info, None, {"metadata": {"name": name}}, ctx)
            except ApiError as e:
                if e.code != 409:
                    raise
