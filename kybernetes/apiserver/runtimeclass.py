"""The RuntimeClass admission plugin's shell: hands the rules in
`kybernetes/api/runtimeclass.py` the RuntimeClasses the watch cache holds, for pod
creates (upstream's plugin handles creates only: a pod's runtimeClassName and overhead
cannot change afterwards). Pods with image volumes are refused here too."""

from __future__ import annotations

from typing import Any

from kybernetes.api import runtimeclass
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver.watchcache import WatchCache

Obj = dict[str, Any]


class RuntimeClassAdmission:
    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.cache = cache
        self.info = registry.get(runtimeclass.GROUP, "v1", "runtimeclasses")

    def lookup(self, name: str) -> Obj | None:
        if self.info is None:
            return None
        co = self.cache.get(self.info.key("", name))
        return co.obj if co is not None else None

    @staticmethod
    def _is_pod(info: ResourceInfo) -> bool:
        return info.group == "" and info.plural == "pods"

    async def mutate_create(self, info: ResourceInfo, obj: Obj) -> None:
        if self._is_pod(info):
            runtimeclass.admit_runtime_class(obj, self.lookup)

    def check_create(self, info: ResourceInfo, obj: Obj) -> None:
        if not self._is_pod(info):
            return
        errs = runtimeclass.image_volume_errors(obj)
        if errs:
            raise ApiError.invalid("", "Pod", (obj.get("metadata") or {}).get("name") or "", errs)
        refused = runtimeclass.overhead_error(obj, self.lookup)
        if refused is not None:
            raise refused
