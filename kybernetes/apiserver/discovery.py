"""Discovery documents: what `/api`, `/apis` and `/api(s)/<gv>` answer.

Two formats are built from the same `Registry`:

* legacy discovery (`APIVersions`, `APIGroupList`, one `APIResourceList` per
  group-version), still used by `kubectl auth can-i`, `kubectl drain` and the
  Python dynamic client;
* aggregated discovery `apidiscovery.k8s.io/v2` (`APIGroupDiscoveryList`), which
  kubectl 1.37 asks for first and which resolves every name in two requests.

Everything here is a pure function of the registry; the HTTP layer picks the
format with `wants_aggregated` and caches on `registry.generation`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from kybernetes.api.registry import UNSTORED_KINDS, Registry, ResourceInfo

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

_READ_WRITE = ("get", "patch", "update")
_PROXY_VERBS = ("create", "delete", "get", "patch", "update")


@dataclass(frozen=True)
class SubresourceSpec:
    """What one subresource answers with: the kind (and its GV when it differs
    from the parent's) and the verbs it supports."""

    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # None: same group-version as the parent resource
    version: str | None = None


def subresource_spec(info: ResourceInfo, sub: str) -> SubresourceSpec:
    """The response kind and verbs of `<info.plural>/<sub>`, as the real server reports them."""
    if sub == "scale":
        return SubresourceSpec("Scale", _READ_WRITE, "autoscaling", "v1")
    if sub == "eviction":
        return SubresourceSpec("Eviction", ("create",), "policy", "v1")
    if sub == "token":
        return SubresourceSpec("TokenRequest", ("create",), "authentication.k8s.io", "v1")
    if sub == "log":
        return SubresourceSpec(info.kind, ("get",))
    if sub in ("exec", "attach", "portforward"):
        # Each streaming subresource has its own options kind in the core group.
        names = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}
        return SubresourceSpec(names[sub], ("create", "get"))
    if sub == "binding":
        return SubresourceSpec("Binding", ("create",))
    if sub == "finalize":
        return SubresourceSpec(info.kind, ("update",))
    if sub == "proxy":
        return SubresourceSpec(f"{info.kind}ProxyOptions", _PROXY_VERBS)
    # status, ephemeralcontainers and any other read/write view of the object itself.
    return SubresourceSpec(info.kind, _READ_WRITE)


def storage_version_hash(info: ResourceInfo) -> str:
    """The opaque hash the real server publishes: base64 of the first 8 bytes of
    sha256("<group>/<version>/<kind>") of the storage version (the same for every
    version a resource is served in)."""
    version = info.storage_version or info.version
    digest = hashlib.sha256(f"{info.stored_group}/{version}/{info.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting Kubernetes versions in preference order: GA before beta
    before alpha, higher numbers first, anything unrecognised last by name."""
    m = _VERSION_RE.match(version)
    if m is None:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, version)


def _sorted_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_priority)


def _group_versions(registry: Registry) -> dict[str, list[str]]:
    return {g: _sorted_versions(vs) for g, vs in registry.group_versions().items()}


def _sorted_resources(registry: Registry, group: str, version: str) -> list[ResourceInfo]:
    return sorted(registry.in_group_version(group, version), key=lambda i: i.plural)


# -- legacy ---------------------------------------------------------------


def legacy_api_versions(server_address: str) -> dict[str, Any]:
    """`GET /api`: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def legacy_api_group_list(registry: Registry) -> dict[str, Any]:
    """`GET /apis`: every named group with its versions, preferred first."""
    groups = []
    for group, versions in _group_versions(registry).items():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": dict(entries[0])})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _legacy_resource(info: ResourceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": info.plural,
        "singularName": info.singular,
        "namespaced": info.namespaced,
        "kind": info.kind,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if info.categories:
        out["categories"] = list(info.categories)
    if info.kind not in UNSTORED_KINDS:
        out["storageVersionHash"] = storage_version_hash(info)
    return out


def _legacy_subresource(info: ResourceInfo, sub: str) -> dict[str, Any]:
    spec = subresource_spec(info, sub)
    out: dict[str, Any] = {"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced}
    if spec.group is not None:
        out["group"] = spec.group
        out["version"] = spec.version
    out["kind"] = spec.kind
    out["verbs"] = list(spec.verbs)
    return out


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """`GET /api/v1` or `GET /apis/<group>/<version>`; None when the GV is not served."""
    infos = _sorted_resources(registry, group, version)
    if not infos:
        return None
    resources: list[dict[str, Any]] = []
    for info in infos:
        resources.append(_legacy_resource(info))
        for sub in sorted(info.subresources):
            resources.append(_legacy_subresource(info, sub))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# -- aggregated (apidiscovery.k8s.io/v2) ----------------------------------


def _response_kind(spec: SubresourceSpec) -> dict[str, str]:
    # Empty group/version mean "the enclosing group-version", as the real server writes it.
    return {"group": spec.group or "", "version": spec.version or "", "kind": spec.kind}


def _aggregated_resource(info: ResourceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resource": info.plural,
        "responseKind": {"group": "", "version": "", "kind": info.kind},
        "scope": "Namespaced" if info.namespaced else "Cluster",
        "singularResource": info.singular,
        "verbs": list(info.verbs),
    }
    if info.short_names:
        out["shortNames"] = list(info.short_names)
    if info.categories:
        out["categories"] = list(info.categories)
    subs = []
    for sub in sorted(info.subresources):
        spec = subresource_spec(info, sub)
        subs.append({"subresource": sub, "responseKind": _response_kind(spec), "verbs": list(spec.verbs)})
    if subs:
        out["subresources"] = subs
    return out


def _aggregated_group(registry: Registry, group: str, versions: list[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": group, "creationTimestamp": None},
        "versions": [
            {
                "version": v,
                "resources": [_aggregated_resource(i) for i in _sorted_resources(registry, group, v)],
                "freshness": "Current",
            }
            for v in versions
        ],
    }


def aggregated_discovery(registry: Registry, core: bool) -> dict[str, Any]:
    """The `APIGroupDiscoveryList` for `/api` (core=True: only the group named "")
    or `/apis` (every named group)."""
    items = [
        _aggregated_group(registry, group, versions)
        for group, versions in _group_versions(registry).items()
        if (group == "") == core
    ]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def _media_params(media_range: str) -> tuple[str, dict[str, str]]:
    kind, _, rest = media_range.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return kind.strip().lower(), params


def wants_aggregated(accept_header: str | None) -> bool:
    """True when the Accept header lists aggregated discovery v2 (with q > 0)."""
    for media_range in (accept_header or "").split(","):
        kind, params = _media_params(media_range)
        if kind != "application/json":
            continue
        if (params.get("g"), params.get("v"), params.get("as")) != (
                "apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList"):
            continue
        try:
            if float(params.get("q", "1")) <= 0:
                continue
        except ValueError:
            continue
        return True
    return False
