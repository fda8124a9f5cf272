"""OpenAPI v3 documents: structure, completeness of the component closure, hashes,
and the real kubectl 1.37 using them for `explain` and the fieldValidation check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import openapi
from tests.unit.test_discovery import fake_apiserver, needs_kubectl, run_kubectl

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Widget is a test custom resource.",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
        "spec": {
            "type": "object",
            "description": "What the widget should be.",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "description": "How big the widget is."},
                "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}],
                         "description": "Where it listens."},
                "color": {"type": "string", "enum": ["red", "blue"]},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def _widget(version: str = "v1", schema: dict[str, Any] | None = None, namespaced: bool = True) -> ResourceInfo:
    return ResourceInfo("stable.example.com", version, "Widget", "widgets", "widget", namespaced,
                        short_names=("wd",), subresources=("status", "scale"),
                        crd_schema=schema if schema is not None else WIDGET_SCHEMA)


def _doc(registry: Registry, path: str) -> dict[str, Any]:
    found = openapi.openapi_v3_document(registry, path)
    assert found is not None, path
    return orjson.loads(found[0])


def _refs(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            out.add(ref)
        for value in node.values():
            out |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            out |= _refs(value)
    return out


# -- root and hashes ---------------------------------------------------------------


def test_root_lists_every_group_version_with_its_hash() -> None:
    registry = Registry()
    root = openapi.openapi_v3_root(registry)
    assert set(root) == {"paths"}
    assert "api/v1" in root["paths"] and "apis/apps/v1" in root["paths"]
    assert "apis/rbac.authorization.k8s.io/v1" in root["paths"]
    for key, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        match = re.fullmatch(r"/openapi/v3/(.+)\?hash=([0-9A-F]{128})", url)
        assert match is not None, url
        assert match.group(1) == key
        data, digest = openapi.openapi_v3_document(registry, key)  # type: ignore[misc]
        assert digest == match.group(2) == openapi.content_hash(data)


def test_unknown_document_paths() -> None:
    registry = Registry()
    for path in ("apis/apps/v9", "apis/nope.example.com/v1", "api", "apis/apps", "version", "api/v1/pods"):
        assert openapi.openapi_v3_document(registry, path) is None, path


def test_hash_changes_with_the_document_and_only_then() -> None:
    registry = Registry()
    registry.add(_widget())
    first = openapi.openapi_v3_document(registry, "apis/stable.example.com/v1")
    apps_first = openapi.openapi_v3_document(registry, "apis/apps/v1")
    assert first is not None and apps_first is not None
    # Same generation: served from the cache, byte for byte.
    assert openapi.openapi_v3_document(registry, "apis/stable.example.com/v1") is first

    changed = dict(WIDGET_SCHEMA, description="A different description.")
    registry.remove("stable.example.com", "v1", "widgets")
    registry.add(_widget(schema=changed))
    second = openapi.openapi_v3_document(registry, "apis/stable.example.com/v1")
    assert second is not None and second[1] != first[1]
    root = openapi.openapi_v3_root(registry)
    assert root["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"].endswith(second[1])
    # Other group-versions did not change, so their URLs stay cacheable.
    assert openapi.openapi_v3_document(registry, "apis/apps/v1")[1] == apps_first[1]  # type: ignore[index]

    registry.remove("stable.example.com", "v1", "widgets")
    assert openapi.openapi_v3_document(registry, "apis/stable.example.com/v1") is None
    assert "apis/stable.example.com/v1" not in openapi.openapi_v3_root(registry)["paths"]


# -- paths and operations --------------------------------------------------------


def test_deployment_paths_and_operations() -> None:
    doc = _doc(Registry(), "apis/apps/v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.37.0"}
    paths = doc["paths"]
    collection = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {k for k in collection if k != "parameters"} == {"get", "post", "delete"}
    assert {k for k in item if k != "parameters"} == {"get", "put", "patch", "delete"}
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["post"]["x-kubernetes-action"] == "post"
    assert collection["delete"]["x-kubernetes-action"] == "deletecollection"
    assert [item[m]["x-kubernetes-action"] for m in ("get", "put", "patch", "delete")] == [
        "get", "put", "patch", "delete"]
    deployment_gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    for op in (collection["get"], collection["post"], item["patch"], item["put"]):
        assert op["x-kubernetes-group-version-kind"] == deployment_gvk

    patch = item["patch"]
    assert [p["name"] for p in patch["parameters"]] == ["dryRun", "fieldManager", "fieldValidation", "force"]
    assert all(p["in"] == "query" for p in patch["parameters"])
    assert set(patch["requestBody"]["content"]) == set(openapi.PATCH_CONTENT_TYPES)
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"}
    for op in (item["put"], collection["post"]):
        names = [p["name"] for p in op["parameters"]]
        assert {"dryRun", "fieldManager", "fieldValidation"} <= set(names) and "force" not in names
    assert {p["name"]: p["in"] for p in item["parameters"]} == {"name": "path", "namespace": "path",
                                                                 "pretty": "query"}

    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"] == deployment_gvk
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1",
                                                               "kind": "Scale"}
    assert "fieldValidation" in [p["name"] for p in scale["patch"]["parameters"]]
    assert paths["/apis/apps/v1/deployments"]["get"]["x-kubernetes-action"] == "list"
    assert paths["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]["x-kubernetes-action"] == \
        "watchlist"
    # DaemonSets have no scale subresource, so no scale path.
    assert "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}/scale" not in paths

    op_ids = [op["operationId"] for item in paths.values() for k, op in item.items() if k != "parameters"]
    assert len(op_ids) == len(set(op_ids))
    assert "patchAppsV1NamespacedDeployment" in op_ids


def test_cluster_scoped_and_create_only_kinds() -> None:
    core = _doc(Registry(), "api/v1")["paths"]
    assert "/api/v1/nodes/{name}" in core and "/api/v1/nodes/{name}/status" in core
    assert not any("namespaces/{namespace}/nodes" in p for p in core)
    assert {p["name"] for p in core["/api/v1/nodes/{name}"]["parameters"]} == {"name", "pretty"}
    # Namespaces cannot be deleted as a collection.
    assert "delete" not in core["/api/v1/namespaces"]

    authn = _doc(Registry(), "apis/authentication.k8s.io/v1")["paths"]
    reviews = authn["/apis/authentication.k8s.io/v1/tokenreviews"]
    assert {k for k in reviews if k != "parameters"} == {"post"}
    assert "/apis/authentication.k8s.io/v1/tokenreviews/{name}" not in authn


# -- components ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/apiextensions.k8s.io/v1",
                                  "apis/stable.example.com/v1"])
def test_every_reference_resolves_within_the_document(path: str) -> None:
    registry = Registry()
    registry.add(_widget())
    doc = _doc(registry, path)
    components = doc["components"]["schemas"]
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in components
    for meta in ("ManagedFieldsEntry", "OwnerReference", "Time", "FieldsV1", "Status", "DeleteOptions",
                 "WatchEvent", "Patch", "ListMeta"):
        assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{meta}" in components, meta


def test_schemas_are_openapi_3_0() -> None:
    doc = _doc(Registry(), "apis/apps/v1")
    schemas = doc["components"]["schemas"]

    def walk(node: Any, where: str) -> None:
        # Descend only through schema-bearing keywords: a property may well be named "type".
        assert isinstance(node, dict), where
        if "type" in node:
            assert isinstance(node["type"], str), where
        if "$ref" in node:
            assert set(node) == {"$ref"}, f"$ref with siblings at {where}"
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{where}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{where}[{key}]")
        for key in ("allOf", "oneOf", "anyOf"):
            for sub in node.get(key, []):
                walk(sub, f"{where}[{key}]")

    for name, schema in schemas.items():
        walk(schema, name)
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment",
                                                              "version": "v1"}]
    assert deployment["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert deployment["properties"]["metadata"]["description"].startswith("Standard object's metadata")
    assert deployment["properties"]["apiVersion"] == {
        "description": deployment["properties"]["apiVersion"]["description"], "type": "string"}
    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"] == {
        "description": schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]["description"],
        "format": "date-time", "type": "string"}
    assert "required" in schemas["io.k8s.api.apps.v1.DeploymentSpec"]


def test_convert_schema_rules() -> None:
    node = {"$ref": "#/$defs/a.B", "description": "d", "type": ["object", "null"]}
    assert openapi.convert_schema(node) == {"allOf": [{"$ref": "#/components/schemas/a.B"}], "description": "d",
                                            "type": "object"}
    assert openapi.convert_schema({"$ref": "#/$defs/a.B"}) == {"$ref": "#/components/schemas/a.B"}
    assert openapi.convert_schema({"type": ["string", "null"], "enum": ["x", None]}) == {
        "type": "string", "enum": ["x"]}
    assert openapi.convert_schema({"type": "array", "items": {"type": ["integer", "null"], "format": "int32"}}) == {
        "type": "array", "items": {"type": "integer", "format": "int32"}}


def test_custom_resource_schema() -> None:
    registry = Registry()
    registry.add(_widget())
    doc = _doc(registry, "apis/stable.example.com/v1")
    schemas = doc["components"]["schemas"]
    widget = schemas["com.example.stable.v1.Widget"]
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "stable.example.com", "kind": "Widget",
                                                          "version": "v1"}]
    assert widget["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert widget["properties"]["apiVersion"]["type"] == "string"
    assert widget["properties"]["spec"]["required"] == ["size"]
    assert widget["properties"]["spec"]["properties"]["port"]["x-kubernetes-int-or-string"] is True
    widget_list = schemas["com.example.stable.v1.WidgetList"]
    assert widget_list["properties"]["items"]["items"] == {"$ref": "#/components/schemas/com.example.stable.v1.Widget"}
    # The registry's schema is left untouched.
    assert WIDGET_SCHEMA["properties"]["metadata"] == {
        "type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "stable.example.com", "version": "v1",
                                                        "kind": "Widget"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas


def test_custom_resource_without_schema_still_has_the_envelope() -> None:
    info = ResourceInfo("example.com", "v1", "Gadget", "gadgets", "gadget", False, extra={"crd": {}})
    schema = openapi.crd_kind_schema(info)
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    assert {"apiVersion", "kind", "metadata"} <= set(schema["properties"])
    assert openapi.crd_schema_name("example.com", "v1", "Gadget") == "com.example.v1.Gadget"


# -- the real kubectl ----------------------------------------------------------------


def _field_lines(output: str) -> list[str]:
    after = output.split("FIELDS:", 1)[1]
    return [line.strip() for line in after.splitlines() if line.startswith("  ") and not line.startswith("    ")]


@needs_kubectl
async def test_kubectl_explain_builtin_kinds(tmp_path: Path) -> None:
    async with fake_apiserver(Registry()) as server:
        out = await run_kubectl(server, tmp_path / "a", "explain", "pod.spec.containers")
        assert "KIND:       Pod" in out and "VERSION:    v1" in out
        assert "FIELD: containers <[]Container>" in out
        fields = _field_lines(out)
        assert "image\t<string>" in fields
        assert "name\t<string> -required-" in fields
        assert "ports\t<[]ContainerPort>" in fields
        assert "resources\t<ResourceRequirements>" in fields

        out = await run_kubectl(server, tmp_path / "b", "explain", "deployment.spec.strategy")
        assert "GROUP:      apps" in out and "KIND:       Deployment" in out
        assert "FIELD: strategy <DeploymentStrategy>" in out
        assert _field_lines(out) == ["rollingUpdate\t<RollingUpdateDeployment>", "type\t<string>"]

        out = await run_kubectl(server, tmp_path / "c", "explain", "deployment.spec.strategy.rollingUpdate")
        assert _field_lines(out) == ["maxSurge\t<IntOrString>", "maxUnavailable\t<IntOrString>"]

        out = await run_kubectl(server, tmp_path / "d", "explain", "pods.metadata.ownerReferences")
        assert "uid\t<string> -required-" in _field_lines(out)


@needs_kubectl
async def test_kubectl_explain_custom_resource(tmp_path: Path) -> None:
    registry = Registry()
    registry.add(_widget())
    async with fake_apiserver(registry) as server:
        out = await run_kubectl(server, tmp_path / "a", "explain", "widgets.spec")
        assert "GROUP:      stable.example.com" in out and "KIND:       Widget" in out
        assert "What the widget should be." in out
        fields = _field_lines(out)
        assert "size\t<integer> -required-" in fields
        assert "color\t<string>" in fields
        out = await run_kubectl(server, tmp_path / "b", "explain", "wd.metadata")
        assert "labels\t<map[string]string>" in _field_lines(out)


@needs_kubectl
async def test_kubectl_create_uses_server_side_field_validation(tmp_path: Path) -> None:
    """With --validate=strict (the default) kubectl looks for a PATCH operation with
    the object's GVK listing `fieldValidation`; finding it, it sends Strict instead
    of falling back to /openapi/v2 (which would fail)."""
    registry = Registry()
    registry.add(_widget())
    manifest = tmp_path / "objs.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
        "    spec:\n      containers:\n      - name: web\n        image: nginx\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
        "---\napiVersion: stable.example.com/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n")
    async with fake_apiserver(registry) as server:
        out = await run_kubectl(server, tmp_path / "home", "create", "-f", str(manifest))
        assert "deployment.apps/web created" in out
        assert "configmap/cfg created" in out
        assert "widget.stable.example.com/w created" in out
        assert len(server.creates) == 3
        for path_qs in server.creates:
            assert "fieldValidation=Strict" in path_qs, path_qs
        assert "/openapi/v2" not in server.requests
