"""Reads of a kind in a version other than the one it is stored in.

Objects are stored, cached and watched in their kind's storage version; a GET,
LIST or WATCH in another served version (autoscaling/v1 HorizontalPodAutoscalers,
stored as v2) converts each object through the kind strategy's `convert` on the
way out. The encoded bytes of recent conversions are kept, keyed by key, revision
and version, so a watch event fanned out to many watchers is converted once.
Writes convert in `ResourceService`.

Custom resources are read through their CRD's schema defaults the same way: an object
stored before a `default` was added reads with it, as kube-apiserver defaults on decode.
A CRD of several versions converts every read: its objects may be stored in any of them
(those written before the storage version changed keep theirs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import orjson

from kybernetes.api.defaults import apply_schema_defaults
from kybernetes.api.jsonutil import clone
from kybernetes.api.kinds import Strategies
from kybernetes.api.registry import ResourceInfo
from kybernetes.apiserver.watchcache import CachedObject

_KEEP = 2048
_RAW: Callable[[CachedObject], bytes] = attrgetter("raw")


def _has_default(schema: Any) -> bool:
    if isinstance(schema, dict):
        return "default" in schema or any(_has_default(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_default(v) for v in schema)
    return False


class VersionedReads:
    """Encodes cached (storage-version) objects in the version a request asked for."""

    def __init__(self, kinds: Strategies) -> None:
        self.kinds = kinds
        self._encoded: OrderedDict[tuple[str, int, str, int], bytes] = OrderedDict()
        # id(schema) -> (schema, whether it has defaults); the schema is held so its id
        # is not reused while the entry stands.
        self._schemas: dict[int, tuple[Any, bool]] = {}

    def _defaults(self, info: ResourceInfo) -> dict[str, Any] | None:
        """The custom resource schema to default reads with, when it has any default."""
        schema = info.crd_schema
        if not isinstance(schema, dict):
            return None
        hit = self._schemas.get(id(schema))
        if hit is None or hit[0] is not schema:
            if len(self._schemas) > _KEEP:
                self._schemas.clear()
            hit = (schema, _has_default(schema))
            self._schemas[id(schema)] = hit
        return schema if hit[1] else None

    def converts(self, info: ResourceInfo) -> bool:
        return info.stored_elsewhere or info.extra.get("mixed_versions", False) or \
            self._defaults(info) is not None

    def convert(self, info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
        """A decoded stored object as `info`'s version."""
        if info.stored_elsewhere or info.extra.get("mixed_versions", False):
            obj = self.kinds.for_info(info).convert(obj, info.version, info.group)
        schema = self._defaults(info)
        if schema is not None:
            obj = clone(obj)
            apply_schema_defaults(schema, obj)
        return obj

    def raw(self, info: ResourceInfo, co: CachedObject) -> bytes:
        """The encoded object as `info`'s version (the cached bytes when no conversion is needed)."""
        if not self.converts(info):
            return co.raw
        # The schema's identity: a CRD changed since is another schema, read anew.
        memo = (co.key, co.rev, info.api_version, id(info.crd_schema))
        hit = self._encoded.get(memo)
        if hit is not None:
            self._encoded.move_to_end(memo)
            return hit
        data = orjson.dumps(self.convert(info, co.obj))
        self._encoded[memo] = data
        if len(self._encoded) > _KEEP:
            self._encoded.popitem(last=False)
        return data

    def encoder(self, info: ResourceInfo) -> Callable[[CachedObject], bytes]:
        """`raw` for many objects of one resource: the cached bytes themselves, looked up
        without a Python call per item, unless the version converts."""
        if not self.converts(info):
            return _RAW
        return lambda co: self.raw(info, co)

    def event_line(self, info: ResourceInfo, as_type: str, co: CachedObject) -> bytes:
        """One watch event line with the object in `info`'s version."""
        return b'{"type":"' + as_type.encode() + b'","object":' + self.raw(info, co) + b"}\n"

    def table_rows_objects(self, info: ResourceInfo, table: dict[str, Any]) -> dict[str, Any]:
        """A Table built from stored objects, with whole row objects (includeObject=Object)
        shown in `info`'s version; cells and columns do not depend on the version."""
        if self.converts(info):
            for row in table.get("rows") or []:
                obj = row.get("object")
                if isinstance(obj, dict) and obj.get("kind") == info.kind:
                    row["object"] = self.convert(info, obj)
        return table
