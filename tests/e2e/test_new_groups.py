"""admissionregistration.k8s.io, node.k8s.io and the CSI storage kinds served by a real
`kyb server`: discovery through kubectl, apply, printed columns, explain, and the
official Python client's typed APIs."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

MANIFESTS = """
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: e2e-gvisor}
handler: runsc
overhead: {podFixed: {cpu: 250m}}
---
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: e2e.csi.example.com}
spec: {podInfoOnMount: true}
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: e2e-node}
spec:
  drivers: [{name: e2e.csi.example.com, nodeID: e2e-node}]
---
apiVersion: storage.k8s.io/v1
kind: VolumeAttachment
metadata: {name: e2e-va}
spec: {attacher: e2e.csi.example.com, nodeName: e2e-node, source: {persistentVolumeName: e2e-pv}}
---
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata: {name: e2e-cap, namespace: default}
storageClassName: fast
capacity: 10Gi
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: e2e-vwc}
webhooks:
- name: check.e2e.example.com
  clientConfig: {url: "https://hooks.example.com/check"}
  sideEffects: None
  admissionReviewVersions: [v1]
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: e2e-mwc}
webhooks:
- name: mutate.e2e.example.com
  clientConfig: {service: {namespace: default, name: hook}}
  sideEffects: None
  admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: e2e-vap}
