"""Validation rules Kubernetes' conformance specs rely on: StatefulSet claim-template mounts,
ResourceQuota resource names, and CRD kind names (each was a wrong 422 before)."""

from __future__ import annotations

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import DEFAULT
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

REG = Registry()
STATEFULSETS = REG.get("apps", "v1", "statefulsets")
QUOTAS = REG.get("", "v1", "resourcequotas")
CRDS = REG.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")


def errors(info, obj: dict) -> list:
    strategy = DEFAULT.for_info(info)
    strategy.default(info, obj)
    return validate_with(strategy, info, obj, None)


def rejection(info, obj: dict) -> str:
    errs = errors(info, obj)
    assert errs, "expected the object to be rejected"
    return ApiError.invalid(info.group, info.kind, obj["metadata"]["name"], errs).message


# -- StatefulSet: a container may mount a volume its claim templates provide -----------------

def statefulset(mount: str, claims: list[str]) -> dict:
    return {"metadata": {"name": "db", "namespace": "default"},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "busybox",
                                                           "volumeMounts": [{"name": mount, "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [
                         {"metadata": {"name": c},
                          "spec": {"accessModes": ["ReadWriteOnce"],
                                   "resources": {"requests": {"storage": "1Gi"}}}} for c in claims]}}


def test_statefulset_mounting_its_claim_template_is_accepted():
    assert errors(STATEFULSETS, statefulset("data", ["data"])) == []


def test_statefulset_mounting_an_unknown_volume_is_still_refused():
    assert rejection(STATEFULSETS, statefulset("other", ["data"])) == (
        'StatefulSet.apps "db" is invalid: spec.template.spec.containers[0].volumeMounts[0].name: '
        'Not found: "other"')


# -- ResourceQuota: every name upstream accepts ----------------------------------------------

def quota(hard: dict) -> dict:
    return {"metadata": {"name": "q", "namespace": "default"}, "spec": {"hard": hard}}


@pytest.mark.parametrize("name,value", [
    ("requests.cpu", "500m"), ("limits.memory", "1Gi"), ("requests.storage", "10Gi"), ("configmaps", "10"),
    ("limits.cpu", "2"), ("count/deployments.apps", "3"), ("count/pods", "5"),
    ("gold.storageclass.storage.k8s.io/requests.storage", "5Gi"), ("requests.nvidia.com/gpu", "4"),
    ("services.loadbalancers", "1"), ("services.nodeports", "2"), ("persistentvolumeclaims", "4"),
    ("pods", "10"), ("secrets", "3"), ("resourcequotas", "1"), ("replicationcontrollers", "2"),
    ("cpu", "1"), ("memory", "1Gi"), ("ephemeral-storage", "1Gi"), ("limits.ephemeral-storage", "2Gi"),
    ("requests.hugepages-2Mi", "1Gi"),
])
def test_resourcequota_accepts_every_name_kubernetes_accepts(name: str, value: str):
    assert errors(QUOTAS, quota({name: value})) == []


def test_resourcequota_refuses_an_unknown_name_with_both_upstream_messages():
    assert rejection(QUOTAS, quota({"widgets": "1"})) == (
        'ResourceQuota "q" is invalid: [spec.hard[widgets]: Invalid value: "widgets": '
        'must be a standard resource type or fully qualified, spec.hard[widgets]: Invalid value: "widgets": '
        'must be a standard resource for quota]')


def test_resourcequota_refuses_a_known_resource_quota_cannot_track():
    assert rejection(QUOTAS, quota({"storage": "1Gi"})) == (
        'ResourceQuota "q" is invalid: spec.hard[storage]: Invalid value: "storage": '
        'must be a standard resource for quota')


@pytest.mark.parametrize("name", ["configmaps", "count/deployments.apps", "nvidia.com/gpu"])
def test_resourcequota_counts_must_be_whole_numbers(name: str):
    assert rejection(QUOTAS, quota({name: "500m"})).endswith(f"spec.hard[{name}]: Invalid value: 500m: "
                                                              "must be an integer")


def test_resourcequota_compute_resources_may_be_fractional():
    assert errors(QUOTAS, quota({"requests.cpu": "500m", "limits.cpu": "1500m"})) == []


# -- CRD names.kind / listKind: a DNS-1035 label once lower-cased ----------------------------

def crd(kind: str, list_kind: str | None = None) -> dict:
    names = {"kind": kind, "plural": "widgets"}
    if list_kind is not None:
        names["listKind"] = list_kind
    return {"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": names,
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


@pytest.mark.parametrize("kind", ["Widget", "e2e-test-crd-publish-openapi-986-crd", "my-Widget2"])
def test_crd_kind_in_mixed_case_with_dashes_is_accepted(kind: str):
    assert errors(CRDS, crd(kind)) == []


def test_crd_kind_starting_with_a_digit_is_refused_with_upstreams_message():
    # singular and listKind default from the kind, so upstream reports them too; the kind's own text:
    assert (
        'spec.names.kind: Invalid value: "9Widget": may have mixed case, but should otherwise match: a DNS-1035 label must '
        "consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end "
        "with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')") in rejection(CRDS, crd("9Widget"))


def test_crd_list_kind_is_checked_the_same_way():
    message = rejection(CRDS, crd("Widget", "Widget_List"))
    assert 'spec.names.listKind: Invalid value: "Widget_List": may have mixed case' in message
