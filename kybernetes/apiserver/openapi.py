"""OpenAPI v3 documents: `/openapi/v3` and `/openapi/v3/<api|apis/...>`.

kubectl reads these for three things: deciding whether the server validates
fields itself (a PATCH operation tagged with the object's GVK that lists a
`fieldValidation` parameter), `kubectl explain` (component schemas tagged with
`x-kubernetes-group-version-kind`), and patch metadata for client-side apply.

Schemas come from the built-in JSON Schema definitions (`kybernetes.api.schemas`)
converted to OpenAPI 3.0 the way the real server publishes them, and from each
custom resource's `openAPIV3Schema`. Documents are pure functions of the
registry; they are cached per registry and rebuilt when `registry.generation`
moves. `/openapi/v2` (Swagger 2.0) is built here too; `openapi_v2_proto` encodes
it as the protobuf Go clients ask for.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api import schemas
from kybernetes.api.registry import Registry, ResourceInfo

_SCHEMA_REF = "#/components/schemas/"
_DEFS_REF = "#/$defs/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = _META + "ObjectMeta"
LIST_META = _META + "ListMeta"
DELETE_OPTIONS = _META + "DeleteOptions"
STATUS = _META + "Status"
WATCH_EVENT = _META + "WatchEvent"
PATCH = _META + "Patch"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# Always in every document: request and response bodies shared by all kinds.
_COMMON_DEFINITIONS = (DELETE_OPTIONS, STATUS, WATCH_EVENT, PATCH)

PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)

_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_METADATA_DOC = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_LIST_METADATA_DOC = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)


# -- schema conversion (JSON Schema draft → OpenAPI 3.0) ------------------


def _component_ref(ref: str) -> str:
    if ref.startswith(_DEFS_REF):
        return _SCHEMA_REF + ref[len(_DEFS_REF):]
    return ref


def _single_type(value: Any) -> str | None:
    """OpenAPI 3.0 has one `type`; the JSON Schema defs allow null alongside it."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        kinds = [t for t in value if t != "null"]
        if len(kinds) == 1:
            return kinds[0]
    return None


def convert_schema(node: Any) -> Any:
    """Convert one JSON Schema node to OpenAPI 3.0: component refs, single types,
    and `$ref` with siblings wrapped as `allOf: [{$ref}]` (a 3.0 `$ref` ignores
    its siblings, so the real server writes field docs beside an allOf)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type":
            single = _single_type(value)
            if single is not None:
                out["type"] = single
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: convert_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = convert_schema(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [convert_schema(sub) for sub in value]
        elif key == "enum" and isinstance(value, list):
            out[key] = [v for v in value if v is not None]
        else:
            out[key] = value
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = {"$ref": _component_ref(ref)}
        if not out:
            return target
        return {"allOf": [target], **out}
    return out


@functools.cache
def converted_definition(name: str) -> dict[str, Any] | None:
    """A built-in definition as the real server publishes it in `components.schemas`."""
    raw = schemas.definitions().get(name)
    if raw is None:
        return None
    if name == INT_OR_STRING:
        return {"description": raw.get("description", ""), "format": "int-or-string",
                "oneOf": [{"type": "integer"}, {"type": "string"}]}
    if name == QUANTITY:
        return {"description": raw.get("description", ""), "oneOf": [{"type": "string"}, {"type": "number"}]}
    out = convert_schema(raw)
    props = out.get("properties")
    if isinstance(props, dict):
        # The validation defs pin apiVersion/kind with an enum; the server's OpenAPI does not,
        # and `kubectl explain` would print it.
        for key in ("apiVersion", "kind"):
            if isinstance(props.get(key), dict):
                props[key] = {k: v for k, v in props[key].items() if k != "enum"}
    return out


def _collect_refs(node: Any, into: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_REF):
            into.add(ref[len(_DEFS_REF):])
        for value in node.values():
            _collect_refs(value, into)
    elif isinstance(node, list):
        for value in node:
            _collect_refs(value, into)


@functools.cache
def _direct_refs(name: str) -> frozenset[str]:
    found: set[str] = set()
    _collect_refs(schemas.definitions().get(name), found)
    return frozenset(found)


def definition_closure(names: Iterable[str]) -> list[str]:
    """The named built-in definitions plus everything they reference, transitively."""
    seen: set[str] = set()
    pending = [n for n in names if n in schemas.definitions()]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(r for r in _direct_refs(name) if r not in seen)
    return sorted(seen)


# -- custom resources ----------------------------------------------------


def crd_schema_name(group: str, version: str, kind: str) -> str:
    """`widgets.stable.example.com/v1 Widget` → `com.example.stable.v1.Widget`."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _meta_ref(name: str, description: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": _SCHEMA_REF + name}], "description": description}


