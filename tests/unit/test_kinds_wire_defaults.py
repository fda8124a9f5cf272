"""Server-set fields kube-apiserver writes that clients read back: the Event fields each
version always serializes, a DaemonSet's template generation annotation, a node's podCIDRs,
a pod's deprecated serviceAccount, a StatefulSet's typed claim templates, and which kinds
count metadata.generation (checked against kube-apiserver 1.28's answers)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.kinds import DEFAULT
from kybernetes.api.kinds.workloads import TEMPLATE_GENERATION
from kybernetes.api.registry import Registry

REG = Registry()


def info_of(group: str, plural: str):
    info = REG.get(group, "v1", plural) or REG.get(group, "v2", plural)
    assert info is not None
    return info


def written(group: str, plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """`obj` after the server-set steps of a create (or of an update over `old`)."""
    info = info_of(group, plural)
    strategy = DEFAULT.for_info(info)
    if old is None:
        strategy.prepare_for_create(info, obj)
    strategy.default(info, obj)
    strategy.prepare_write(info, obj, old)
    return obj


def test_a_core_event_has_the_fields_v1_always_writes() -> None:
    ev = written("", "events", {"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod"},
                                "reason": "R", "message": "m"})
    assert ev["source"] == {} and ev["firstTimestamp"] is None and ev["lastTimestamp"] is None
    assert ev["eventTime"] is None and ev["reportingComponent"] == "" and ev["reportingInstance"] == ""
    assert "deprecatedSource" not in ev


def test_an_events_k8s_io_event_has_its_deprecated_fields_as_kube_apiserver_writes_them() -> None:
    ev = written("events.k8s.io", "events", {"metadata": {"name": "e", "namespace": "d"},
                                             "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {"kind": "Pod"}})
    assert ev["deprecatedSource"] == {} and ev["deprecatedFirstTimestamp"] is None
    assert ev["deprecatedLastTimestamp"] is None and "source" not in ev and "reportingComponent" not in ev


def test_a_daemonset_counts_template_generations_in_its_annotation() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    ds = written("apps", "daemonsets", {"metadata": {"name": "ds", "namespace": "d", "annotations": {"x": "y"}},
                                        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": template}})
    assert ds["metadata"]["annotations"] == {"x": "y", TEMPLATE_GENERATION: "1"}
    # A write that keeps the template keeps the count, whatever the client sent.
    same = {**ds, "metadata": {**ds["metadata"], "annotations": {TEMPLATE_GENERATION: "7"}}}
    assert written("apps", "daemonsets", same, ds)["metadata"]["annotations"][TEMPLATE_GENERATION] == "1"
    changed = {**ds, "spec": {**ds["spec"], "template": {**template, "metadata": {"labels": {"a": "b", "c": "d"}}}}}
    assert written("apps", "daemonsets", changed, ds)["metadata"]["annotations"][TEMPLATE_GENERATION] == "2"


def test_a_node_that_sets_pod_cidr_gets_pod_cidrs() -> None:
    node = written("", "nodes", {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.1.0/24"}})
    assert node["spec"]["podCIDRs"] == ["10.42.1.0/24"]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"serviceAccountName": "sa"}, ("sa", "sa")),
    ({"serviceAccount": "old"}, ("old", "old")),
    ({}, (None, None)),
])
def test_a_pod_shows_its_service_account_under_both_names(spec: dict[str, Any], expected: tuple) -> None:
    pod = written("", "pods", {"metadata": {"name": "p", "namespace": "d"},
                               "spec": {"containers": [{"name": "c", "image": "i"}], **spec}})
    assert (pod["spec"].get("serviceAccountName"), pod["spec"].get("serviceAccount")) == expected


def test_statefulset_claim_templates_are_typed_claims() -> None:
    sts = written("apps", "statefulsets", {"metadata": {"name": "s", "namespace": "d"}, "spec": {
        "selector": {}, "template": {}, "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {}}]}})
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert (claim["apiVersion"], claim["kind"]) == ("v1", "PersistentVolumeClaim")


@pytest.mark.parametrize(("group", "plural", "obj", "counts"), [
    ("discovery.k8s.io", "endpointslices", {"addressType": "IPv4"}, True),
    ("scheduling.k8s.io", "priorityclasses", {"value": 1}, True),
    ("", "services", {"spec": {}}, False),
    ("", "persistentvolumes", {"spec": {}}, False),
    ("", "persistentvolumeclaims", {"spec": {}}, False),
    ("", "nodes", {"spec": {}}, False),
    ("", "limitranges", {"spec": {}}, False),
    ("", "resourcequotas", {"spec": {}}, False),
    ("coordination.k8s.io", "leases", {"spec": {}}, False),
    ("autoscaling", "horizontalpodautoscalers", {"spec": {}}, False),
    ("storage.k8s.io", "csidrivers", {"spec": {}}, False),
    ("storage.k8s.io", "csinodes", {"spec": {}}, False),
    ("storage.k8s.io", "volumeattachments", {"spec": {}}, False),
    ("certificates.k8s.io", "certificatesigningrequests", {"spec": {}}, False),
    ("networking.k8s.io", "servicecidrs", {"spec": {}}, False),
    ("networking.k8s.io", "ipaddresses", {"spec": {}}, False),
    ("apiregistration.k8s.io", "apiservices", {"spec": {}}, False),
    ("resource.k8s.io", "resourceclaims", {"spec": {}}, False),
    ("networking.k8s.io", "ingressclasses", {"spec": {}}, True),
    ("", "podtemplates", {"template": {}}, True),
    ("apps", "deployments", {"spec": {}}, True),
    ("", "configmaps", {"data": {}}, False),
])
def test_which_kinds_count_generations(group: str, plural: str, obj: dict[str, Any], counts: bool) -> None:
    info = info_of(group, plural)
    assert DEFAULT.for_info(info).has_generation(info, obj) is counts


def test_a_priority_class_that_is_not_the_default_does_not_say_so() -> None:
    pc = written("scheduling.k8s.io", "priorityclasses", {"metadata": {"name": "p"}, "value": 1,
                                                          "globalDefault": False})
    assert "globalDefault" not in pc


@pytest.mark.parametrize(("given", "canonical"), [
    ("1Gi", "1Gi"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("0.1Ki", "102400m"), ("1023Ki", "1023Ki"),
    ("0.5", "500m"), (0.5, "500m"), (1, "1"), ("1000m", "1"), (2000, "2k"), ("10240", "10240"),
    ("129e6", "129e6"), ("1.5e3", "1500"), ("0", "0"), ("0.0001m", "100n"), ("1.0000000001", "1000000001n"),
    ("-0.5", "-500m"), ("12E", "12E"), ("bogus", None), (True, None),
])
def test_quantities_are_written_as_kube_apiserver_writes_them(given: Any, canonical: str | None) -> None:
    from kybernetes.api.validation import canonical_quantity

    assert canonical_quantity(given) == canonical


def test_a_pod_stores_canonical_quantities_without_touching_a_shared_subtree() -> None:
    from kybernetes.api.validation import canonicalize_quantities

    shared_volumes = [{"name": "v", "emptyDir": {"sizeLimit": "1024Mi"}}]
    pod: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1, "memory": "1024Mi"},
                                                                 "requests": {"cpu": 0.25}}}],
        "volumes": shared_volumes, "overhead": {"cpu": "0.1"}}}
    canonicalize_quantities(info_of("", "pods"), pod)
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"},
                                                        "requests": {"cpu": "250m"}}
    assert pod["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "1Gi" and pod["spec"]["overhead"] == {"cpu": "100m"}
    assert shared_volumes[0]["emptyDir"]["sizeLimit"] == "1024Mi"


def test_a_new_hpa_reads_current_metrics_as_null() -> None:
    hpa = written("autoscaling", "horizontalpodautoscalers", {"metadata": {"name": "h", "namespace": "d"},
                                                              "spec": {"maxReplicas": 2}})
    assert hpa["status"] == {"desiredReplicas": 0, "currentMetrics": None}
