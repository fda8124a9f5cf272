"""A CustomResourceDefinition with two versions (conversion strategy None), driven by the real
kubectl and the Python client: each object reads in the version asked for whatever version
it is stored in, writes through either version land in the storage version, patches apply
to the object as the request's version shows it, and after the storage version changes a
list mixes objects stored in both versions yet shows all of them in one version."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, watch

GROUP = "mv.kyb.example.com"
PLURAL = "gadgets"


def _crd(storage: str) -> str:
    def version(name: str) -> dict:
        return {"name": name, "served": True, "storage": name == storage,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return json.dumps({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
                 "versions": [version("v1"), version("v2")]}})


def _gadget(name: str, version: str, size: int) -> str:
    return json.dumps({"apiVersion": f"{GROUP}/{version}", "kind": "Gadget",
                       "metadata": {"name": name}, "size": size})


@pytest.fixture(scope="module")
def ns(kubectl) -> Iterator[str]:
    name = "crdv-" + uuid.uuid4().hex[:6]
    kubectl.ok("create", "namespace", name)
    kubectl.ok("apply", "-f", "-", stdin=_crd("v1"))
    kubectl.ok("wait", "--for=condition=established", f"crd/{PLURAL}.{GROUP}", "--timeout=30s")
    yield name
    kubectl("delete", "namespace", name, "--wait=false")
    kubectl("delete", "crd", f"{PLURAL}.{GROUP}", "--wait=false")


def _get(kubectl, ns: str, version: str, name: str) -> dict:
    return json.loads(kubectl.ok("get", "-n", ns, f"{PLURAL}.{version}.{GROUP}", name, "-o", "json"))


def _list(kubectl, ns: str, version: str) -> dict[str, dict]:
    items = json.loads(kubectl.ok("get", "-n", ns, f"{PLURAL}.{version}.{GROUP}", "-o", "json"))["items"]
    return {i["metadata"]["name"]: i for i in items}


def test_each_version_reads_and_writes_the_same_objects(kubectl, ns) -> None:
    kubectl.ok("create", "-n", ns, "-f", "-", stdin=_gadget("first", "v1", 1))
    kubectl.ok("create", "-n", ns, "-f", "-", stdin=_gadget("second", "v2", 2))
    for version in ("v1", "v2"):
        got = _get(kubectl, ns, version, "first")
        assert got["apiVersion"] == f"{GROUP}/{version}" and got["size"] == 1
        listed = _list(kubectl, ns, version)
        assert {n: (o["apiVersion"], o["size"]) for n, o in listed.items()} == {
            "first": (f"{GROUP}/{version}", 1), "second": (f"{GROUP}/{version}", 2)}
    # A patch through the version that is not stored applies as that version shows the object.
    kubectl.ok("patch", "-n", ns, f"{PLURAL}.v2.{GROUP}", "first", "--type=merge", "-p", '{"size": 10}')
    kubectl.ok("patch", "-n", ns, f"{PLURAL}.v2.{GROUP}", "second", "--type=json",
               "-p", '[{"op": "replace", "path": "/size", "value": 20}]')
    assert _get(kubectl, ns, "v1", "first")["size"] == 10
    assert _get(kubectl, ns, "v1", "second")["size"] == 20


def test_a_watch_in_the_other_version_sees_that_version(kubectl, k8s_client, ns) -> None:
    api = client.CustomObjectsApi(k8s_client)
    listed = api.list_namespaced_custom_object(GROUP, "v2", ns, PLURAL)
    kubectl.ok("create", "-n", ns, "-f", "-", stdin=_gadget("watched", "v1", 3))
    w = watch.Watch()
    seen = None
    for ev in w.stream(api.list_namespaced_custom_object, GROUP, "v2", ns, PLURAL,
                       resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=20):
        if ev["object"]["metadata"]["name"] == "watched":
            seen = ev
            w.stop()
    assert seen is not None and seen["type"] == "ADDED"
    assert seen["object"]["apiVersion"] == f"{GROUP}/v2" and seen["object"]["size"] == 3


def test_after_the_storage_version_changes_a_list_shows_every_object_in_one_version(kubectl, ns) -> None:
    kubectl.ok("create", "-n", ns, "-f", "-", stdin=_gadget("old", "v1", 4))
    kubectl.ok("apply", "-f", "-", stdin=_crd("v2"))
    kubectl.ok("create", "-n", ns, "-f", "-", stdin=_gadget("new", "v1", 5))
    for version in ("v1", "v2"):
        listed = _list(kubectl, ns, version)
        assert {"old", "new"} <= set(listed)
        assert {o["apiVersion"] for o in listed.values()} == {f"{GROUP}/{version}"}
        assert (listed["old"]["size"], listed["new"]["size"]) == (4, 5)
    # An object still stored in the old version is patched through the new storage version.
    kubectl.ok("patch", "-n", ns, f"{PLURAL}.v2.{GROUP}", "old", "--type=merge", "-p", '{"size": 40}')
    got = _get(kubectl, ns, "v1", "old")
    assert got["apiVersion"] == f"{GROUP}/v1" and got["size"] == 40
