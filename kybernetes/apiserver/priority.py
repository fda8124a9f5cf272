"""The Priority admission plugin's shell: hands the rules in `kybernetes/api/priority.py`
the PriorityClasses the watch cache holds, for creates and updates of the resources
those rules name (pods, PriorityClasses)."""

from __future__ import annotations

from typing import Any

from kybernetes.api import priority
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver.watchcache import WatchCache

Obj = dict[str, Any]


class PriorityAdmission:
    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.cache = cache
        info = registry.get(priority.GROUP, "v1", "priorityclasses")
        self.prefix = info.storage_prefix() if info is not None else ""

    def classes(self) -> dict[str, Obj]:
        if not self.prefix:
            return {}
        return {str((co.obj.get("metadata") or {}).get("name")): co.obj for co in self.cache.list(self.prefix)}

    async def mutate_create(self, info: ResourceInfo, obj: Obj) -> None:
        """A mutating step, as upstream orders it: the priority a pod resolves to is set
        before admission webhooks and validation see the pod."""
        if priority.admits(info.group, info.plural):
            priority.admit(info.group, info.plural, obj, None, self.classes)

    def check_update(self, info: ResourceInfo, new: Obj, old: Obj) -> None:
        if priority.admits(info.group, info.plural):
            priority.admit(info.group, info.plural, new, old, self.classes)
