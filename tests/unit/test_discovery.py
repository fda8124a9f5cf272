"""Discovery documents: shape checks against captured real-server responses, and
the real kubectl 1.37 resolving names through a small server that serves them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import discovery, openapi

KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


def _samples_dir() -> Path | None:
    # CI lays shared/ beside the clone; a developer's machine has it under /work.
    for base in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")):
        candidate = base / "compat" / "samples"
        if candidate.is_dir():
            return candidate
    return None


def _sample(name: str) -> dict[str, Any]:
    directory = _samples_dir()
    if directory is None:
        pytest.skip("compat samples not available")
    return json.loads((directory / name).read_text())


# -- a minimal API server for kubectl ------------------------------------------


@dataclass
class FakeServer:
    url: str
    registry: Registry
    aggregated: bool
    requests: list[str] = field(default_factory=list)
    creates: list[str] = field(default_factory=list)  # path and query of every POST


def _json(body: Any, content_type: str = "application/json", status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers={"Content-Type": content_type})


def _not_found() -> web.Response:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": "the server could not find the requested resource", "reason": "NotFound",
              "details": {}, "code": 404}
    return web.Response(body=orjson.dumps(status), status=404, content_type="application/json")


def _build_app(server: FakeServer) -> web.Application:
    registry = server.registry

    @web.middleware
    async def log(request: web.Request, handler: Any) -> web.StreamResponse:
        server.requests.append(request.path)
        return await handler(request)

    def discovery_root(core: bool, request: web.Request) -> web.Response:
        if server.aggregated and discovery.wants_aggregated(request.headers.get("Accept")):
            return _json(discovery.aggregated_discovery(registry, core), discovery.AGGREGATED_CONTENT_TYPE)
        if core:
            return _json(discovery.legacy_api_versions(request.host))
        return _json(discovery.legacy_api_group_list(registry))

    async def api(request: web.Request) -> web.Response:
        return discovery_root(True, request)

    async def apis(request: web.Request) -> web.Response:
        return discovery_root(False, request)

    async def core_resources(request: web.Request) -> web.Response:
        body = discovery.api_resource_list(registry, "", request.match_info["version"])
        return _json(body) if body is not None else _not_found()

    async def group_resources(request: web.Request) -> web.Response:
        body = discovery.api_resource_list(registry, request.match_info["group"], request.match_info["version"])
        return _json(body) if body is not None else _not_found()

    async def openapi_root(request: web.Request) -> web.Response:
        return _json(openapi.openapi_v3_root(registry))

    async def openapi_doc(request: web.Request) -> web.Response:
        found = openapi.openapi_v3_document(registry, request.match_info["tail"])
        if found is None:
            return _not_found()
        data, digest = found
        return web.Response(body=data, content_type="application/json", headers={"ETag": f'"{digest}"'})

    async def create(request: web.Request) -> web.Response:
        # Just enough of a create for `kubectl create -f`: echo the object back.
        server.creates.append(request.path_qs)
        body = await request.json()
        body.setdefault("metadata", {})["namespace"] = request.match_info["namespace"]
        return _json(body, status=201)

    app = web.Application(middlewares=[log])
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/{version}", core_resources)
    app.router.add_get("/apis/{group}/{version}", group_resources)
    app.router.add_get("/openapi/v3", openapi_root)
    app.router.add_get("/openapi/v3/{tail:.+}", openapi_doc)
    app.router.add_post("/api/{version}/namespaces/{namespace}/{plural}", create)
    app.router.add_post("/apis/{group}/{version}/namespaces/{namespace}/{plural}", create)
    return app


@contextlib.asynccontextmanager
async def fake_apiserver(registry: Registry, aggregated: bool = True) -> AsyncIterator[FakeServer]:
    """Serve discovery and OpenAPI from `registry` on plain HTTP (kubectl talks to
    it anonymously) on a free loopback port."""
    server = FakeServer("", registry, aggregated)
    runner = web.AppRunner(_build_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


async def run_kubectl(server: FakeServer, home: Path, *args: str) -> str:
    """Run the real kubectl against `server` with a private HOME and cache dir,
    so no discovery or OpenAPI cache carries over between runs."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters:\n- name: t\n  cluster:\n    server: {server.url}\n"
        "contexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n"
        "users:\n- name: u\n  user: {}\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "KUBECACHEDIR": str(home / "cache")}
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), "--kubeconfig", str(config), "--cache-dir", str(home / "cache"), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {err.decode()}"
    return out.decode()


needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl not installed in .venv")


# -- pure document tests ---------------------------------------------------------


def test_legacy_api_versions_names_the_server() -> None:
    assert discovery.legacy_api_versions("10.0.0.1:6443") == {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}],
    }


def test_group_list_has_preferred_versions_and_no_core_group() -> None:
    doc = discovery.legacy_api_group_list(Registry())
    names = [g["name"] for g in doc["groups"]]
    assert "" not in names
    # The real server lists the aggregator's own group first (samples/legacy-apis.json).
    assert names[:3] == ["apiregistration.k8s.io", "apps", "events.k8s.io"]
    apps = doc["groups"][1]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    for group in doc["groups"]:
        assert group["preferredVersion"] == group["versions"][0]


def test_preferred_version_prefers_ga_over_beta_over_alpha() -> None:
    registry = Registry()
    for version in ("v1alpha1", "v2beta1", "v1", "v1beta2", "v2"):
        registry.add(ResourceInfo("example.com", version, "Widget", "widgets", "widget", True,
                                  crd_schema={"type": "object"}))
    group = next(g for g in discovery.legacy_api_group_list(registry)["groups"] if g["name"] == "example.com")
    assert [v["version"] for v in group["versions"]] == ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1"]
    assert group["preferredVersion"]["version"] == "v2"


def test_core_resource_list_matches_the_real_server() -> None:
    sample = {r["name"]: r for r in _sample("legacy-api-v1.json")["resources"]}
    ours = discovery.api_resource_list(Registry(), "", "v1")
    assert ours is not None and ours["groupVersion"] == "v1"
    compared = 0
    for entry in ours["resources"]:
        if entry["name"] == "pods/resize":  # new since the 1.28 sample (GA in 1.35)
            assert entry == {"name": "pods/resize", "singularName": "", "namespaced": True, "kind": "Pod",
                             "verbs": ["get", "patch", "update"]}
            continue
        assert entry == sample[entry["name"]], entry["name"]
        compared += 1
    assert compared > 30
    by_name = {r["name"]: r for r in ours["resources"]}
    assert by_name["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                        "group": "policy", "version": "v1", "kind": "Eviction",
                                        "verbs": ["create"]}
    assert by_name["serviceaccounts/token"]["group"] == "authentication.k8s.io"
    assert by_name["services/proxy"]["kind"] == "ServiceProxyOptions"


def test_apps_resource_list_matches_the_real_server() -> None:
    sample = _sample("legacy-apis-apps-v1.json")
    ours = discovery.api_resource_list(Registry(), "apps", "v1")
    assert ours == sample


def test_unknown_group_version_has_no_resource_list() -> None:
    assert discovery.api_resource_list(Registry(), "apps", "v2") is None
    assert discovery.api_resource_list(Registry(), "nope.example.com", "v1") is None


def test_aggregated_named_groups_match_the_real_server() -> None:
    sample = {g["metadata"]["name"]: g for g in _sample("aggregated-apis-v2beta1-from-1.28.json")["items"]}
    ours = discovery.aggregated_discovery(Registry(), core=False)
    assert ours["kind"] == "APIGroupDiscoveryList"
    assert ours["apiVersion"] == "apidiscovery.k8s.io/v2"
    names = [g["metadata"]["name"] for g in ours["items"]]
    assert "" not in names and names[:2] == ["apiregistration.k8s.io", "apps"]
    for group in ("apps", "batch", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
                  "apiregistration.k8s.io", "authorization.k8s.io"):
        ours_group = next(g for g in ours["items"] if g["metadata"]["name"] == group)
        if group == "networking.k8s.io":
            # IPAddress and ServiceCIDR went GA after 1.28 (in 1.33).
            for v in ours_group["versions"]:
                v["resources"] = [r for r in v["resources"] if r["resource"] not in ("ipaddresses", "servicecidrs")]
        assert ours_group == sample[group], group


