"""What the API server serves, read from its discovery documents.

The garbage collector and the namespace controller both act on every resource
the server offers, built-in or custom, so they ask the server rather than a
compiled-in list. Only the preferred version of each group is taken: the other
versions are views of the same objects, and watching them too would report
every object twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from kybernetes.client import ApiError, Client, Resource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedResource:
    """One top-level resource of the discovery documents (subresources excluded)."""

    resource: Resource
    verbs: frozenset[str]

    def supports(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)


@dataclass
class Discovery:
    """Resources found, and the group-versions whose documents could not be read."""

    resources: list[ServedResource]
    failures: dict[str, str]

    def by_group_kind(self) -> dict[tuple[str, str], Resource]:
        return {(s.resource.group, s.resource.kind): s.resource for s in self.resources}


def preferred_group_versions(group_list: dict[str, Any]) -> list[tuple[str, str]]:
    """(group, version) pairs from an `APIGroupList`, the preferred version of each group."""
    out = []
    for g in group_list.get("groups") or []:
        name = g.get("name") or ""
        version = ((g.get("preferredVersion") or {}).get("version")
                   or next((v.get("version") for v in g.get("versions") or []), None))
        if name and version:
            out.append((name, version))
    return out


def parse_resource_list(group: str, version: str, doc: dict[str, Any]) -> list[ServedResource]:
    """Top-level resources of an `APIResourceList`; `pods/status` and friends are skipped
    because they are views of their parent, not objects of their own."""
    out = []
    for r in doc.get("resources") or []:
        name = r.get("name") or ""
        if not name or "/" in name:
            continue
        res = Resource(r.get("group") or group, r.get("version") or version, name, r.get("kind") or "",
                       bool(r.get("namespaced")))
        out.append(ServedResource(res, frozenset(r.get("verbs") or ())))
    return out


def group_version_path(group: str, version: str) -> str:
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


async def discover(client: Client) -> Discovery:
    """Read /api/v1 and the preferred version of every group. A group-version that fails
    is reported in `failures` and the rest is still returned, so one broken aggregated
    API does not stop the callers from acting on everything else."""
    failures: dict[str, str] = {}
    group_versions: list[tuple[str, str]] = [("", "v1")]
    try:
        group_versions += preferred_group_versions(await client.get_raw("/apis") or {})
    except (ApiError, OSError, TimeoutError, aiohttp.ClientError) as e:
        failures["apis"] = _describe(e)
    resources: list[ServedResource] = []
    for group, version in group_versions:
        gv = f"{group}/{version}" if group else version
        try:
            doc = await client.get_raw(group_version_path(group, version)) or {}
        except (ApiError, OSError, TimeoutError, aiohttp.ClientError) as e:
            failures[gv] = _describe(e)
            continue
        resources += parse_resource_list(group, version, doc)
    return Discovery(resources, failures)


def _describe(e: BaseException) -> str:
    if isinstance(e, ApiError):
        return e.message or e.reason or str(e.code)
    return str(e) or type(e).__name__
