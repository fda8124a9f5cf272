"""flowcontrol.apiserver.k8s.io, resource.k8s.io, apiregistration.k8s.io, networking.k8s.io
IPAddress/ServiceCIDR, core componentstatuses and bindings, and authorization
localsubjectaccessreviews, served by a real `kyb server`: discovery, the objects the
server keeps itself, CRUD through kubectl and the official Python client's typed APIs,
and refusals of bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

NS = "default"


def eventually(check: Callable[[], Any], timeout: float = 40.0, interval: float = 0.5) -> Any:
    """The first truthy result of `check`, retried until `timeout` (the server keeps its
    bootstrap objects every few seconds)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (ApiException, AssertionError) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {last!r}")


def _rows(kubectl: Any, *args: str) -> dict[str, list[str]]:
    out = kubectl.ok("get", *args)
    return {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}


# -- discovery ------------------------------------------------------------------------------


def test_api_resources_lists_every_new_resource(kubectl) -> None:
    out = kubectl.ok("api-resources")
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    expected = {
        "flowschemas": "flowcontrol.apiserver.k8s.io/v1", "prioritylevelconfigurations": "flowcontrol.apiserver.k8s.io/v1",
        "deviceclasses": "resource.k8s.io/v1", "resourceclaims": "resource.k8s.io/v1",
        "resourceclaimtemplates": "resource.k8s.io/v1", "resourceslices": "resource.k8s.io/v1",
        "ipaddresses": "networking.k8s.io/v1", "servicecidrs": "networking.k8s.io/v1",
        "apiservices": "apiregistration.k8s.io/v1", "localsubjectaccessreviews": "authorization.k8s.io/v1",
        "devicetaintrules": "resource.k8s.io/v1",
        "componentstatuses": "v1", "bindings": "v1",
    }
    for resource, gv in expected.items():
        assert resource in lines and gv in lines[resource].split(), resource
    assert lines["ipaddresses"].split()[1] == "ip" and lines["componentstatuses"].split()[1] == "cs"


def test_legacy_discovery_of_the_new_group_versions(kubectl) -> None:
    groups = {g["name"]: g for g in json.loads(kubectl.ok("get", "--raw", "/apis"))["groups"]}
    assert list(groups)[0] == "apiregistration.k8s.io"
    for name in ("flowcontrol.apiserver.k8s.io", "resource.k8s.io", "apiregistration.k8s.io"):
        assert groups[name]["preferredVersion"] == {"groupVersion": f"{name}/v1", "version": "v1"}
    fc = json.loads(kubectl.ok("get", "--raw", "/apis/flowcontrol.apiserver.k8s.io/v1"))
    names = {r["name"]: r for r in fc["resources"]}
    assert set(names) == {"flowschemas", "flowschemas/status", "prioritylevelconfigurations",
                          "prioritylevelconfigurations/status"}
    assert names["flowschemas"]["namespaced"] is False
    core = {r["name"]: r for r in json.loads(kubectl.ok("get", "--raw", "/api/v1"))["resources"]}
    assert core["bindings"] == {"name": "bindings", "singularName": "binding", "namespaced": True,
                                "kind": "Binding", "verbs": ["create"]}
    assert core["componentstatuses"]["verbs"] == ["get", "list"] and "storageVersionHash" not in \
        core["componentstatuses"]


# -- API Priority and Fairness ------------------------------------------------------------


def test_bootstrap_configuration_is_served_and_printed(kubectl) -> None:
    def schemas() -> dict[str, list[str]] | None:
        rows = _rows(kubectl, "flowschemas")
        return rows if {"exempt", "catch-all", "global-default", "probes"} <= set(rows) else None

    rows = eventually(schemas)
    assert rows["exempt"][1:4] == ["exempt", "1", "<none>"]
    assert rows["catch-all"][1:4] == ["catch-all", "10000", "ByUser"]
    eventually(lambda: _rows(kubectl, "flowschemas")["catch-all"][-1] == "False")  # MISSINGPL
    levels = eventually(lambda: (r := _rows(kubectl, "prioritylevelconfigurations")) and "workload-low" in r and r)
    assert levels["exempt"][1:6] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert levels["catch-all"][1:6] == ["Limited", "5", "<none>", "<none>", "<none>"]
    assert levels["global-default"][1:6] == ["Limited", "20", "128", "6", "50"]