spec:
  matchConstraints:
    resourceRules: [{operations: [CREATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments]}]
  validations: [{expression: "object.spec.replicas <= 5"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: e2e-vapb}
spec: {policyName: e2e-vap, validationActions: [Deny]}
"""

NEW_RESOURCES = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
                 "validatingadmissionpolicybindings", "runtimeclasses", "csidrivers", "csinodes",
                 "volumeattachments", "csistoragecapacities", "volumeattributesclasses", "mutatingadmissionpolicies",
                 "mutatingadmissionpolicybindings")


@pytest.fixture(scope="module")
def applied(kubectl):
    kubectl.ok("apply", "-f", "-", stdin=MANIFESTS)
    yield
    kubectl("delete", "-f", "-", "--ignore-not-found", stdin=MANIFESTS)


def test_api_resources_lists_the_new_kinds(kubectl):
    out = kubectl.ok("api-resources", "--no-headers")
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(NEW_RESOURCES) <= names
    groups = kubectl.ok("api-versions")
    for gv in ("admissionregistration.k8s.io/v1", "node.k8s.io/v1", "storage.k8s.io/v1"):
        assert gv in groups.split()


def test_get_prints_the_kubectl_columns(kubectl, applied):
    out = kubectl.ok("get", "runtimeclass", "e2e-gvisor")
    assert out.split("\n")[0].split() == ["NAME", "HANDLER", "AGE"]
    assert out.split("\n")[1].split()[:2] == ["e2e-gvisor", "runsc"]
    out = kubectl.ok("get", "csidriver", "e2e.csi.example.com")
    assert out.split("\n")[0].split() == ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY",
                                          "TOKENREQUESTS", "REQUIRESREPUBLISH", "MODES", "AGE"]
    assert out.split("\n")[1].split()[:7] == ["e2e.csi.example.com", "true", "true", "false", "<unset>", "false",
                                              "Persistent"]
    out = kubectl.ok("get", "volumeattachment", "e2e-va")
    assert out.split("\n")[0].split() == ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]
    assert out.split("\n")[1].split()[:5] == ["e2e-va", "e2e.csi.example.com", "e2e-pv", "e2e-node", "false"]
    out = kubectl.ok("get", "validatingwebhookconfiguration", "e2e-vwc")
    assert out.split("\n")[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert out.split("\n")[1].split()[:2] == ["e2e-vwc", "1"]
    out = kubectl.ok("get", "csinode", "e2e-node")
    assert out.split("\n")[1].split()[:2] == ["e2e-node", "1"]
    out = kubectl.ok("get", "csistoragecapacities", "-n", "default", "e2e-cap")
    assert out.split("\n")[1].split()[:3] == ["e2e-cap", "fast", "10Gi"]


def test_applied_objects_carry_server_defaults(kubectl, applied):
    policy = kubectl.ok("get", "mutatingwebhookconfiguration", "e2e-mwc",
                        "-o", "jsonpath={.webhooks[0].failurePolicy} {.webhooks[0].timeoutSeconds} "
                              "{.webhooks[0].reinvocationPolicy} {.webhooks[0].clientConfig.service.port}")
    assert policy.split() == ["Fail", "10", "Never", "443"]


def test_bad_runtime_class_is_rejected_and_handler_immutable(kubectl, applied):
    r = kubectl("create", "-f", "-", stdin="apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
                                           "metadata: {name: e2e-bad}\nhandler: Not_A_Label\n")
    assert r.returncode != 0 and "handler" in r.stderr
    r = kubectl("patch", "runtimeclass", "e2e-gvisor", "--type=merge", "-p", '{"handler":"kata"}')
    assert r.returncode != 0 and "immutable" in r.stderr


def test_explain_runtimeclass(kubectl):
    out = kubectl.ok("explain", "runtimeclass")
    assert "RuntimeClass" in out and "handler" in out


def test_typed_python_clients(k8s_client):
    node_api = client.NodeV1Api(k8s_client)
    node_api.create_runtime_class({"metadata": {"name": "py-rc"}, "handler": "runc"})
    assert node_api.read_runtime_class("py-rc").handler == "runc"
    assert "py-rc" in [rc.metadata.name for rc in node_api.list_runtime_class().items]
    node_api.delete_runtime_class("py-rc")

    storage = client.StorageV1Api(k8s_client)
    storage.create_csi_driver({"metadata": {"name": "py.csi.example.com"}, "spec": {}})
    assert storage.read_csi_driver("py.csi.example.com").spec.attach_required is True
    storage.create_namespaced_csi_storage_capacity(
        "default", {"metadata": {"name": "py-cap"}, "storageClassName": "fast", "capacity": "1Gi"})
    assert storage.read_namespaced_csi_storage_capacity("py-cap", "default").capacity == "1Gi"
    va = storage.create_volume_attachment({"metadata": {"name": "py-va"}, "spec": {
        "attacher": "py.csi.example.com", "nodeName": "n1", "source": {"persistentVolumeName": "pv1"}}})
    assert va.spec.node_name == "n1"
    status = storage.patch_volume_attachment_status("py-va", {"status": {"attached": True}})
    assert status.status.attached is True
    assert "py-va" in [v.metadata.name for v in storage.list_volume_attachment().items]
    storage.delete_volume_attachment("py-va")
    storage.delete_namespaced_csi_storage_capacity("py-cap", "default")
    storage.delete_csi_driver("py.csi.example.com")
    storage.create_volume_attributes_class({"metadata": {"name": "py-vac"}, "driverName": "py.csi.example.com"})
    assert storage.delete_volume_attributes_class("py-vac").driver_name == "py.csi.example.com"

    adm = client.AdmissionregistrationV1Api(k8s_client)
    adm.create_validating_webhook_configuration({"metadata": {"name": "py-vwc"}, "webhooks": [{
        "name": "py.hooks.example.com", "clientConfig": {"url": "https://hooks.example.com/"},
        "sideEffects": "None", "admissionReviewVersions": ["v1"]}]})
    got = adm.read_validating_webhook_configuration("py-vwc")
    assert got.webhooks[0].failure_policy == "Fail" and got.webhooks[0].match_policy == "Equivalent"
    adm.create_validating_admission_policy_binding(
        {"metadata": {"name": "py-vapb"}, "spec": {"policyName": "missing", "validationActions": ["Warn"]}})
    assert [b.metadata.name for b in adm.list_validating_admission_policy_binding().items].count("py-vapb") == 1
    adm.delete_validating_admission_policy_binding("py-vapb")
    adm.delete_validating_webhook_configuration("py-vwc")
    with pytest.raises(ApiException) as e:
        adm.read_validating_webhook_configuration("py-vwc")
    assert e.value.status == 404
