"""Which metadata a write through `/status` may change, kind by kind, as upstream's status
strategies decide: most kinds reset only the spec (labels, annotations, finalizers and
owner references written through /status stick), a Deployment keeps its labels, a Pod its
owner references, and some kinds (VolumeAttachment, ValidatingAdmissionPolicy, APIService,
FlowSchema, ResourceClaim, custom resources) keep all of it. Driven with `kubectl patch --subresource=status`."""

from __future__ import annotations

import json

import pytest
import yaml

NS = "status-rules"
ALL = frozenset({"labels", "annotations", "finalizers", "ownerReferences"})
FINALIZER = "example.com/status-write"
TEMPLATE = {"metadata": {"labels": {"app": "sr"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}

# kubectl resource, manifest, the user metadata a /status write changes.
CASES: dict[str, tuple[str, dict, frozenset[str]]] = {
    "deployment": ("deployment", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sr-deploy"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "sr"}}, "template": TEMPLATE}},
        ALL - {"labels"}),
    "replicaset": ("replicaset", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "sr-rs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "sr"}}, "template": TEMPLATE}}, ALL),
    "statefulset": ("statefulset", {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sr-sts"},
        "spec": {"replicas": 0, "serviceName": "sr", "selector": {"matchLabels": {"app": "sr"}},
                 "template": TEMPLATE}}, ALL),
    "pod": ("pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sr-pod"}, "spec": TEMPLATE["spec"]},
            ALL - {"ownerReferences"}),
    "service": ("service", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "sr-svc"},
                            "spec": {"ports": [{"port": 80}]}}, ALL),
    "volumeattachment": ("volumeattachment", {
        "apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": {"name": "sr-va"},
        "spec": {"attacher": "csi.example.com", "nodeName": "node-1", "source": {"persistentVolumeName": "pv-1"}}},
        frozenset()),
    "validatingadmissionpolicy": ("validatingadmissionpolicy", {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "sr-vap"},
        "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["deployments"]}]},
                 "validations": [{"expression": "object.spec.replicas <= 50"}]}}, frozenset()),
    "daemonset": ("daemonset", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "sr-ds"},
        "spec": {"selector": {"matchLabels": {"app": "sr"}}, "template": TEMPLATE}}, ALL),
    "apiservice": ("apiservice", {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1alpha1.statusrules.example.com"},
        "spec": {"group": "statusrules.example.com", "version": "v1alpha1", "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "service": {"namespace": NS, "name": "sr-api", "port": 443},
                 "insecureSkipTLSVerify": True}}, frozenset()),
    "flowschema": ("flowschema", {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "sr-fs"},
        "spec": {"priorityLevelConfiguration": {"name": "global-default"}, "matchingPrecedence": 9000,
                 "rules": [{"subjects": [{"kind": "User", "user": {"name": "sr-nobody"}}],
                            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/sr-none"]}]}]}},
        frozenset()),
    "resourceclaim": ("resourceclaim", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": "sr-claim"},
        "spec": {"devices": {"requests": [{"name": "req-0", "exactly": {"deviceClassName": "sr-gpu"}}]}}},
        frozenset()),
    "customresourcedefinition": ("customresourcedefinition", {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.statusrules.example.com"},
        "spec": {"group": "statusrules.example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]}},
        ALL),
}


CLUSTER_SCOPED = ("VolumeAttachment", "ValidatingAdmissionPolicy", "CustomResourceDefinition", "APIService",
                  "FlowSchema")


@pytest.fixture(scope="module")
def owner(kubectl):
    kubectl.ok("create", "namespace", NS)
    cm = json.loads(kubectl.ok("-n", NS, "create", "configmap", "sr-owner", "-o", "json"))
    yield {"apiVersion": "v1", "kind": "ConfigMap", "name": "sr-owner", "uid": cm["metadata"]["uid"]}
    kubectl("delete", "namespace", NS, "--wait=false")


def status_write_sticks(kubectl, resource: str, name: str, namespaced: bool, owner: dict) -> frozenset[str]:
    """Patch every piece of user metadata through /status; which of them the object now has."""
    ns = ["-n", NS] if namespaced else []
    patch = {"metadata": {"labels": {"status-write": "yes"}, "annotations": {"status-write": "yes"},
                          "finalizers": [FINALIZER], "ownerReferences": [owner]}}
    kubectl.ok(*ns, "patch", resource, name, "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    meta = json.loads(kubectl.ok(*ns, "get", resource, name, "-o", "json"))["metadata"]
    found = {
        "labels": (meta.get("labels") or {}).get("status-write") == "yes",
        "annotations": (meta.get("annotations") or {}).get("status-write") == "yes",
        "finalizers": FINALIZER in (meta.get("finalizers") or []),
        "ownerReferences": owner["uid"] in [r.get("uid") for r in meta.get("ownerReferences") or []],
    }
    return frozenset(k for k, v in found.items() if v)


def remove(kubectl, resource: str, name: str, namespaced: bool) -> None:
    ns = ["-n", NS] if namespaced else []
    kubectl(*ns, "patch", resource, name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl(*ns, "delete", resource, name, "--wait=false")


@pytest.mark.parametrize("case", list(CASES))
def test_a_status_write_changes_the_metadata_the_kind_allows(case, kubectl, owner):
    resource, manifest, sticks = CASES[case]
    namespaced = manifest["kind"] not in CLUSTER_SCOPED
    ns = ["-n", NS] if namespaced else []
    made = kubectl(*ns, "create", "-f", "-", stdin=yaml.safe_dump(manifest))
    if "no matches for kind" in made.stderr:
        pytest.skip(f"{manifest['apiVersion']} {manifest['kind']} is not served")
    assert made.returncode == 0, made.stderr
    name = manifest["metadata"]["name"]
    try:
        assert status_write_sticks(kubectl, resource, name, namespaced, owner) == sticks
    finally:
        remove(kubectl, resource, name, namespaced)


def test_a_custom_resource_status_write_keeps_all_metadata(kubectl, owner):
    _, crd, _ = CASES["customresourcedefinition"]
    crd = {**crd, "metadata": {"name": "gadgets.statusrules.example.com"},
           "spec": {**crd["spec"], "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}}}
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(crd))
    try:
        kubectl.ok("wait", "--for=condition=Established", "crd/gadgets.statusrules.example.com", "--timeout=30s")
        cr = {"apiVersion": "statusrules.example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"},
              "spec": {"size": 1}}
        kubectl.ok("-n", NS, "create", "-f", "-", stdin=yaml.safe_dump(cr))
        resource = "gadgets.statusrules.example.com"  # other tests serve a `gadgets` too
        assert status_write_sticks(kubectl, resource, "g1", True, owner) == frozenset()
        remove(kubectl, resource, "g1", True)
    finally:
        kubectl("delete", "crd", "gadgets.statusrules.example.com", "--wait=false")


def test_a_status_write_never_changes_the_spec(kubectl, owner):
    kubectl.ok("-n", NS, "create", "deployment", "sr-spec", "--image=busybox:1.36", "--replicas=0")
    try:
        kubectl.ok("-n", NS, "patch", "deployment", "sr-spec", "--subresource=status", "--type=merge",
                   "-p", '{"spec":{"replicas":7}}')
        got = json.loads(kubectl.ok("-n", NS, "get", "deployment", "sr-spec", "-o", "json"))
        assert got["spec"]["replicas"] == 0 and got["metadata"]["generation"] == 1
    finally:
        kubectl("-n", NS, "delete", "deployment", "sr-spec", "--wait=false")