def test_aggregated_core_group() -> None:
    doc = discovery.aggregated_discovery(Registry(), core=True)
    assert [g["metadata"]["name"] for g in doc["items"]] == [""]
    (version,) = doc["items"][0]["versions"]
    assert version["version"] == "v1" and version["freshness"] == "Current"
    pods = next(r for r in version["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["exec"] == {"subresource": "exec", "verbs": ["create", "get"],
                            "responseKind": {"group": "", "version": "", "kind": "PodExecOptions"}}
    assert subs["status"]["responseKind"] == {"group": "", "version": "", "kind": "Pod"}
    nodes = next(r for r in version["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_custom_resource_appears_in_both_formats() -> None:
    registry = Registry()
    registry.add(ResourceInfo("example.com", "v1", "Widget", "widgets", "widget", False, short_names=("wd",),
                              subresources=("status", "scale"), crd_schema={"type": "object"}))
    agg = discovery.aggregated_discovery(registry, core=False)
    group = next(g for g in agg["items"] if g["metadata"]["name"] == "example.com")
    (resource,) = group["versions"][0]["resources"]
    assert resource["scope"] == "Cluster" and resource["shortNames"] == ["wd"]
    assert [s["subresource"] for s in resource["subresources"]] == ["scale", "status"]
    legacy = discovery.api_resource_list(registry, "example.com", "v1")
    assert legacy is not None
    assert [r["name"] for r in legacy["resources"]] == ["widgets", "widgets/scale", "widgets/status"]


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json", True),
    ("application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList", True),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", False),
    ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json", False),
    ("application/json, */*", False),
    ("", False),
    (None, False),
])
def test_wants_aggregated(accept: str | None, expected: bool) -> None:
    assert discovery.wants_aggregated(accept) is expected


# -- the real kubectl ----------------------------------------------------------------


def _rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines()]


@needs_kubectl
async def test_kubectl_api_resources_and_versions_with_aggregated_discovery(tmp_path: Path) -> None:
    registry = Registry()
    registry.add(ResourceInfo("example.com", "v1", "Widget", "widgets", "widget", True, short_names=("wd",),
                              crd_schema={"type": "object"}))
    async with fake_apiserver(registry) as server:
        out = await run_kubectl(server, tmp_path / "home", "api-resources")
        rows = _rows(out)
        assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
        assert ["pods", "po", "v1", "true", "Pod"] in rows
        assert ["namespaces", "ns", "v1", "false", "Namespace"] in rows
        assert ["clusterroles", "rbac.authorization.k8s.io/v1", "false", "ClusterRole"] in rows
        assert ["widgets", "wd", "example.com/v1", "true", "Widget"] in rows
        # Aggregated discovery answers everything in two requests: no per-GV fetches.
        assert not any(p.startswith("/apis/") or p.startswith("/api/") for p in server.requests), server.requests

        versions = (await run_kubectl(server, tmp_path / "home2", "api-versions")).split()
        assert "v1" in versions and "apps/v1" in versions and "example.com/v1" in versions
        assert "autoscaling/v2" in versions and "rbac.authorization.k8s.io/v1" in versions


@needs_kubectl
async def test_kubectl_api_resources_with_legacy_discovery(tmp_path: Path) -> None:
    async with fake_apiserver(Registry(), aggregated=False) as server:
        rows = _rows(await run_kubectl(server, tmp_path / "home", "api-resources", "--api-group=apps"))
        assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in rows
        assert ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"] in rows
        # Legacy discovery makes kubectl fetch every group-version's resource list.
        assert "/api/v1" in server.requests and "/apis/apps/v1" in server.requests
