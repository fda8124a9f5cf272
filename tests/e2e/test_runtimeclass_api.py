"""RuntimeClass admission and image volumes at the API (no containers): kubectl and the
official Python client see upstream's refusals, and an admitted pod carries its class's
overhead, node selector and tolerations."""

from __future__ import annotations

import json

import pytest

NS = "rc-api"


def pod(name: str, **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                       "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}], **spec}})


@pytest.fixture(scope="module")
def classes(kubectl):
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("apply", "-f", "-", stdin="\n---\n".join(json.dumps(rc) for rc in [
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "rc-api-kata"},
         "handler": "kata", "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
         "scheduling": {"nodeSelector": {"runtime": "kata"},
                        "tolerations": [{"key": "kata", "operator": "Exists", "effect": "NoSchedule"}]}},
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "rc-api-plain"},
         "handler": "runc"}]))
    yield
    kubectl("delete", "namespace", NS, "--wait=false")
    kubectl("delete", "runtimeclass", "rc-api-kata", "rc-api-plain")


def test_an_unknown_runtime_class_is_refused(kubectl, classes):
    r = kubectl("apply", "-f", "-", stdin=pod("unknown", runtimeClassName="nope"))
    assert r.returncode != 0
    assert 'pods "unknown" is forbidden: pod rejected: RuntimeClass "nope" not found' in r.stderr
    assert kubectl("get", "pod", "-n", NS, "unknown").returncode != 0


def test_the_class_sets_overhead_selector_and_tolerations(kubectl, classes):
    kubectl.ok("apply", "-f", "-", stdin=pod("kata", runtimeClassName="rc-api-kata", nodeSelector={"zone": "a"}))
    spec = json.loads(kubectl.ok("get", "pod", "-n", NS, "kata", "-o", "json"))["spec"]
    assert spec["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert spec["nodeSelector"] == {"zone": "a", "runtime": "kata"}
    assert {"key": "kata", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_conflicts_and_foreign_overheads_are_refused(kubectl, classes):
    r = kubectl("apply", "-f", "-", stdin=pod("conflict", runtimeClassName="rc-api-kata",
                                              nodeSelector={"runtime": "runc"}))
    assert r.returncode != 0 and ("conflict: runtimeClass.scheduling.nodeSelector[runtime] = kata; "
                                  "pod.spec.nodeSelector[runtime] = runc") in r.stderr
    r = kubectl("apply", "-f", "-", stdin=pod("other", runtimeClassName="rc-api-kata", overhead={"cpu": "1"}))
    assert r.returncode != 0 and "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead" \
        in r.stderr
    r = kubectl("apply", "-f", "-", stdin=pod("bare", overhead={"cpu": "1"}))
    assert r.returncode != 0 and \
        "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead" in r.stderr
    r = kubectl("apply", "-f", "-", stdin=pod("plain", runtimeClassName="rc-api-plain", overhead={"cpu": "1"}))
    assert r.returncode != 0


def test_image_volumes_are_refused_with_the_reason(kubectl, k8s_client, classes):
    r = kubectl("apply", "-f", "-", stdin=pod("imagevol", volumes=[{"name": "v", "image": {"reference": "busybox:1.35"}}]))
    assert r.returncode != 0
    assert 'Pod "imagevol" is invalid: spec.volumes[0].image: Forbidden: image volumes are not supported' \
        in r.stderr and "containerd 1.6" in r.stderr
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    body = json.loads(pod("imagevol2", volumes=[{"name": "v", "image": {"reference": "busybox:1.35"}}]))
    with pytest.raises(ApiException) as e:
        client.CoreV1Api(k8s_client).create_namespaced_pod(NS, body)
    assert e.value.status == 422 and json.loads(e.value.body)["details"]["causes"][0]["field"] == \
        "spec.volumes[0].image"
