"""What Kubernetes' sig-auth specs needed beyond the API itself, checked with real kubectl and
the Python client: a write naming another uid than the stored object's is refused (so a node's
status report for a pod that was deleted and recreated under the same name does not land on
the new pod, as in `ServiceAccounts should set ownership and permission when RunAsUser or
FsGroup is present`, which reuses one pod name four times)."""

from __future__ import annotations

import json
import uuid

import pytest


def _pod(kubectl, name: str) -> dict:
    kubectl.ok("run", name, "--image=registry.k8s.io/pause:3.9", "--restart=Never")
    return json.loads(kubectl.ok("get", "pod", name, "-o", "json"))


def test_status_patch_naming_another_uid_is_refused(kubectl) -> None:
    pod = _pod(kubectl, "uid-status")
    other = str(uuid.uuid4())
    r = kubectl("patch", "pod", "uid-status", "--subresource=status", "--type=merge",
                "-p", json.dumps({"metadata": {"uid": other}, "status": {"message": "stale"}}))
    assert r.returncode != 0
    assert "metadata.uid" in r.stderr and "field is immutable" in r.stderr, r.stderr
    after = json.loads(kubectl.ok("get", "pod", "uid-status", "-o", "json"))
    assert after["metadata"]["uid"] == pod["metadata"]["uid"]
    assert "message" not in after.get("status", {})
    # The pod's own uid is accepted: a node's status patch names it.
    kubectl.ok("patch", "pod", "uid-status", "--subresource=status", "--type=merge",
               "-p", json.dumps({"metadata": {"uid": pod["metadata"]["uid"]}, "status": {"message": "mine"}}))
    assert json.loads(kubectl.ok("get", "pod", "uid-status", "-o", "json"))["status"]["message"] == "mine"
    kubectl.ok("delete", "pod", "uid-status", "--wait=false")


def test_label_patch_naming_another_uid_is_refused(k8s_client) -> None:
    from kubernetes import client

    v1 = client.CoreV1Api(k8s_client)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "uid-cm"}, "data": {"a": "1"}})
    with pytest.raises(client.ApiException) as err:
        v1.patch_namespaced_config_map("uid-cm", "default",
                                       {"metadata": {"uid": str(uuid.uuid4()), "labels": {"x": "y"}}})
    assert err.value.status == 422
    assert "labels" not in (v1.read_namespaced_config_map("uid-cm", "default").metadata.labels or {})
    v1.delete_namespaced_config_map("uid-cm", "default")


def test_put_naming_another_uid_fails_its_precondition(k8s_client) -> None:
    from kubernetes import client

    v1 = client.CoreV1Api(k8s_client)
    created = v1.create_namespaced_config_map("default", {"metadata": {"name": "uid-put"}, "data": {"a": "1"}})
    stale = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="uid-put", uid=str(uuid.uuid4())),
                               data={"a": "2"})
    with pytest.raises(client.ApiException) as err:
        v1.replace_namespaced_config_map("uid-put", "default", stale)
    assert err.value.status == 409
    assert "Precondition failed: UID in precondition" in json.loads(err.value.body)["message"]
    assert v1.read_namespaced_config_map("uid-put", "default").data == {"a": "1"}
    # The same object's uid (read, changed, written back) still works.
    created.data = {"a": "3"}
    assert v1.replace_namespaced_config_map("uid-put", "default", created).data == {"a": "3"}
    v1.delete_namespaced_config_map("uid-put", "default")


def test_cluster_info_is_published_and_signed_by_bootstrap_tokens(kubectl) -> None:
    """`[Feature:BootstrapTokens] should sign the new added bootstrap tokens` and `should
    delete the signed bootstrap tokens from clusterInfo ConfigMap when bootstrap token is deleted`."""
    import base64
    import time

    def cluster_info() -> dict:
        return json.loads(kubectl.ok("get", "configmap", "cluster-info", "-n", "kube-public", "-o", "json"))

    def wait_for(check) -> dict:
        deadline = time.monotonic() + 30
        while True:
            cm = cluster_info()
            if check(cm["data"]) or time.monotonic() > deadline:
                return cm
            time.sleep(0.3)

    kubeconfig = cluster_info()["data"]["kubeconfig"]
    assert "certificate-authority-data:" in kubeconfig and "server: https://" in kubeconfig
    data = {"token-id": "kyb0c1", "token-secret": "0123456789abcdef", "usage-bootstrap-signing": "true"}
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
              "metadata": {"name": "bootstrap-token-kyb0c1", "namespace": "kube-system"},
              "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    kubectl.ok("create", "-f", "-", stdin=json.dumps(secret))
    cm = wait_for(lambda d: "jws-kubeconfig-kyb0c1" in d)
    header, payload, _sig = cm["data"]["jws-kubeconfig-kyb0c1"].split(".")
    assert payload == ""
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))) == {"alg": "HS256",
                                                                                         "kid": "kyb0c1"}
    kubectl.ok("delete", "secret", "bootstrap-token-kyb0c1", "-n", "kube-system")
    cm = wait_for(lambda d: "jws-kubeconfig-kyb0c1" not in d)
    assert "jws-kubeconfig-kyb0c1" not in cm["data"]
