"""The official `kubernetes` Python client against a real `kyb server`."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from kubernetes import client, dynamic, utils, watch
from kubernetes.client.rest import ApiException


def test_typed_crud(k8s_client):
    core = client.CoreV1Api(k8s_client)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "py-cm"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("py-cm", "default")
    assert got.data == {"a": "1"}
    got.data["b"] = "2"
    upd = core.replace_namespaced_config_map("py-cm", "default", got)
    assert int(upd.metadata.resource_version) > int(cm.metadata.resource_version)
    patched = core.patch_namespaced_config_map("py-cm", "default", {"data": {"c": "3"}})
    assert patched.data == {"a": "1", "b": "2", "c": "3"}
    # A stale resourceVersion conflicts.
    got.data["d"] = "4"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("py-cm", "default", got)
    assert e.value.status == 409
    names = [c.metadata.name for c in core.list_namespaced_config_map("default").items]
    assert "py-cm" in names
    core.delete_namespaced_config_map("py-cm", "default")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("py-cm", "default")
    assert e.value.status == 404


def test_typed_deployment_and_scale(k8s_client):
    apps = client.AppsV1Api(k8s_client)
    body = {
        "metadata": {"name": "py-dep"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "py"}},
                 "template": {"metadata": {"labels": {"app": "py"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }
    dep = apps.create_namespaced_deployment("default", body)
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.metadata.generation == 1
    scale = apps.patch_namespaced_deployment_scale("py-dep", "default", {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert scale.status.selector == "app=py"
    dep = apps.read_namespaced_deployment("py-dep", "default")
    assert dep.spec.replicas == 3 and dep.metadata.generation == 2
    # Spec writes ignore status (the deployment controller owns it). The controller
    # writes concurrently, so a stale read may conflict: read-modify-write again.
    for _ in range(20):
        dep = apps.read_namespaced_deployment("py-dep", "default")
        dep.status.replicas = 99
        dep.spec.replicas = 2
        try:
            dep = apps.replace_namespaced_deployment("py-dep", "default", dep)
            break
        except ApiException as e:
            assert e.status == 409
    assert dep.spec.replicas == 2 and dep.status.replicas != 99
    # Selector is immutable.
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment("py-dep", "default", {"spec": {"selector": {"matchLabels": {"app": "x"}},
                                                                         "template": {"metadata": {"labels": {"app": "x"}}}}})
    assert e.value.status == 422 and "field is immutable" in e.value.body
    apps.delete_namespaced_deployment("py-dep", "default")


def test_watch_stream(k8s_client):
    core = client.CoreV1Api(k8s_client)
    initial = core.list_namespaced_config_map("default")
    rv = initial.metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10,
                           label_selector="watched=yes"):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) >= 3:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.5)
    core.create_namespaced_config_map("default", {"metadata": {"name": "w1", "labels": {"watched": "yes"}}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    core.patch_namespaced_config_map("w1", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", "default")
    t.join(15)
    core.delete_namespaced_config_map("other", "default")
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_list_pagination(k8s_client):
    core = client.CoreV1Api(k8s_client)
    core.create_namespace({"metadata": {"name": "page"}})
    # Selected by label: the namespace also holds the published kube-root-ca.crt.
    for i in range(7):
        core.create_namespaced_config_map("page", {"metadata": {"name": f"p{i}", "labels": {"page": "yes"}}})
    names = []
    cont = None
    pages = 0
    while True:
        res = core.list_namespaced_config_map("page", limit=3, _continue=cont, label_selector="page=yes")
        pages += 1
        names += [c.metadata.name for c in res.items]
        cont = res.metadata._continue
        if not cont:
            break
    assert names == [f"p{i}" for i in range(7)] and pages == 3
    core.delete_collection_namespaced_config_map("page", label_selector="page=yes")
    assert core.list_namespaced_config_map("page", label_selector="page=yes").items == []
    core.delete_namespace("page")


def test_dynamic_client_and_ssa(k8s_client):
    dyn = dynamic.DynamicClient(k8s_client)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn-cm", "namespace": "default"},
            "data": {"k": "v"}}
    created = cms.server_side_apply(body=body, field_manager="py-test")
    assert created.data.k == "v"
    got = cms.get(name="dyn-cm", namespace="default")
    assert got.metadata.managedFields[0].manager == "py-test"
    cms.delete(name="dyn-cm", namespace="default")


def test_create_from_yaml(k8s_client, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(textwrap.dedent("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: fy-cm, namespace: default}
        data: {a: b}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: fy-dep, namespace: default}
        spec:
          selector: {matchLabels: {app: fy}}
          template:
            metadata: {labels: {app: fy}}
            spec: {containers: [{name: c, image: busybox}]}
        """))
    utils.create_from_yaml(k8s_client, str(f))
    assert client.AppsV1Api(k8s_client).read_namespaced_deployment("fy-dep", "default").spec.replicas == 1
    with pytest.raises(utils.FailToCreateError):
        utils.create_from_yaml(k8s_client, str(f))
    client.CoreV1Api(k8s_client).delete_namespaced_config_map("fy-cm", "default")
    client.AppsV1Api(k8s_client).delete_namespaced_deployment("fy-dep", "default")
