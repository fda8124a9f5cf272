"""Small pure helpers on object metadata shared by the API server's verbs."""

from __future__ import annotations

import datetime as dt
import random
import re
import time
from typing import Any

from kybernetes.api import timefmt
from kybernetes.api.jsonutil import clone
from kybernetes.api.names import random_suffix

_PATH_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time as a `metav1.Time` string (whole seconds). Every write stamps at
    least one; formatting a datetime each time cost more than the rest of the
    bookkeeping, and within one second the text is the same."""
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, timefmt.rfc3339(dt.datetime.fromtimestamp(second, dt.UTC)))
    return _stamp[1]


def rfc3339_in(seconds: int) -> str:
    return timefmt.rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


def generated_name(prefix: str) -> str:
    """`generateName` + 5 random characters, as Kubernetes makes them."""
    return prefix + random_suffix()


_UUID_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def new_uid() -> str:
    """A random (version 4) UUID without a system call per object: the text of
    `uuid.UUID(int=..., version=4)`, formatted directly (building the UUID object
    was most of the cost)."""
    h = "%032x" % (random.getrandbits(128) & _UUID_KEEP | _UUID_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def without(obj: dict[str, Any], *top_keys: str) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in top_keys}


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True if anything outside metadata and status differs: what bumps `generation`."""
    return without(old, "metadata", "status", "kind", "apiVersion") != without(
        new, "metadata", "status", "kind", "apiVersion")


def meta_equal_ignoring_bookkeeping(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True if `new` would store the same object as `old` (a no-op write)."""
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        m = dict(o.get("metadata") or {})
        for k in ("resourceVersion", "managedFields"):
            m.pop(k, None)
        out = dict(o)
        out["metadata"] = m
        return out
    return strip(old) == strip(new)


def parse_field_path(path: str) -> list[str | int]:
    """'spec.containers[0].bogus' -> ['spec', 'containers', 0, 'bogus']."""
    out: list[str | int] = []
    for name, index in _PATH_SEGMENT.findall(path.lstrip(".")):
        out.append(int(index) if index else name)
    return out


def remove_path(obj: Any, path: list[str | int]) -> None:
    """Delete the value at `path` if present (used to drop unknown fields)."""
    node = obj
    for seg in path[:-1]:
        if isinstance(seg, int):
            if not isinstance(node, list) or seg >= len(node):
                return
            node = node[seg]
        else:
            if not isinstance(node, dict) or seg not in node:
                return
            node = node[seg]
    last = path[-1] if path else None
    if isinstance(node, dict) and isinstance(last, str):
        node.pop(last, None)


def deep_copy(obj: dict[str, Any]) -> dict[str, Any]:
    return clone(obj)