def test_mandatory_objects_come_back_after_delete_and_edit(k8s_client) -> None:
    api = client.FlowcontrolApiserverV1Api(k8s_client)
    eventually(lambda: api.read_flow_schema("catch-all"))
    api.delete_flow_schema("catch-all")
    api.delete_priority_level_configuration("exempt")
    fs = eventually(lambda: api.read_flow_schema("catch-all"))
    assert fs.spec.matching_precedence == 10000 and fs.spec.priority_level_configuration.name == "catch-all"
    plc = eventually(lambda: api.read_priority_level_configuration("exempt"))
    assert plc.spec.type == "Exempt"
    # A mandatory object's spec is always put back; a suggested one's is left alone when its
    # owner opts out through the annotation. The round that restores catch-all has seen both.
    api.patch_priority_level_configuration("workload-low", {
        "metadata": {"annotations": {"apf.kubernetes.io/autoupdate-spec": "false"}},
        "spec": {"limited": {"nominalConcurrencyShares": 77}}})
    api.patch_priority_level_configuration("catch-all", {
        "metadata": {"annotations": {"apf.kubernetes.io/autoupdate-spec": "false"}},
        "spec": {"limited": {"nominalConcurrencyShares": 7}}})
    eventually(lambda: api.read_priority_level_configuration("catch-all").spec.limited.nominal_concurrency_shares == 5)
    assert api.read_priority_level_configuration("workload-low").spec.limited.nominal_concurrency_shares == 77


