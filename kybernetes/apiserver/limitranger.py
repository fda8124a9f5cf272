"""The LimitRanger admission plugin's shell: hands the rules in `kybernetes/api/limitrange.py`
the namespace's LimitRanges from the watch cache.

As upstream: a new pod gets its containers' default requests and limits (mutating, before
validation), and a pod create or a claim create/update is refused (403) when it breaks a
LimitRange's min / max / maxLimitRequestRatio. Pod updates are not looked at (containers'
resources cannot change).
"""

from __future__ import annotations

from typing import Any

import orjson

from kybernetes.api import limitrange
from kybernetes.api.errors import ApiError
from kybernetes.api.pods import qos_class
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.api.resize import resources_changed
from kybernetes.apiserver.watchcache import WatchCache

Obj = dict[str, Any]
# Judgements remembered, dropped all at once when full.
MEMO_SIZE = 2048


class LimitRanger:
    def __init__(self, registry: Registry, cache: WatchCache) -> None:
        self.cache = cache
        self._memo: dict[bytes, list[str]] = {}
        info = registry.get("", "v1", "limitranges")
        self.prefix = info.storage_prefix() if info is not None else ""

    def ranges(self, namespace: str | None) -> list[Obj]:
        if not self.prefix or not namespace:
            return []
        return [co.obj for co in self.cache.list(self.prefix + namespace + "/")]

    async def mutate_create(self, info: ResourceInfo, obj: Obj) -> None:
        if info.group or info.plural != "pods":
            return
        changed = False
        for lr in self.ranges((obj.get("metadata") or {}).get("namespace")):
            changed = limitrange.default_pod(obj, lr) or changed
        if changed and isinstance(obj.get("status"), dict):
            # Upstream's mutating admission runs before the pod's QoS class is worked out;
            # here the class was set with the rest of the defaults, so it is set again.
            obj["status"]["qosClass"] = qos_class(obj)

    def _violations(self, info: ResourceInfo, obj: Obj, namespace: str) -> list[str]:
        """limitrange.admit, remembered by the LimitRanges' versions and the resources the
        object asks for (a template's pods all ask the same)."""
        cached = self.cache.list(self.prefix + namespace + "/")
        if not cached:
            return []
        spec = obj.get("spec") or {}
        if info.plural == "pods":
            asked: Any = [[(c.get("name"), c.get("resources")) for c in spec.get(k) or () if isinstance(c, dict)]
                          for k in ("containers", "initContainers")]
        else:
            asked = spec.get("resources")
        try:
            key = orjson.dumps([info.plural, [(co.key, co.rev) for co in cached], asked], option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return limitrange.admit(info.group, info.plural, obj, [co.obj for co in cached])
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = limitrange.admit(info.group, info.plural, obj, [co.obj for co in cached])
        return found

    def _check(self, info: ResourceInfo, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        if not self.prefix or not meta.get("namespace"):
            return
        violations = self._violations(info, obj, meta["namespace"])
        if violations:
            name = meta.get("name") or ""
            raise ApiError(403, "Forbidden",
                           f'{info.qualified_plural} "{name}" is forbidden: {limitrange.aggregate(violations)}',
                           {"name": name, "kind": info.plural})

    def check_create(self, info: ResourceInfo, obj: Obj) -> None:
        if limitrange.applies(info.group, info.plural):
            self._check(info, obj)

    def check_update(self, info: ResourceInfo, new: Obj, old: Obj) -> None:
        # Only a changed request (a resize) is judged: upstream skips subresources (a
        # claim's status), which this hook is not told about.
        if not info.group and info.plural == "persistentvolumeclaims" and _requests(new) != _requests(old):
            self._check(info, new)
        # A pod's resources change only through pods/resize, which upstream's LimitRanger judges.
        elif not info.group and info.plural == "pods" and resources_changed(new, old):
            self._check(info, new)


def _requests(claim: Obj) -> Any:
    return ((claim.get("spec") or {}).get("resources") or {}).get("requests")