def crd_kind_schema(info: ResourceInfo) -> dict[str, Any]:
    """A custom resource's kind schema: its openAPIV3Schema with the object
    envelope (apiVersion, kind, ObjectMeta) every kind has, tagged with its GVK."""
    source = copy.deepcopy(info.crd_schema) if info.crd_schema is not None else {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    out = convert_schema(source)
    out.setdefault("type", "object")
    props = dict(out.get("properties") or {})
    for key, doc in (("apiVersion", _API_VERSION_DOC), ("kind", _KIND_DOC)):
        existing = props.get(key) if isinstance(props.get(key), dict) else {}
        props[key] = {"description": existing.get("description") or doc, "type": "string"}
    # Whatever the CRD says about metadata, the server stores full ObjectMeta.
    props["metadata"] = _meta_ref(OBJECT_META, _METADATA_DOC)
    out["properties"] = props
    out["x-kubernetes-group-version-kind"] = [_gvk(info.group, info.version, info.kind)]
    return out


def crd_list_schema(info: ResourceInfo) -> dict[str, Any]:
    item = crd_schema_name(info.group, info.version, info.kind)
    return {
        "description": f"{info.list_kind} is a list of {info.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
            "items": {
                "description": f"List of {info.plural}. More info: "
                               "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "type": "array",
                "items": {"$ref": _SCHEMA_REF + item},
            },
            "kind": {"description": _KIND_DOC, "type": "string"},
            "metadata": _meta_ref(LIST_META, _LIST_METADATA_DOC),
        },
        "x-kubernetes-group-version-kind": [_gvk(info.group, info.version, info.list_kind)],
    }


# -- paths ---------------------------------------------------------------


def _param(name: str, where: str, kind: str, description: str, required: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "description": description, "schema": {"type": kind}}
    if required:
        out["required"] = True
    if where == "path":
        out["schema"]["uniqueItems"] = True
    return out


_Q = {
    "pretty": _param("pretty", "query", "string", "If 'true', then the output is pretty printed."),
    "dryRun": _param("dryRun", "query", "string",
                     "When present, indicates that modifications should not be persisted. The only valid "
                     "value is All: all dry run stages are processed."),
    "fieldManager": _param("fieldManager", "query", "string",
                           "A name associated with the actor or entity that is making these changes, recorded "
                           "in managedFields. Required for apply patches."),
    "fieldValidation": _param("fieldValidation", "query", "string",
                              "How the server handles unknown or duplicate fields in the request body: "
                              "Ignore, Warn (the default) or Strict."),
    "force": _param("force", "query", "boolean",
                    "Force is going to \"force\" Apply requests: it takes ownership of conflicting fields. "
                    "Only valid for apply patches."),
    "allowWatchBookmarks": _param("allowWatchBookmarks", "query", "boolean",
                                  "Request watch events of type BOOKMARK."),
    "continue": _param("continue", "query", "string",
                       "The continue token of a previous paginated list call."),
    "fieldSelector": _param("fieldSelector", "query", "string",
                            "A selector to restrict the list of returned objects by their fields."),
    "labelSelector": _param("labelSelector", "query", "string",
                            "A selector to restrict the list of returned objects by their labels."),
    "limit": _param("limit", "query", "integer", "The maximum number of responses to return for a list call."),
    "resourceVersion": _param("resourceVersion", "query", "string",
                              "Constrains which resource versions the request may be served from."),
    "resourceVersionMatch": _param("resourceVersionMatch", "query", "string",
                                   "How resourceVersion is applied to list calls (Exact or NotOlderThan)."),
    "sendInitialEvents": _param("sendInitialEvents", "query", "boolean",
                                "With watch=true, start the stream with synthetic events for the current state."),
    "timeoutSeconds": _param("timeoutSeconds", "query", "integer",
                             "Timeout for the list/watch call, regardless of activity."),
    "watch": _param("watch", "query", "boolean",
                    "Watch for changes to the described resources and return them as a stream."),
    "gracePeriodSeconds": _param("gracePeriodSeconds", "query", "integer",
                                 "The duration in seconds before the object should be deleted."),
    "orphanDependents": _param("orphanDependents", "query", "boolean",
                               "Deprecated: use propagationPolicy."),
    "propagationPolicy": _param("propagationPolicy", "query", "string",
                                "Whether and how garbage collection is performed: Orphan, Background or "
                                "Foreground."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": _param(
        "ignoreStoreReadErrorWithClusterBreakingPotential", "query", "boolean",
        "Delete a corrupt object that cannot be read from storage. May break the cluster."),
}

_LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
                "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = (*_WRITE_PARAMS, "force")
_DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                  "orphanDependents", "propagationPolicy")
_DELETECOLLECTION_PARAMS = ("continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
                            "ignoreStoreReadErrorWithClusterBreakingPotential", "labelSelector", "limit",
                            "orphanDependents", "propagationPolicy", "resourceVersion", "resourceVersionMatch",
                            "sendInitialEvents", "timeoutSeconds")


def _camel_group(group: str) -> str:
    if not group:
        return "Core"
    trimmed = group[: -len(".k8s.io")] if group.endswith(".k8s.io") else group
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[.\-]", trimmed) if p)


def _tag(group: str, version: str) -> str:
    camel = _camel_group(group)
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


def _schema_content(ref_name: str, types: Iterable[str]) -> dict[str, Any]:
    return {t: {"schema": {"$ref": _SCHEMA_REF + ref_name}} for t in types}


_OBJECT_TYPES = ("application/json", "application/yaml")
_LIST_TYPES = ("application/json", "application/json;stream=watch", "application/yaml")
_WATCH_TYPES = ("application/json", "application/json;stream=watch")


def _responses(ref_name: str, codes: Iterable[str], types: Iterable[str] = _OBJECT_TYPES) -> dict[str, Any]:
    names = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {c: {"description": names[c], "content": _schema_content(ref_name, types)} for c in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


@dataclass
class _Target:
    """What every operation of one resource shares."""

    gvk: dict[str, str]
    tag: str
    id_stem: str  # e.g. "AppsV1NamespacedDeployment"


def _operation(target: _Target, action: str, op_id: str, description: str, params: Iterable[str],
               responses: dict[str, Any], body: dict[str, Any] | None = None,
               gvk: dict[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [target.tag],
        "description": description,
        "operationId": op_id,
    }
    params = list(params)
    if params:
        op["parameters"] = [_Q[p] for p in params]
    if body is not None:
        op["requestBody"] = body
    op["responses"] = responses
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = dict(gvk or target.gvk)
    return op


def _body(ref_name: str) -> dict[str, Any]:
    return {"content": {"*/*": {"schema": {"$ref": _SCHEMA_REF + ref_name}}}, "required": True}


def _patch_body(info: ResourceInfo) -> dict[str, Any]:
    # Custom resources take no strategic merge patch; kubectl reads this list to
    # decide which patch type client-side apply sends, as against the real server.
    types = [t for t in PATCH_CONTENT_TYPES if not (info.is_custom and "strategic" in t)]
    return {"content": _schema_content(PATCH, types), "required": True}


def _path_params(info: ResourceInfo, item: bool, what: str) -> list[dict[str, Any]]:
    out = []
    if item:
        out.append(_param("name", "path", "string", f"name of the {what}", required=True))
    if info.namespaced:
        out.append(_param("namespace", "path", "string",
                          "object name and auth scope, such as for teams and projects", required=True))
    out.append(_Q["pretty"])
    return out


def _has(info: ResourceInfo, verb: str) -> bool:
    return verb in info.verbs


def resource_paths(info: ResourceInfo, prefix: str, schema: str, list_schema: str | None) -> dict[str, Any]:
    """The path items of one resource: collection, item, its status and scale
    views, the all-namespaces list and the watch paths, with the operations its
    verbs allow."""
    g, v, kind = info.group, info.version, info.kind
    scope = "Namespaced" if info.namespaced else ""
    stem = f"{_camel_group(g)}{v[:1].upper()}{v[1:]}"
    gvk = _gvk(g, v, kind)
    tag = _tag(g, v)
    target = _Target(gvk, tag, f"{stem}{scope}{kind}")
    ns_part = "/namespaces/{namespace}" if info.namespaced else ""
    collection = f"{prefix}{ns_part}/{info.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Any] = {}
    list_ref = list_schema or schema

    ops: dict[str, Any] = {}
    if _has(info, "list"):
        ops["get"] = _operation(target, "list", f"list{target.id_stem}", f"list or watch objects of kind {kind}",
                                _LIST_PARAMS, _responses(list_ref, ["200"], _LIST_TYPES))
    if _has(info, "create"):
        ops["post"] = _operation(target, "post", f"create{target.id_stem}", f"create a {kind}", _WRITE_PARAMS,
                                 _responses(schema, ["200", "201", "202"]), _body(schema))
    if _has(info, "deletecollection"):
        ops["delete"] = _operation(target, "deletecollection", f"delete{stem}Collection{scope}{kind}",
                                   f"delete collection of {kind}", _DELETECOLLECTION_PARAMS,
                                   _responses(STATUS, ["200"]), _body(DELETE_OPTIONS))
    if ops:
        paths[collection] = {**ops, "parameters": _path_params(info, False, kind)}

    ops = {}
    if _has(info, "get"):
        ops["get"] = _operation(target, "get", f"read{target.id_stem}", f"read the specified {kind}", (),
                                _responses(schema, ["200"]))
    if _has(info, "update"):
        ops["put"] = _operation(target, "put", f"replace{target.id_stem}", f"replace the specified {kind}",
                                _WRITE_PARAMS, _responses(schema, ["200", "201"]), _body(schema))
    if _has(info, "patch"):
        ops["patch"] = _operation(target, "patch", f"patch{target.id_stem}", f"partially update the specified {kind}",
                                  _PATCH_PARAMS, _responses(schema, ["200", "201"]), _patch_body(info))
    if _has(info, "delete"):
        ops["delete"] = _operation(target, "delete", f"delete{target.id_stem}", f"delete a {kind}", _DELETE_PARAMS,
                                   _responses(STATUS, ["200", "202"]), _body(DELETE_OPTIONS))
    if ops:
        paths[item] = {**ops, "parameters": _path_params(info, True, kind)}

    for sub, sub_schema, sub_gvk in (("status", schema, gvk), ("approval", schema, gvk),
                                     ("scale", SCALE, _gvk("autoscaling", "v1", "Scale"))):
        if sub not in info.subresources:
            continue
        suffix = sub.capitalize()
        paths[f"{item}/{sub}"] = {
            "get": _operation(target, "get", f"read{target.id_stem}{suffix}", f"read {sub} of the specified {kind}",
                              (), _responses(sub_schema, ["200"]), gvk=sub_gvk),
            "put": _operation(target, "put", f"replace{target.id_stem}{suffix}",
                              f"replace {sub} of the specified {kind}", _WRITE_PARAMS,
                              _responses(sub_schema, ["200", "201"]), _body(sub_schema), gvk=sub_gvk),
            "patch": _operation(target, "patch", f"patch{target.id_stem}{suffix}",
                                f"partially update {sub} of the specified {kind}", _PATCH_PARAMS,
                                _responses(sub_schema, ["200", "201"]), _patch_body(info), gvk=sub_gvk),
            "parameters": _path_params(info, True, kind),
        }

    if _has(info, "list") and info.namespaced:
        paths[f"{prefix}/{info.plural}"] = {
            "get": _operation(target, "list", f"list{stem}{kind}ForAllNamespaces",
                              f"list or watch objects of kind {kind}", _LIST_PARAMS,
                              _responses(list_ref, ["200"], _LIST_TYPES)),
            "parameters": [_Q["pretty"]],
        }
    if _has(info, "watch"):
        watch_responses = _responses(WATCH_EVENT, ["200"], _WATCH_TYPES)
        paths[f"{prefix}/watch{ns_part}/{info.plural}"] = {
            "get": _operation(target, "watchlist", f"watch{target.id_stem}List",
                              f"watch individual changes to a list of {kind}", _LIST_PARAMS, watch_responses),
            "parameters": _path_params(info, False, kind),
        }
        paths[f"{prefix}/watch{ns_part}/{info.plural}/{{name}}"] = {
            "get": _operation(target, "watch", f"watch{target.id_stem}", f"watch changes to an object of kind {kind}",
                              _LIST_PARAMS, watch_responses),
            "parameters": _path_params(info, True, kind),
        }
        if info.namespaced:
            paths[f"{prefix}/watch/{info.plural}"] = {
                "get": _operation(target, "watchlist", f"watch{stem}{kind}ListForAllNamespaces",
                                  f"watch individual changes to a list of {kind}", _LIST_PARAMS, watch_responses),
                "parameters": [_Q["pretty"]],
            }
    return paths


# -- documents -------------------------------------------------------------


def parse_document_path(path: str) -> tuple[str, str] | None:
    """`api/v1` → ("", "v1"); `apis/apps/v1` → ("apps", "v1"); anything else → None."""
    parts = [p for p in path.strip("/").split("/") if p]
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


def document_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def build_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI 3.0 document of one group-version, or None when it is not served."""
    infos = sorted(registry.in_group_version(group, version), key=lambda i: i.plural)
    if not infos:
        return None
    prefix = "/" + document_path(group, version)
    components: dict[str, Any] = {}
    wanted: set[str] = set(_COMMON_DEFINITIONS)
    paths: dict[str, Any] = {}
    for info in infos:
        if info.is_custom or not info.definition:
            name = crd_schema_name(group, version, info.kind)
            list_name: str | None = crd_schema_name(group, version, info.list_kind)
            components[name] = crd_kind_schema(info)
            components[list_name] = crd_list_schema(info)
            wanted.update((OBJECT_META, LIST_META))
        else:
            name = info.definition
            list_name = name + "List" if name + "List" in schemas.definitions() else None
            wanted.add(name)
            if list_name:
                wanted.add(list_name)
        if "scale" in info.subresources:
            wanted.add(SCALE)
        paths.update(resource_paths(info, prefix, name, list_name))
    for def_name in definition_closure(wanted):
        converted = converted_definition(def_name)
        if converted is not None:
            components.setdefault(def_name, converted)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": schemas.K8S_SCHEMA_VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(components.items()))},
    }


def content_hash(data: bytes) -> str:
    """Uppercase hex SHA-512, the form the real server puts in `?hash=`."""
    return hashlib.sha512(data).hexdigest().upper()


@dataclass
class _Cache:
    generation: int
    docs: dict[tuple[str, str], tuple[bytes, str] | None] = field(default_factory=dict)


_caches: weakref.WeakKeyDictionary[Registry, _Cache] = weakref.WeakKeyDictionary()


def _cached_document(registry: Registry, group: str, version: str) -> tuple[bytes, str] | None:
    cache = _caches.get(registry)
    if cache is None or cache.generation != registry.generation:
        cache = _Cache(registry.generation)
        _caches[registry] = cache
    key = (group, version)
    if key not in cache.docs:
        doc = build_document(registry, group, version)
        if doc is None:
            cache.docs[key] = None
        else:
            data = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
            cache.docs[key] = (data, content_hash(data))
    return cache.docs[key]


def openapi_v3_document(registry: Registry, path: str) -> tuple[bytes, str] | None:
    """`GET /openapi/v3/<path>`: the document's JSON bytes and its hash, or None (404)."""
    parsed = parse_document_path(path)
    if parsed is None:
        return None
    return _cached_document(registry, *parsed)


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    """`GET /openapi/v3`: every group-version's document URL, versioned by content hash
    so that kubectl's HTTP cache (which keeps hashed URLs forever) sees changes."""
    paths: dict[str, Any] = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            doc = _cached_document(registry, group, version)
            if doc is None:
                continue
            key = document_path(group, version)
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={doc[1]}"}
    return {"paths": paths}


# -- OpenAPI v2 (Swagger 2.0) --------------------------------------------
#
# `/openapi/v2` in JSON: the definitions of every served kind (built-in and custom),
# as clients that still read Swagger (Kubernetes' own e2e framework, older tooling)
# look them up by name. Paths are left empty: kubectl and the client libraries read
# operations from v3. kubectl's client-side validation reads these definitions in
# protobuf (`openapi_v2_proto`) for what the v3 check does not cover (`kind: List`).

_V2_REF = "#/definitions/"


def v3_schema_to_v2(node: Any) -> Any:
    """Rewrite one OpenAPI 3.0 schema node to Swagger 2.0: `#/definitions/` refs,
    `allOf: [{$ref}]` back to a `$ref` with its siblings (2.0 keeps them), and the
    3.0-only keywords (oneOf, anyOf, not, nullable) dropped."""
    if isinstance(node, list):
        return [v3_schema_to_v2(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("oneOf", "anyOf", "not", "nullable"):
            continue
        if key == "$ref" and isinstance(value, str) and value.startswith(_SCHEMA_REF):
            out[key] = _V2_REF + value[len(_SCHEMA_REF):]
        elif key in ("properties", "patternProperties", "definitions") and isinstance(value, dict):
            out[key] = {name: v3_schema_to_v2(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "allOf"):
            out[key] = v3_schema_to_v2(value)
        else:
            out[key] = value
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) and set(all_of[0]) == {"$ref"}:
        del out["allOf"]
        out["$ref"] = all_of[0]["$ref"]
    return out


def _builtin_definition_v2(name: str) -> dict[str, Any] | None:
    if name == INT_OR_STRING:
        raw = schemas.definitions().get(name) or {}
        return {"description": raw.get("description", ""), "type": "string", "format": "int-or-string"}
    if name == QUANTITY:
        raw = schemas.definitions().get(name) or {}
        return {"description": raw.get("description", ""), "type": "string"}
    converted = converted_definition(name)
    return None if converted is None else v3_schema_to_v2(converted)


def crd_schema_to_v2(schema: Any) -> Any:
    """What the real server's v2 publisher does to a structural CRD schema: the
    3.0-only junctors go; a nullable or unknown-fields-preserving node loses its
    `properties` and `items` (kubectl would otherwise reject unknown fields in it);
    an array left without `items` loses its type; nullable fields stop being required."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ("allOf", "oneOf", "anyOf", "not")}
    if out.pop("nullable", False):
        out.pop("type", None)
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("items", None)
        out.pop("properties", None)
    if out.get("type") == "array" and "items" not in out:
        out.pop("type", None)
    props = out.get("properties")
    if isinstance(props, dict):
        nullable = {k for k, v in props.items() if isinstance(v, dict) and v.get("nullable")}
        if nullable and isinstance(out.get("required"), list):
            out["required"] = [r for r in out["required"] if r not in nullable]
            if not out["required"]:
                del out["required"]
        out["properties"] = {k: crd_schema_to_v2(v) for k, v in props.items()}
    if isinstance(out.get("items"), dict):
        out["items"] = crd_schema_to_v2(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = crd_schema_to_v2(out["additionalProperties"])
    return out


def crd_kind_schema_v2(info: ResourceInfo) -> dict[str, Any]:
    """A custom resource's v2 definition. Without a schema, or when the root keeps
    unknown fields, it is a bare object: any property listed would make v2 readers
    forbid everything else."""
    source = info.crd_schema
    gvk = [_gvk(info.group, info.version, info.kind)]
    if not isinstance(source, dict) or source.get("x-kubernetes-preserve-unknown-fields"):
        return {"type": "object", "x-kubernetes-group-version-kind": gvk}
    out = crd_schema_to_v2(copy.deepcopy(source))
    props = dict(out.get("properties") or {})
    for key, doc in (("apiVersion", _API_VERSION_DOC), ("kind", _KIND_DOC)):
        existing = props.get(key) if isinstance(props.get(key), dict) else {}
        props[key] = {"description": existing.get("description") or doc, "type": "string"}
    props["metadata"] = {"$ref": _V2_REF + OBJECT_META, "description": _METADATA_DOC}
    out["properties"] = props
    out["x-kubernetes-group-version-kind"] = gvk
    return out


def build_v2_document(registry: Registry) -> dict[str, Any]:
    """The Swagger 2.0 document: definitions of every served group-version's kinds."""
    definitions: dict[str, Any] = {}
    wanted: set[str] = set(_COMMON_DEFINITIONS)
    for group, versions in registry.group_versions().items():
        for version in versions:
            for info in registry.in_group_version(group, version):
                if info.is_custom or not info.definition:
                    definitions[crd_schema_name(group, version, info.kind)] = crd_kind_schema_v2(info)
                    definitions[crd_schema_name(group, version, info.list_kind)] = v3_schema_to_v2(
                        crd_list_schema(info))
                    wanted.update((OBJECT_META, LIST_META))
                else:
                    wanted.add(info.definition)
                    if info.definition + "List" in schemas.definitions():
                        wanted.add(info.definition + "List")
                if "scale" in info.subresources:
                    wanted.add(SCALE)
    for name in definition_closure(wanted):
        converted = _builtin_definition_v2(name)
        if converted is not None:
            definitions.setdefault(name, converted)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": schemas.K8S_SCHEMA_VERSION},
        "paths": {},
        "definitions": dict(sorted(definitions.items())),
    }


_v2_caches: weakref.WeakKeyDictionary[Registry, tuple[int, bytes, str]] = weakref.WeakKeyDictionary()


def openapi_v2_document(registry: Registry) -> tuple[bytes, str]:
    """`GET /openapi/v2`: the JSON bytes and their hash (the ETag), rebuilt when the registry changes."""
    cached = _v2_caches.get(registry)
    if cached is not None and cached[0] == registry.generation:
        return cached[1], cached[2]
    data = orjson.dumps(build_v2_document(registry), option=orjson.OPT_SORT_KEYS)
    digest = content_hash(data)
    _v2_caches[registry] = (registry.generation, data, digest)
    return data, digest

