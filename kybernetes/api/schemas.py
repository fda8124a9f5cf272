"""Structural schemas of the built-in kinds.

The data comes from the `kubernetes-validate` package: the JSON Schema
definitions of Kubernetes 1.37, carrying `x-kubernetes-group-version-kind`,
`x-kubernetes-patch-merge-key`/`-strategy` and list-map keys. Everything that
needs to walk a kind's structure (strategic merge, server-side apply, unknown
field detection, OpenAPI) navigates these nodes through `resolve` and `child`.

Custom resources bring their own `openAPIV3Schema`; it has no `$ref`s, so the
same helpers walk it unchanged.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import orjson

K8S_SCHEMA_VERSION = "v1.37.0"
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions by name, e.g. `io.k8s.api.apps.v1.Deployment`."""
    import kubernetes_validate

    base = os.path.dirname(kubernetes_validate.__file__)
    path = os.path.join(base, "kubernetes-json-schema", f"{K8S_SCHEMA_VERSION}-local", "_definitions.json")
    with open(path, "rb") as f:
        return orjson.loads(f.read())["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, node in definitions().items():
        for gvk in node.get("x-kubernetes-group-version-kind", []):
            index.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return index


def definition_name_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, or None if the kind is not built in."""
    return _gvk_index().get((group, version, kind))


def ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX):]
    return None


def resolve(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follow `$ref` (also inside a single-element allOf) to the node it names."""
    for _ in range(32):
        if node is None:
            return None
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _resolve_ref(ref)
        all_of = node.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "properties" not in node:
            node = all_of[0]
            continue
        return node
    return node


@functools.cache
def _resolve_ref(ref: str) -> dict[str, Any] | None:
    # Built-in definitions never change, so a reference resolves once for the process.
    if not ref.startswith(_REF_PREFIX):
        return None
    return resolve(definitions().get(ref[len(_REF_PREFIX):]))


def root(definition: str) -> dict[str, Any] | None:
    return definitions().get(definition)


def child(node: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The schema of map key `key` inside object node `node` (properties or additionalProperties)."""
    node = resolve(node)
    if node is None:
        return None
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema of the elements of array node `node`."""
    node = resolve(node)
    if node is None:
        return None
    it = node.get("items")
    return resolve(it) if isinstance(it, dict) else None


def patch_strategy(node: dict[str, Any] | None) -> tuple[str | None, list[str]]:
    """(merge key, strategies) of a list or map field, from `x-kubernetes-patch-*`.

    Must be called on the *unresolved* property node, where the extensions live.
    """
    if node is None:
        return None, []
    strategy = node.get("x-kubernetes-patch-strategy") or ""
    return node.get("x-kubernetes-patch-merge-key"), [s for s in strategy.split(",") if s]


def raw_child(node: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """Like `child` but returns the property node before resolving its `$ref`,
    so that field-level extensions (patch strategy, list type) stay visible."""
    node = resolve(node)
    if node is None:
        return None
    props = node.get("properties")
    if isinstance(props, dict) and key in props:
        return props[key]
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    return None
