"""Rules of flowcontrol.apiserver.k8s.io, resource.k8s.io, apiregistration.k8s.io,
networking.k8s.io IPAddress/ServiceCIDR and core ComponentStatus/Binding, as pure
functions and through the registry and discovery."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kybernetes.api import validation
from kybernetes.api.kinds import DEFAULT, apiregistration, componentstatus, flowcontrol, resource, servicecidr
from kybernetes.api.registry import Registry
from kybernetes.apiserver import discovery

SAMPLES = "/work/shared/compat/samples"
REGISTRY = Registry()
NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def _errors(group: str, plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    info = REGISTRY.get(group, "v1", plural)
    assert info is not None
    obj = copy.deepcopy(obj)
    DEFAULT.for_info(info).default(info, obj)
    return [f"{e.field}: {e.message()}" for e in validation.validate(info, obj, old)]


# -- flowcontrol ---------------------------------------------------------------------------

FC = flowcontrol.GROUP


@pytest.mark.parametrize("obj", flowcontrol.mandatory_flow_schemas() + flowcontrol.suggested_flow_schemas())
def test_bootstrap_flow_schemas_are_valid(obj: dict[str, Any]) -> None:
    assert _errors(FC, "flowschemas", obj) == []


@pytest.mark.parametrize("obj", flowcontrol.mandatory_priority_levels() + flowcontrol.suggested_priority_levels())
def test_bootstrap_priority_levels_are_valid_and_already_defaulted(obj: dict[str, Any]) -> None:
    assert _errors(FC, "prioritylevelconfigurations", obj) == []
    defaulted = copy.deepcopy(obj)
    flowcontrol.default_priority_level(defaulted)
    # The server compares stored specs with these: defaulting must not change them.
    assert defaulted == obj


def _fs(name: str, precedence: int | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"priorityLevelConfiguration": {"name": "global-default"},
                            "rules": [{"subjects": [{"kind": "User", "user": {"name": "noxu"}}],
                                       "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}], **spec}
    if precedence is not None:
        body["matchingPrecedence"] = precedence
    return {"metadata": {"name": name}, "spec": body}


def test_flow_schema_defaults_precedence_and_checks_its_range() -> None:
    obj = _fs("mine")
    flowcontrol.default_flow_schema(obj)
    assert obj["spec"]["matchingPrecedence"] == 1000
    assert _errors(FC, "flowschemas", _fs("mine", 10001)) == [
        "spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000"]
    assert _errors(FC, "flowschemas", _fs("mine", 1)) == [
        "spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1"]


def test_flow_schema_rules_need_subjects_and_rules() -> None:
    obj = _fs("mine", 500)
    obj["spec"]["rules"] = [{"subjects": [{"kind": "User"}]}]
    errs = _errors(FC, "flowschemas", obj)
    assert "spec.rules[0].subjects[0].user: Required value: user is required when subject kind is 'User'" in errs
    assert any("at least one of resourceRules and nonResourceRules" in e for e in errs)
    obj["spec"]["rules"] = [{"subjects": [{"kind": "Robot"}], "resourceRules": [{"verbs": ["get"]}]}]
    errs = _errors(FC, "flowschemas", obj)
    assert any(e.startswith("spec.rules[0].subjects[0].kind: Unsupported value") for e in errs)
    assert any(e.startswith("spec.rules[0].resourceRules[0].namespaces: Required value") for e in errs)


def _plc(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": spec}


def test_priority_level_type_and_queuing_rules() -> None:
    assert _errors(FC, "prioritylevelconfigurations", _plc("mine", {"type": "Exempt"})) == [
        "spec.type: Invalid value: \"Exempt\": type must be 'Exempt' if and only if name is 'exempt'"]
    queued = {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 4,
                                                                                            "handSize": 8}}}}
    assert _errors(FC, "prioritylevelconfigurations", _plc("mine", queued)) == [
        "spec.limited.limitResponse.queuing.handSize: Invalid value: 8: should not be greater than queues (4)"]
    missing = {"type": "Limited", "limited": {"limitResponse": {"type": "Queue"}}}
    assert _errors(FC, "prioritylevelconfigurations", _plc("mine", missing)) == [
        "spec.limited.limitResponse.queuing: Required value: must not be empty if limitResponse.type is Queue"]


def test_priority_level_defaults_as_upstream_v1() -> None:
    obj = _plc("mine", {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {}}}})
    flowcontrol.default_priority_level(obj)
    assert obj["spec"]["limited"] == {"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {
        "type": "Queue", "queuing": {"queues": 64, "handSize": 8, "queueLengthLimit": 50}}}


def test_flowcontrol_columns() -> None:
    fs = flowcontrol.mandatory_flow_schemas()[0]
    fs["metadata"]["creationTimestamp"] = "2026-12-06T07:00:00Z"
    assert flowcontrol.flow_schema_cells(fs, NOW) == ["exempt", "exempt", 1, "<none>", "60m", "?"]
    fs["status"] = {"conditions": [flowcontrol.dangling_condition(fs, True, "2026-12-06T07:00:00Z")]}
    assert flowcontrol.flow_schema_cells(fs, NOW)[-1] == "False"
    catch_all, exempt = flowcontrol.mandatory_priority_levels()[1], flowcontrol.mandatory_priority_levels()[0]
    assert flowcontrol.priority_level_cells(catch_all, NOW)[:6] == [
        "catch-all", "Limited", 5, "<none>", "<none>", "<none>"]
    assert flowcontrol.priority_level_cells(exempt, NOW)[:3] == ["exempt", "Exempt", "<none>"]


def test_mandatory_objects_always_get_their_spec_back() -> None:
    desired = flowcontrol.mandatory_priority_levels()[1]
    edited = copy.deepcopy(desired)
    edited["spec"]["limited"]["nominalConcurrencyShares"] = 50
    edited["metadata"]["annotations"][flowcontrol.AUTOUPDATE_ANNOTATION] = "false"
    revised = flowcontrol.bootstrap_revision(edited, desired, mandatory=True)
    assert revised is not None and revised["spec"] == desired["spec"]
    assert revised["metadata"]["annotations"][flowcontrol.AUTOUPDATE_ANNOTATION] == "true"
    assert flowcontrol.bootstrap_revision(copy.deepcopy(desired), desired, mandatory=True) is None


def test_exempt_level_keeps_the_shares_its_owner_set() -> None:
    desired = flowcontrol.mandatory_priority_levels()[0]
    edited = copy.deepcopy(desired)
    edited["spec"]["exempt"]["nominalConcurrencyShares"] = 10
    assert flowcontrol.bootstrap_revision(edited, desired, mandatory=True) is None


def test_suggested_objects_follow_the_autoupdate_annotation() -> None:
    desired = flowcontrol.suggested_priority_levels()[0]
    edited = copy.deepcopy(desired)
    edited["spec"]["limited"]["nominalConcurrencyShares"] = 77
    assert flowcontrol.bootstrap_revision(edited, desired, mandatory=False)["spec"] == desired["spec"]
    edited["metadata"]["annotations"][flowcontrol.AUTOUPDATE_ANNOTATION] = "false"
    assert flowcontrol.bootstrap_revision(edited, desired, mandatory=False) is None
    # Without the annotation, an object someone changed (generation > 1) is theirs.
    del edited["metadata"]["annotations"]
    edited["metadata"]["generation"] = 2
    kept = flowcontrol.bootstrap_revision(edited, desired, mandatory=False)
    assert kept is not None and kept["spec"]["limited"]["nominalConcurrencyShares"] == 77
    assert kept["metadata"]["annotations"] == {flowcontrol.AUTOUPDATE_ANNOTATION: "false"}


def test_dangling_condition_names_the_missing_level() -> None:
    fs = flowcontrol.mandatory_flow_schemas()[1]
    cond = flowcontrol.dangling_condition(fs, False, "t")
    assert (cond["status"], cond["reason"]) == ("True", "NotFound") and '"catch-all"' in cond["message"]


# -- networking: ServiceCIDR and IPAddress ---------------------------------------------------

NET = servicecidr.GROUP


def _ip(ip: str, **ref: Any) -> dict[str, Any]:
    return {"metadata": {"name": ip}, "spec": {"parentRef": ref}}


def test_ip_address_names_must_be_canonical_addresses() -> None:
    ref = {"group": "mygroup", "resource": "myresources", "namespace": "foo", "name": "bar"}
    assert _errors(NET, "ipaddresses", _ip("fe80::42:1dff:fe84:f9e2", **ref)) == []
    assert _errors(NET, "ipaddresses", _ip("255.255.255.255", **ref)) == []
    assert _errors(NET, "ipaddresses", _ip("fe80:0::1", **ref)) == [
        'metadata.name: Invalid value: "fe80:0::1": must be in canonical form ("fe80::1")']
    assert _errors(NET, "ipaddresses", _ip("not-an-ip", **ref)) == [
        'metadata.name: Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)']
    assert _errors(NET, "ipaddresses", _ip("10.0.0.1", resource="services")) == [
        "spec.parentRef.name: Required value"]
    assert _errors(NET, "ipaddresses", {"metadata": {"name": "10.0.0.1"}, "spec": {}}) == [
        "spec.parentRef: Required value"]


def test_ip_address_parent_is_immutable_and_printed_like_kubectl() -> None:
    old = _ip("10.0.0.1", resource="services", namespace="default", name="kubernetes")
    new = _ip("10.0.0.1", resource="services", namespace="default", name="other")
    assert any(e.startswith("spec.parentRef: Invalid value") for e in _errors(NET, "ipaddresses", new, old))
    assert servicecidr.parent_ref_text(old) == "services/default/kubernetes"
    assert servicecidr.parent_ref_text(_ip("10.0.0.1", group="g.io", resource="Things", name="x")) == "things.g.io/x"


def _cidr(*cidrs: str) -> dict[str, Any]:
    return {"metadata": {"name": "c"}, "spec": {"cidrs": list(cidrs)}}


def test_service_cidr_validation() -> None:
    assert _errors(NET, "servicecidrs", _cidr("203.0.113.0/24")) == []
    assert _errors(NET, "servicecidrs", _cidr("10.0.0.0/8", "fd00::/108")) == []
    assert _errors(NET, "servicecidrs", _cidr()) == ["spec.cidrs: Required value: at least one CIDR required"]
    assert _errors(NET, "servicecidrs", _cidr("10.0.0.1/8")) == [
        'spec.cidrs[0]: Invalid value: "10.0.0.1/8": must be in canonical form ("10.0.0.0/8")']
    assert any("no more than one IP for each IP family" in e
               for e in _errors(NET, "servicecidrs", _cidr("10.0.0.0/8", "192.168.0.0/16")))


def test_service_cidr_ranges_are_immutable_but_may_become_dual_stack() -> None:
    old = _cidr("10.0.0.0/8")
    assert _errors(NET, "servicecidrs", _cidr("10.0.0.0/8", "fd00::/108"), old) == []
    assert any("field is immutable" in e for e in _errors(NET, "servicecidrs", _cidr("10.1.0.0/16"), old))


def test_default_service_cidr_is_ready() -> None:
    obj = servicecidr.default_service_cidr(["10.43.0.0/16"], "t")
    assert obj["metadata"]["name"] == "kubernetes" and obj["spec"]["cidrs"] == ["10.43.0.0/16"]
    (cond,) = obj["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["message"]) == ("Ready", "True",
                                                               "Kubernetes default Service CIDR is ready")


def test_service_cluster_ips_are_mirrored_as_ip_addresses() -> None:
    services = [
        {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"clusterIP": "10.43.0.10",
                                                                     "clusterIPs": ["10.43.0.10", "fd00::a"]}},
        {"metadata": {"name": "headless", "namespace": "shop"}, "spec": {"clusterIP": "None"}},
        {"metadata": {"name": "ext", "namespace": "shop"}, "spec": {"type": "ExternalName"}},
    ]
    desired = servicecidr.service_ip_addresses(services)
    assert sorted(desired) == ["10.43.0.10", "fd00::a"]
    web = desired["10.43.0.10"]
    assert web["spec"]["parentRef"] == {"group": "", "resource": "services", "namespace": "shop", "name": "web"}
    assert web["metadata"]["labels"] == {"ipaddress.kubernetes.io/ip-family": "IPv4",
                                         "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io"}
    assert desired["fd00::a"]["metadata"]["labels"]["ipaddress.kubernetes.io/ip-family"] == "IPv6"
    assert _errors(NET, "ipaddresses", web) == []
    moved = copy.deepcopy(web)
    moved["spec"]["parentRef"]["name"] = "old-web"
    users = {"metadata": {"name": "10.43.0.99"}, "spec": {"parentRef": {"resource": "things", "name": "x"}}}
    existing = {"10.43.0.10": moved, "10.43.0.11": copy.deepcopy(web), "10.43.0.99": users}
    assert sorted(servicecidr.stale_ip_addresses(existing, desired)) == ["10.43.0.10", "10.43.0.11"]


# -- resource.k8s.io -------------------------------------------------------------------------

RES = resource.GROUP


def _claim(*requests: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": "default"}, "spec": {"devices": {"requests": list(requests)}}}


def test_claim_requests_are_defaulted_and_validated() -> None:
    obj = _claim({"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}})
    resource.default_claim_spec(obj["spec"])
    assert obj["spec"]["devices"]["requests"][0]["exactly"] == {
        "deviceClassName": "gpu.example.com", "allocationMode": "ExactCount", "count": 1}
    assert _errors(RES, "resourceclaims", obj) == []
    errs = _errors(RES, "resourceclaims", _claim({"name": "gpu"}, {"name": "gpu", "exactly": {}}))
    assert "spec.devices.requests[0]: Invalid value: \"\": exactly one of `exactly` or `firstAvailable` is " \
           "required" in errs
    assert 'spec.devices.requests[1].name: Duplicate value: "gpu"' in errs
    assert "spec.devices.requests[1].exactly.deviceClassName: Required value" in errs


def test_claim_spec_is_immutable_and_state_column() -> None:
    old = _claim({"name": "gpu", "exactly": {"deviceClassName": "a"}})
    new = _claim({"name": "gpu", "exactly": {"deviceClassName": "b"}})
    assert any(e.startswith("spec: Invalid value") and "immutable" in e
               for e in _errors(RES, "resourceclaims", new, old))
    assert resource.claim_state(old) == "pending"
    old["status"] = {"allocation": {}, "reservedFor": [{"resource": "pods", "name": "p", "uid": "1"}]}
    assert resource.claim_state(old) == "allocated,reserved"


def test_resource_slice_needs_exactly_one_node_selection() -> None:
    slice_ = {"metadata": {"name": "s"}, "spec": {"driver": "gpu.example.com", "nodeName": "n1", "allNodes": True,
                                                  "pool": {"name": "p", "resourceSliceCount": 1},
                                                  "devices": [{"name": "gpu-0"}, {"name": "gpu-0"}]}}
    errs = _errors(RES, "resourceslices", slice_)
    assert any("exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection`" in e for e in errs)
    assert 'spec.devices[1].name: Duplicate value: "gpu-0"' in errs
    del slice_["spec"]["allNodes"]
    slice_["spec"]["devices"] = [{"name": "gpu-0"}]
    assert _errors(RES, "resourceslices", slice_) == []


def test_device_taint_rules_need_a_taint_and_get_its_time() -> None:
    rule = {"metadata": {"name": "r"}, "spec": {"deviceSelector": {"driver": "gpu.example.com", "device": "gpu-0"},
                                                "taint": {"key": "example.com/broken", "effect": "NoExecute"}}}
    assert _errors(RES, "devicetaintrules", rule) == []
    resource.stamp_taint_time(rule, "2026-12-06T08:00:00Z")
    assert rule["spec"]["taint"]["timeAdded"] == "2026-12-06T08:00:00Z"
    bad = {"metadata": {"name": "r"}, "spec": {"taint": {"key": "bad key", "effect": "PreferNoSchedule"}}}
    errs = _errors(RES, "devicetaintrules", bad)
    assert any(e.startswith('spec.taint.key: Invalid value: "bad key"') for e in errs)
    assert any(e.startswith('spec.taint.effect: Unsupported value: "PreferNoSchedule"') for e in errs)
    assert _errors(RES, "devicetaintrules", {"metadata": {"name": "r"}, "spec": {}}) == ["spec.taint: Required value"]


# -- apiregistration -------------------------------------------------------------------------


def test_local_api_services_carry_upstream_priorities() -> None:
    core = apiregistration.local_api_service("", "v1", "t")
    assert core["metadata"]["name"] == "v1." and "group" not in core["spec"]
    assert core["spec"] == {"version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}
    apps = apiregistration.local_api_service("apps", "v1", "t")
    assert apps["spec"] == {"group": "apps", "version": "v1", "groupPriorityMinimum": 17800, "versionPriority": 15}
    assert apps["metadata"]["labels"] == {apiregistration.AUTOMANAGED_LABEL: "onstart"}
    custom = apiregistration.local_api_service("example.com", "v1", "t", custom=True)
    assert (custom["spec"]["groupPriorityMinimum"], custom["spec"]["versionPriority"]) == (1000, 100)
    for svc in (core, apps, custom):
        assert _errors("apiregistration.k8s.io", "apiservices", svc) == []
    assert apiregistration.service_text(apps) == "Local" and apiregistration.available_text(apps) == "True"


def test_api_service_validation() -> None:
    bad = {"metadata": {"name": "v1.wrong"}, "spec": {"group": "apps", "version": "v1", "groupPriorityMinimum": 0,
                                                      "versionPriority": 15,
                                                      "service": {"namespace": "ns", "name": "svc"}}}
    errs = _errors("apiregistration.k8s.io", "apiservices", bad)
    assert 'metadata.name: Invalid value: "v1.wrong": must be `spec.version+"."+spec.group`: "v1.apps"' in errs
    assert "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000" in errs
    assert apiregistration.service_text(bad) == "ns/svc"


# -- ComponentStatus and Binding -------------------------------------------------------------


class _Reader:
    def __init__(self, leases: dict[str, dict[str, Any]], store_ok: bool = True) -> None:
        self.leases = leases
        self.ok = store_ok

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.leases.get(name)

    def store_healthy(self) -> bool:
        return self.ok


def _lease(renewed: datetime) -> dict[str, Any]:
    return {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                     "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def test_component_statuses_follow_the_leader_leases() -> None:
    reader = _Reader({"kube-scheduler": _lease(NOW - timedelta(seconds=3)),
                      "kube-controller-manager": _lease(NOW - timedelta(seconds=120))})
    statuses = componentstatus.component_statuses(reader, NOW)
    assert [s["metadata"]["name"] for s in statuses] == ["controller-manager", "scheduler", "etcd-0"]
    strategy = componentstatus.ComponentStatusStrategy()
    cells = {s["metadata"]["name"]: strategy.cells(s, NOW) for s in statuses}
    assert cells["scheduler"] == ["scheduler", "Healthy", "ok", ""]
    assert cells["controller-manager"][1] == "Unhealthy" and "120s" in cells["controller-manager"][3]
    assert cells["etcd-0"][1] == "Healthy"
    missing = componentstatus.component_statuses(_Reader({}, store_ok=False), NOW)
    assert all(s["conditions"][0]["status"] == "False" for s in missing)


def _sample_resources(name: str) -> dict[str, dict[str, Any]]:
    path = os.path.join(SAMPLES, name)
    if not os.path.exists(path):
        pytest.skip("compat samples not present")
    with open(path) as f:
        return {r["name"]: r for r in json.load(f)["resources"]}


def test_core_discovery_lists_bindings_and_componentstatuses_as_the_real_server() -> None:
    sample = _sample_resources("legacy-api-v1.json")
    ours = {r["name"]: r for r in discovery.api_resource_list(REGISTRY, "", "v1")["resources"]}
    for name in ("bindings", "componentstatuses"):
        assert ours[name] == sample[name], name


def test_bindings_post_as_the_pod_binding_subresource() -> None:
    info = REGISTRY.get("", "v1", "bindings")
    assert info is not None and info.verbs == ("create",) and info.extra["posts_as"] == ("pods", "binding")
    lsar = REGISTRY.get("authorization.k8s.io", "v1", "localsubjectaccessreviews")
    assert lsar is not None and lsar.namespaced and lsar.verbs == ("create",)


# -- protobuf request bodies ------------------------------------------------------------------


def _protobuf_examples() -> list[dict[str, Any]]:
    now = "2026-12-06T08:00:00Z"
    examples = flowcontrol.mandatory_flow_schemas() + flowcontrol.suggested_flow_schemas()
    examples += flowcontrol.mandatory_priority_levels() + flowcontrol.suggested_priority_levels()
    fs = copy.deepcopy(examples[0])
    fs["status"] = {"conditions": [flowcontrol.dangling_condition(fs, True, now)]}
    examples.append(fs)
    examples.append(apiregistration.local_api_service("apps", "v1", now))
    examples.append({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                     "metadata": {"name": "v1beta1.metrics.k8s.io"},
                     "spec": {"service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
                              "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                              "groupPriorityMinimum": 100, "versionPriority": 100}})
    examples.append(servicecidr.default_service_cidr(["10.43.0.0/16", "fd00:43::/108"], now))
    examples.append({"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                     "metadata": {"name": "10.43.0.1"},
                     "spec": {"parentRef": {"resource": "services", "namespace": "default", "name": "kubernetes"}}})
    examples.append({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": "gpu-claim", "namespace": "default"},
        "spec": {"devices": {
            "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com", "allocationMode": "ExactCount",
                                                     "count": 2, "selectors": [{"cel": {"expression": "true"}}]}}],
            "config": [{"requests": ["gpu"], "opaque": {"driver": "gpu.example.com",
                                                        "parameters": {"kind": "GpuConfig", "sharing": "TimeSlicing"}}}]}},
        "status": {"allocation": {"devices": {"results": [
            {"request": "gpu", "driver": "gpu.example.com", "pool": "node1", "device": "gpu-0"}]}},
            "reservedFor": [{"resource": "pods", "name": "p", "uid": "0b3c"}]}})
    examples.append({
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice", "metadata": {"name": "node1-gpu"},
        "spec": {"driver": "gpu.example.com", "nodeName": "node1",
                 "pool": {"name": "node1", "generation": 1, "resourceSliceCount": 1},
                 "devices": [{"name": "gpu-0", "attributes": {"model": {"string": "T4"}, "cores": {"int": 2560}},
                              "capacity": {"memory": {"value": "16Gi"}}}]}})
    examples.append({
        "apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu.example.com"},
        "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.example.com"'}}]}})
    return examples


@pytest.mark.parametrize("obj", _protobuf_examples(), ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_new_kinds_survive_protobuf(obj: dict[str, Any]) -> None:
    from kybernetes.api.protobuf import decode_k8s_protobuf, encode_k8s_protobuf

    body = encode_k8s_protobuf(obj)
    assert decode_k8s_protobuf(body) == obj
