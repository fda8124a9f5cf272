"""The storage admission plugins' shell (upstream's DefaultStorageClass and
PersistentVolumeClaimResize): hands the rules in `kybernetes/api/kinds/storage.py` the
StorageClasses the watch cache holds, for creates and updates of claims."""

from __future__ import annotations

from typing import Any

from kybernetes.api.kinds.storage import admit_claim_create, admit_claim_update
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver.watchcache import WatchCache

Obj = dict[str, Any]


class StorageAdmission:
    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.cache = cache
        self.classes_info = registry.get("storage.k8s.io", "v1", "storageclasses")

    def _classes(self) -> list[Obj]:
        if self.classes_info is None:
            return []
        return [co.obj for co in self.cache.list(self.classes_info.storage_prefix())]

    def _class_named(self, name: str) -> Obj | None:
        if self.classes_info is None:
            return None
        co = self.cache.get(self.classes_info.key("", name))
        return co.obj if co is not None else None

    @staticmethod
    def _is_claim(info: ResourceInfo) -> bool:
        return info.group == "" and info.plural == "persistentvolumeclaims"

    def check_create(self, info: ResourceInfo, obj: Obj) -> None:
        if self._is_claim(info):
            admit_claim_create(obj, self._classes())

    def check_update(self, info: ResourceInfo, new: Obj, old: Obj) -> None:
        if self._is_claim(info):
            admit_claim_update(new, old, self._class_named)
