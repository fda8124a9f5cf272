"""The `scale` subresource: an autoscaling/v1 Scale view of any kind with replicas.

Where a kind keeps its replica counts and selector comes from the registry
(`ResourceInfo.scale`: built-in workloads, and custom resources whose CRD enables
the subresource), so one `ScaleSubresource` serves them all.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.errors import ApiError, invalid
from kybernetes.api.jsonutil import clone
from kybernetes.api.registry import ResourceInfo, ScalePaths
from kybernetes.api.selectors import label_selector_to_string, selector_from_set

Obj = dict[str, Any]


def _get(obj: Any, dotted: str) -> Any:
    node = obj
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set(obj: Obj, dotted: str, value: Any) -> None:
    parts = [p for p in dotted.split(".") if p]
    node = obj
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


class ScaleSubresource:
    """Reads and writes a kind's replicas through its `ScalePaths`."""

    def __init__(self, paths: ScalePaths) -> None:
        self.paths = paths

    def view(self, obj: Obj) -> Obj:
        """The Scale of `obj`."""
        meta = obj["metadata"]
        status: Obj = {"replicas": _get(obj, self.paths.status_replicas) or 0}
        selector = _get(obj, self.paths.label_selector) if self.paths.label_selector else None
        if selector is None and isinstance(_get(obj, ".spec.selector"), dict):
            selector = _get(obj, ".spec.selector")
            if self.paths.set_selector:
                selector = str(selector_from_set(selector))
        if isinstance(selector, dict):
            selector = label_selector_to_string(selector)
        if selector:
            status["selector"] = selector
        scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                      if k in meta}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
                "spec": {"replicas": _get(obj, self.paths.spec_replicas) or 0}, "status": status}

    def apply(self, obj: Obj, scale: Any, name: str) -> Obj:
        """A copy of `obj` with the replicas `scale` asks for; 422 for a count that is
        not a non-negative integer."""
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError.invalid("autoscaling", "Scale", name, [invalid(
                "spec.replicas", replicas, "must be greater than or equal to 0")])
        new = clone(obj)
        _set(new, self.paths.spec_replicas, replicas)
        return new


def scale_subresource(info: ResourceInfo) -> ScaleSubresource | None:
    """The kind's scale subresource, None when it has none."""
    return ScaleSubresource(info.scale) if info.scale is not None else None
