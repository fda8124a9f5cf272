"""Strategies of the admissionregistration, node.k8s.io and CSI storage kinds without a
server: defaults, validation, immutable fields and Table rows."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from kybernetes.api.kinds import new_strategies
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

REG = Registry()
STRATEGIES = new_strategies()
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ADM = "admissionregistration.k8s.io"


def info(group: str, plural: str):
    found = REG.get(group, "v1", plural)
    assert found is not None, plural
    return found


def check(group: str, plural: str, obj: dict, old: dict | None = None) -> list[str]:
    i = info(group, plural)
    s = STRATEGIES.for_info(i)
    s.default(i, obj)
    return [f"{e.field}: {e.message()}" for e in validate_with(s, i, obj, old)]


def row(group: str, plural: str, obj: dict) -> list:
    i = info(group, plural)
    obj.setdefault("metadata", {}).setdefault("creationTimestamp", "2025-12-31T23:59:00Z")
    return STRATEGIES.for_info(i).row_cells(i, obj, NOW)


def webhook(**extra) -> dict:
    hook = {"name": "check.example.com", "clientConfig": {"service": {"namespace": "default", "name": "hook"}},
            "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}
    hook.update(extra)
    return hook


def test_webhook_configurations_get_upstream_defaults():
    obj = {"metadata": {"name": "m"}, "webhooks": [webhook()]}
    assert check(ADM, "mutatingwebhookconfigurations", obj) == []
    hook = obj["webhooks"][0]
    assert hook["failurePolicy"] == "Fail" and hook["matchPolicy"] == "Equivalent"
    assert hook["timeoutSeconds"] == 10 and hook["reinvocationPolicy"] == "Never"
    assert hook["namespaceSelector"] == {} and hook["objectSelector"] == {}
    assert hook["rules"][0]["scope"] == "*" and hook["clientConfig"]["service"]["port"] == 443
    validating = {"metadata": {"name": "v"}, "webhooks": [webhook()]}
    assert check(ADM, "validatingwebhookconfigurations", validating) == []
    assert "reinvocationPolicy" not in validating["webhooks"][0]


def test_webhooks_need_side_effects_review_versions_and_a_three_part_name():
    hook = webhook(name="short", timeoutSeconds=31)
    del hook["sideEffects"], hook["admissionReviewVersions"]
    errs = check(ADM, "validatingwebhookconfigurations", {"metadata": {"name": "v"}, "webhooks": [hook]})
    assert any(e.startswith("webhooks[0].sideEffects: Required value") for e in errs)
    assert any(e.startswith("webhooks[0].admissionReviewVersions: Required value") for e in errs)
    assert any(e.startswith("webhooks[0].name: Invalid value") for e in errs)
    assert any(e.startswith("webhooks[0].timeoutSeconds: Invalid value") for e in errs)


def test_webhook_needs_exactly_one_of_url_and_service_and_known_operations():
    hook = webhook(clientConfig={}, rules=[{"operations": ["READ"], "apiGroups": [""], "apiVersions": ["v1"],
                                            "resources": ["pods"], "scope": "Global"}])
    errs = check(ADM, "validatingwebhookconfigurations", {"metadata": {"name": "v"}, "webhooks": [hook]})
    assert any(e.startswith("webhooks[0].clientConfig: Required value") for e in errs)
    assert any(e.startswith("webhooks[0].rules[0].operations[0]: Unsupported value") for e in errs)
    assert any(e.startswith("webhooks[0].rules[0].scope: Unsupported value") for e in errs)
    assert row(ADM, "validatingwebhookconfigurations", {"metadata": {"name": "v"}, "webhooks": [hook, hook]})[:2] \
        == ["v", 2]


def test_validating_admission_policy_defaults_and_requires_validations():
    policy = {"metadata": {"name": "p"}, "spec": {
        "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": ["apps"],
                                                "apiVersions": ["v1"], "resources": ["deployments"]}]},
        "validations": [{"expression": "object.spec.replicas <= 5"}]}}
    assert check(ADM, "validatingadmissionpolicies", policy) == []
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["matchPolicy"] == "Equivalent"
    assert row(ADM, "validatingadmissionpolicies", policy)[:3] == ["p", 1, "<unset>"]
    errs = check(ADM, "validatingadmissionpolicies", {"metadata": {"name": "q"}, "spec": {}})
    assert any(e.startswith("spec.validations: Required value") for e in errs)
    assert any(e.startswith("spec.matchConstraints: Required value") for e in errs)


def test_policy_binding_needs_policy_and_known_actions():
    ok = {"metadata": {"name": "b"}, "spec": {"policyName": "p", "validationActions": ["Deny"]}}
    assert check(ADM, "validatingadmissionpolicybindings", ok) == []
    assert row(ADM, "validatingadmissionpolicybindings", ok)[:3] == ["b", "p", "<unset>"]
    errs = check(ADM, "validatingadmissionpolicybindings",
                 {"metadata": {"name": "b"}, "spec": {"validationActions": ["Block"]}})
    assert any(e.startswith("spec.policyName: Required value") for e in errs)
    assert any(e.startswith("spec.validationActions[0]: Unsupported value") for e in errs)


def test_runtime_class_handler_is_a_required_immutable_dns_label():
    rc = {"metadata": {"name": "gvisor"}, "handler": "runsc",
          "overhead": {"podFixed": {"cpu": "250m", "memory": "64Mi"}},
          "scheduling": {"nodeSelector": {"sandbox": "true"}}}
    assert check("node.k8s.io", "runtimeclasses", rc) == []
    assert row("node.k8s.io", "runtimeclasses", rc)[:2] == ["gvisor", "runsc"]
    assert any(e.startswith("handler: Required value")
               for e in check("node.k8s.io", "runtimeclasses", {"metadata": {"name": "x"}}))
    assert any(e.startswith("handler: Invalid value")
               for e in check("node.k8s.io", "runtimeclasses", {"metadata": {"name": "x"}, "handler": "Run_SC"}))
    changed = copy.deepcopy(rc)
    changed["handler"] = "kata"
    assert any("field is immutable" in e for e in check("node.k8s.io", "runtimeclasses", changed, rc))
    bad_overhead = {"metadata": {"name": "x"}, "handler": "runc", "overhead": {"podFixed": {"cpu": "lots"}}}
    assert any(e.startswith("overhead.podFixed[cpu]") for e in check("node.k8s.io", "runtimeclasses", bad_overhead))


def test_csi_driver_defaults_row_and_immutable_attach_required():
    driver = {"metadata": {"name": "csi.example.com"}, "spec": {"tokenRequests": [{"audience": "vault"}]}}
    assert check("storage.k8s.io", "csidrivers", driver) == []
    spec = driver["spec"]
    assert spec["attachRequired"] is True and spec["podInfoOnMount"] is False
    assert spec["fsGroupPolicy"] == "ReadWriteOnceWithFSType" and spec["volumeLifecycleModes"] == ["Persistent"]
    assert row("storage.k8s.io", "csidrivers", driver)[:7] == [
        "csi.example.com", True, False, False, "vault", False, "Persistent"]
    changed = copy.deepcopy(driver)
    changed["spec"]["attachRequired"] = False
    assert any(e.startswith("spec.attachRequired") for e in check("storage.k8s.io", "csidrivers", changed, driver))
    bad = {"metadata": {"name": "csi.example.com"}, "spec": {"volumeLifecycleModes": ["Forever"]}}
    assert any(e.startswith("spec.volumeLifecycleModes[0]: Unsupported")
               for e in check("storage.k8s.io", "csidrivers", bad))


def test_csi_node_and_capacity_validation():
    node = {"metadata": {"name": "n1"}, "spec": {"drivers": [{"name": "csi.example.com", "nodeID": "n1"},
                                                               {"name": "csi.example.com"}]}}
    errs = check("storage.k8s.io", "csinodes", node)
    assert any(e.startswith("spec.drivers[1].name: Duplicate") for e in errs)
    assert any(e.startswith("spec.drivers[1].nodeID: Required") for e in errs)
    assert row("storage.k8s.io", "csinodes", node)[:2] == ["n1", 2]
    cap = {"metadata": {"name": "c", "namespace": "default"}, "storageClassName": "fast", "capacity": "10Gi"}
    assert check("storage.k8s.io", "csistoragecapacities", cap) == []
    assert row("storage.k8s.io", "csistoragecapacities", cap)[:3] == ["c", "fast", "10Gi"]
    errs = check("storage.k8s.io", "csistoragecapacities",
                 {"metadata": {"name": "c", "namespace": "default"}, "capacity": "-1Gi"})
    assert any(e.startswith("storageClassName: Required") for e in errs)
    assert any(e.startswith("capacity: Invalid value") for e in errs)


def test_volume_attachment_needs_one_source_and_keeps_its_spec():
    va = {"metadata": {"name": "va"}, "spec": {"attacher": "csi.example.com", "nodeName": "n1",
                                               "source": {"persistentVolumeName": "pv1"}}}
    assert check("storage.k8s.io", "volumeattachments", va) == []
    va["status"] = {"attached": True}
    assert row("storage.k8s.io", "volumeattachments", va)[:5] == ["va", "csi.example.com", "pv1", "n1", True]
    errs = check("storage.k8s.io", "volumeattachments", {"metadata": {"name": "va"}, "spec": {"source": {}}})
    assert any(e.startswith("spec.attacher: Required") for e in errs)
    assert any(e.startswith("spec.nodeName: Required") for e in errs)
    assert any(e.startswith("spec.source: Required") for e in errs)
    moved = copy.deepcopy(va)
    moved["spec"]["nodeName"] = "n2"
    assert any("field is immutable" in e for e in check("storage.k8s.io", "volumeattachments", moved, va))


def test_mutating_admission_policy_needs_typed_mutations():
    policy = {"metadata": {"name": "m"}, "spec": {
        "matchConstraints": {"resourceRules": [{"operations": ["CREATE"], "apiGroups": [""],
                                                "apiVersions": ["v1"], "resources": ["pods"]}]},
        "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": "[]"}}]}}
    assert check(ADM, "mutatingadmissionpolicies", policy) == []
    assert policy["spec"]["reinvocationPolicy"] == "Never" and policy["spec"]["failurePolicy"] == "Fail"
    assert row(ADM, "mutatingadmissionpolicies", policy)[:3] == ["m", 1, "<unset>"]
    errs = check(ADM, "mutatingadmissionpolicies", {"metadata": {"name": "m"}, "spec": {
        "mutations": [{"patchType": "Merge"}]}})
    assert any(e.startswith("spec.mutations[0].patchType: Unsupported") for e in errs)
    assert any(e.startswith("spec.matchConstraints: Required") for e in errs)


def test_volume_attributes_class_driver_and_parameters_are_fixed():
    vac = {"metadata": {"name": "gold"}, "driverName": "csi.example.com", "parameters": {"iops": "5000"}}
    assert check("storage.k8s.io", "volumeattributesclasses", vac) == []
    assert row("storage.k8s.io", "volumeattributesclasses", vac)[:2] == ["gold", "csi.example.com"]
    assert any(e.startswith("driverName: Required")
               for e in check("storage.k8s.io", "volumeattributesclasses", {"metadata": {"name": "x"}}))
    changed = copy.deepcopy(vac)
    changed["parameters"] = {"iops": "9000"}
    assert any(e.startswith("parameters: Forbidden")
               for e in check("storage.k8s.io", "volumeattributesclasses", changed, vac))