def test_custom_flow_schema_and_priority_level(k8s_client) -> None:
    api = client.FlowcontrolApiserverV1Api(k8s_client)
    plc = api.create_priority_level_configuration({
        "metadata": {"name": "e2e-testing-prioritylevel"},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1,
                                                 "limitResponse": {"type": "Reject"}}}})
    assert plc.spec.limited.lendable_percent == 0 and plc.metadata.uid
    fs = api.create_flow_schema({
        "metadata": {"name": "e2e-testing-flowschema"},
        "spec": {"matchingPrecedence": 1000, "priorityLevelConfiguration": {"name": "e2e-testing-prioritylevel"},
                 "distinguisherMethod": {"type": "ByUser"},
                 "rules": [{"subjects": [{"kind": "User", "user": {"name": "noxu"}}],
                            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}})
    dangling = api.create_flow_schema({
        "metadata": {"name": "e2e-dangling"},
        "spec": {"priorityLevelConfiguration": {"name": "no-such-level"},
                 "rules": [{"subjects": [{"kind": "Group", "group": {"name": "x"}}],
                            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}]}})
    assert dangling.spec.matching_precedence == 1000  # defaulted

    def condition(name: str) -> Any:
        status = api.read_flow_schema_status(name).status
        conds = [c for c in (status.conditions or []) if c.type == "Dangling"] if status else []
        return conds[0] if conds else None

    assert eventually(lambda: condition(fs.metadata.name)).status == "False"
    missing = eventually(lambda: condition("e2e-dangling"))
    assert missing.status == "True" and missing.reason == "NotFound"
    for name in ("e2e-testing-flowschema", "e2e-dangling"):
        api.delete_flow_schema(name)
    api.delete_priority_level_configuration("e2e-testing-prioritylevel")


def test_invalid_flowcontrol_objects_are_refused(kubectl) -> None:
    bad = """
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: e2e-bad-level}
spec:
  type: Limited
  limited:
    limitResponse: {type: Queue, queuing: {queues: 4, handSize: 8}}
"""
    r = kubectl("apply", "-f", "-", stdin=bad)
    assert r.returncode != 0 and "should not be greater than queues (4)" in r.stderr
    bad_fs = """
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: e2e-bad-fs}
spec:
  matchingPrecedence: 1
  priorityLevelConfiguration: {name: global-default}
"""
    r = kubectl("apply", "-f", "-", stdin=bad_fs)
    assert r.returncode != 0 and "only the schema named 'exempt' may have matchingPrecedence 1" in r.stderr
    assert kubectl("get", "flowschema", "e2e-bad-fs").returncode != 0


# -- ServiceCIDR and IPAddress ------------------------------------------------------------


def test_default_service_cidr_and_its_status(k8s_client, kubectl) -> None:
    api = client.NetworkingV1Api(k8s_client)
    cidr = eventually(lambda: api.read_service_cidr("kubernetes"))
    assert cidr.spec.cidrs == ["10.43.0.0/16"]
    status = eventually(lambda: api.read_service_cidr_status("kubernetes").status)
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.status == "True" and ready.message == "Kubernetes default Service CIDR is ready"
    assert _rows(kubectl, "servicecidrs")["kubernetes"][1] == "10.43.0.0/16"


def test_user_service_cidr_becomes_ready_and_is_immutable(k8s_client) -> None:
    api = client.NetworkingV1Api(k8s_client)
    api.create_service_cidr({"metadata": {"name": "e2e-test-svc-cidr"}, "spec": {"cidrs": ["203.0.113.0/24"]}})

    def ready() -> bool:
        conds = (api.read_service_cidr("e2e-test-svc-cidr").status or client.V1ServiceCIDRStatus()).conditions
        return any(c.type == "Ready" and c.status == "True" for c in conds or [])

    eventually(ready)
    with pytest.raises(ApiException) as e:
        api.patch_service_cidr("e2e-test-svc-cidr", {"spec": {"cidrs": ["198.51.100.0/24"]}})
    assert e.value.status == 422 and "field is immutable" in e.value.body
    with pytest.raises(ApiException) as e:
        api.create_service_cidr({"metadata": {"name": "e2e-bad"}, "spec": {"cidrs": ["203.0.113.7/24"]}})
    assert e.value.status == 422 and "canonical form" in e.value.body
    api.delete_service_cidr("e2e-test-svc-cidr")


def test_ip_address_api_operations(k8s_client, kubectl) -> None:
    """What conformance's "should support IPAddress API operations" does."""
    api = client.NetworkingV1Api(k8s_client)
    parent = {"group": "mygroup", "resource": "myresources", "namespace": "foo", "name": "bar"}
    created = api.create_ip_address({"metadata": {"name": "255.255.255.255", "labels": {"type": "broadcast"}},
                                     "spec": {"parentRef": parent}})
    api.create_ip_address({"metadata": {"name": "fe80::42:1dff:fe84:f9e2", "labels": {"type": "link-local"}},
                           "spec": {"parentRef": parent}})
    patched = api.patch_ip_address("255.255.255.255", {"metadata": {"annotations": {"patched": "true"}}})
    assert patched.metadata.annotations["patched"] == "true"
    assert int(patched.metadata.resource_version) > int(created.metadata.resource_version)
    current = api.read_ip_address("255.255.255.255")
    current.metadata.annotations["updated"] = "true"
    assert api.replace_ip_address("255.255.255.255", current).metadata.annotations["updated"] == "true"
    assert [i.metadata.name for i in api.list_ip_address(label_selector="type=broadcast").items] == [
        "255.255.255.255"]
    assert _rows(kubectl, "ipaddresses")["fe80::42:1dff:fe84:f9e2"][1] == "myresources.mygroup/foo/bar"
    api.delete_ip_address("255.255.255.255")
    api.delete_collection_ip_address(label_selector="type=link-local")
    assert api.list_ip_address(label_selector="type=link-local").items == []
    with pytest.raises(ApiException) as e:
        api.create_ip_address({"metadata": {"name": "10.0.0.010"}, "spec": {"parentRef": parent}})
    assert e.value.status == 422 and "must be a valid IP address" in e.value.body


def test_service_cluster_ips_appear_as_ip_addresses(k8s_client, kubectl) -> None:
    core, net = client.CoreV1Api(k8s_client), client.NetworkingV1Api(k8s_client)
    svc = core.create_namespaced_service(NS, {"metadata": {"name": "e2e-ipaddr"},
                                             "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}})
    ip = svc.spec.cluster_ip
    obj = eventually(lambda: net.read_ip_address(ip))
    ref = obj.spec.parent_ref
    assert (ref.resource, ref.namespace, ref.name) == ("services", NS, "e2e-ipaddr")
    assert obj.metadata.labels["ipaddress.kubernetes.io/managed-by"] == "ipallocator.k8s.io"
    assert _rows(kubectl, "ipaddresses")[ip][1] == f"services/{NS}/e2e-ipaddr"
    core.delete_namespaced_service("e2e-ipaddr", NS)

    def gone() -> bool:
        try:
            net.read_ip_address(ip)
        except ApiException as e:
            return e.status == 404
        return False

    eventually(gone)


# -- resource.k8s.io -------------------------------------------------------------------------

DRA = """
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: e2e-gpu.example.com}
spec:
  selectors: [{cel: {expression: 'device.driver == "gpu.example.com"'}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: e2e-claim, namespace: default}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: e2e-gpu.example.com}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: e2e-template, namespace: default}
spec:
  spec:
    devices:
      requests: [{name: gpu, exactly: {deviceClassName: e2e-gpu.example.com, allocationMode: All}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: e2e-node1-gpu}
spec:
  driver: gpu.example.com
  nodeName: e2e-node1
  pool: {name: e2e-node1, generation: 1, resourceSliceCount: 1}
  devices: [{name: gpu-0}, {name: gpu-1}]
---
apiVersion: resource.k8s.io/v1
kind: DeviceTaintRule
metadata: {name: e2e-broken-gpu}
spec:
  deviceSelector: {driver: gpu.example.com, pool: e2e-node1, device: gpu-1}
  taint: {key: example.com/broken, effect: NoSchedule}
"""


def test_dynamic_resource_allocation_kinds(kubectl, k8s_client) -> None:
    kubectl.ok("apply", "-f", "-", stdin=DRA)
    assert _rows(kubectl, "resourceclaims")["e2e-claim"][1] == "pending"
    assert _rows(kubectl, "resourceslices")["e2e-node1-gpu"][1:4] == ["e2e-node1", "gpu.example.com", "e2e-node1"]
    api = client.ResourceV1Api(k8s_client)
    claim = api.read_namespaced_resource_claim("e2e-claim", NS)
    exactly = claim.spec.devices.requests[0].exactly
    assert (exactly.allocation_mode, exactly.count) == ("ExactCount", 1)
    assert api.read_namespaced_resource_claim_template("e2e-template", NS).spec.spec.devices.requests[0] \
        .exactly.allocation_mode == "All"
    assert [d.name for d in api.read_resource_slice("e2e-node1-gpu").spec.devices] == ["gpu-0", "gpu-1"]
    assert api.read_device_class("e2e-gpu.example.com").spec.selectors[0].cel.expression
    rule = api.read_device_taint_rule("e2e-broken-gpu")
    assert rule.spec.taint.effect == "NoSchedule" and rule.spec.taint.time_added is not None
    # The status is a driver's to write, through /status.
    api.patch_namespaced_resource_claim_status("e2e-claim", NS, {"status": {"allocation": {"devices": {
        "results": [{"request": "gpu", "driver": "gpu.example.com", "pool": "e2e-node1", "device": "gpu-0"}]}}}})
    assert _rows(kubectl, "resourceclaims")["e2e-claim"][1] == "allocated"
    r = kubectl("patch", "resourceclaim", "e2e-claim", "--type=merge", "-p",
                '{"spec":{"devices":{"requests":[{"name":"gpu","exactly":{"deviceClassName":"other"}}]}}}')
    assert r.returncode != 0 and "field is immutable" in r.stderr
    r = kubectl("apply", "-f", "-", stdin="""
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: e2e-bad-slice}
spec: {driver: gpu.example.com, pool: {name: p, resourceSliceCount: 1}}
""")
    assert r.returncode != 0 and "exactly one of `nodeName`" in r.stderr
    kubectl.ok("delete", "-f", "-", stdin=DRA)


# -- APIServices ---------------------------------------------------------------------------


def test_local_api_services(kubectl, k8s_client) -> None:
    rows = eventually(lambda: (r := _rows(kubectl, "apiservices")) and "v1.resource.k8s.io" in r and r)
    for name in ("v1.", "v1.apps", "v2.autoscaling", "v1.flowcontrol.apiserver.k8s.io", "v1.apiregistration.k8s.io"):
        assert rows[name][1:3] == ["Local", "True"], name
    api = client.ApiregistrationV1Api(k8s_client)
    apps = api.read_api_service("v1.apps")
    assert (apps.spec.group, apps.spec.group_priority_minimum, apps.spec.version_priority) == ("apps", 17800, 15)
    available = next(c for c in apps.status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("True", "Local")


def test_custom_resource_group_gets_an_api_service(kubectl, k8s_client) -> None:
    crd = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gizmos.moregroups.example.com}
spec:
  group: moregroups.example.com
  scope: Namespaced
  names: {plural: gizmos, singular: gizmo, kind: Gizmo}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
"""
    kubectl.ok("apply", "-f", "-", stdin=crd)
    api = client.ApiregistrationV1Api(k8s_client)
    svc = eventually(lambda: api.read_api_service("v1.moregroups.example.com"))
    assert (svc.spec.group_priority_minimum, svc.spec.version_priority) == (1000, 100)
    kubectl.ok("delete", "crd", "gizmos.moregroups.example.com")

    def gone() -> bool:
        try:
            api.read_api_service("v1.moregroups.example.com")
        except ApiException as e:
            return e.status == 404
        return False

    eventually(gone)


# -- componentstatuses, bindings, localsubjectaccessreviews --------------------------------


def test_component_statuses(kubectl) -> None:
    def healthy() -> dict[str, list[str]] | None:
        rows = _rows(kubectl, "componentstatuses")
        return rows if all(rows.get(n, ["", ""])[1] == "Healthy"
                           for n in ("scheduler", "controller-manager", "etcd-0")) else None

    eventually(healthy, timeout=60)
    r = kubectl("get", "cs", "scheduler", "-o", "json")
    assert r.returncode == 0 and "v1 ComponentStatus is deprecated in v1.19+" in r.stderr
    assert json.loads(r.stdout)["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
    r = kubectl("delete", "cs", "scheduler")
    assert r.returncode != 0 and "MethodNotAllowed" in r.stderr


def test_bindings_collection_binds_a_pod(kubectl, k8s_client) -> None:
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_pod(NS, {"metadata": {"name": "e2e-bind-me"},
                                    "spec": {"schedulerName": "e2e-nobody", "containers": [
                                        {"name": "c", "image": "busybox"}]}})
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "e2e-bind-me"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "e2e-node1"}}
    resp = core.create_namespaced_binding(NS, binding, _preload_content=False)
    assert resp.status == 201
    assert core.read_namespaced_pod("e2e-bind-me", NS).spec.node_name == "e2e-node1"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_binding(NS, binding, _preload_content=False)
    assert e.value.status == 409 and "already assigned" in e.value.body
    with pytest.raises(ApiException) as e:
        core.create_namespaced_binding(NS, {**binding, "metadata": {}}, _preload_content=False)
    assert e.value.status == 422
    core.delete_namespaced_pod("e2e-bind-me", NS, grace_period_seconds=0)


def test_local_subject_access_review(k8s_client) -> None:
    api = client.AuthorizationV1Api(k8s_client)
    review = api.create_namespaced_local_subject_access_review(NS, {
        "spec": {"user": "jane", "resourceAttributes": {"namespace": NS, "verb": "get", "resource": "pods"}}})
    assert review.metadata.namespace == NS and isinstance(review.status.allowed, bool)
    with pytest.raises(ApiException) as e:
        api.create_namespaced_local_subject_access_review(NS, {
            "spec": {"user": "jane", "resourceAttributes": {"namespace": "kube-system", "verb": "get"}}})
    assert e.value.status == 422 and "must match metadata.namespace" in e.value.body


# -- protobuf request bodies ------------------------------------------------------------


def _post(server: Any, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    import ssl
    import urllib.error
    import urllib.request

    token = open(server.data_dir + "/pki/admin.token").read().strip()
    req = urllib.request.Request(server.url + path, data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ssl._create_unverified_context(), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


PROTOBUF_OBJECTS = [
    ("/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations", {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "e2e-pb-level"},
        "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 0, "limitResponse": {
            "type": "Queue", "queuing": {"queues": 16, "handSize": 4, "queueLengthLimit": 10}}}}}),
    ("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema", "metadata": {"name": "e2e-pb-fs"},
        "spec": {"priorityLevelConfiguration": {"name": "e2e-pb-level"}, "matchingPrecedence": 300,
                 "rules": [{"subjects": [{"kind": "ServiceAccount",
                                          "serviceAccount": {"namespace": "default", "name": "*"}}],
                            "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                               "namespaces": ["*"]}]}]}}),
    ("/apis/networking.k8s.io/v1/ipaddresses", {
        "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": {"name": "2001:db8::77"},
        "spec": {"parentRef": {"resource": "gateways", "group": "example.com", "name": "g"}}}),
    ("/apis/resource.k8s.io/v1/namespaces/default/resourceclaims", {
        "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
        "metadata": {"name": "e2e-pb-claim", "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.example.com"}}],
                             "config": [{"opaque": {"driver": "gpu.example.com",
                                                    "parameters": {"sharing": "TimeSlicing"}}}]}}}),
]


@pytest.mark.parametrize(("path", "obj"), PROTOBUF_OBJECTS, ids=lambda v: v["kind"] if isinstance(v, dict) else "")
def test_new_kinds_accept_protobuf_bodies(server, path: str, obj: dict[str, Any]) -> None:
    from kybernetes.api.protobuf import encode_k8s_protobuf

    status, created = _post(server, path, encode_k8s_protobuf(obj), "application/vnd.kubernetes.protobuf")
    assert status == 201, created
    assert created["metadata"]["name"] == obj["metadata"]["name"]
    for key in ("spec",):
        for field, value in obj[key].items():
            if field != "limited":
                assert created[key][field] == value or field == "devices", field
    if obj["kind"] == "PriorityLevelConfiguration":
        # A pointer field set to zero survives protobuf (it would be defaulted to 30 if lost).
        assert created["spec"]["limited"]["nominalConcurrencyShares"] == 0
    if obj["kind"] == "ResourceClaim":
        assert created["spec"]["devices"]["config"][0]["opaque"]["parameters"] == {"sharing": "TimeSlicing"}
        assert created["spec"]["devices"]["requests"][0]["exactly"]["count"] == 1
