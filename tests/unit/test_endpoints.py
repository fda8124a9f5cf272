"""Endpoints and EndpointSlice decisions, from plain object snapshots."""

from __future__ import annotations

import copy

from kybernetes.api.labels import SKIP_MIRROR_LABEL
from kybernetes.controllers.endpoints import (
    HEADLESS_LABEL,
    OVER_CAPACITY_ANNOTATION,
    TRIGGER_TIME_ANNOTATION,
    compute_subsets,
    find_port,
    plan_endpoints,
    pods_selected,
    services_for_pod,
    truncate_subsets,
)
from kybernetes.controllers.endpointslice import (
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    SliceTracker,
    plan_slices,
    slice_service_key,
)
from kybernetes.testing import fakes


def svc(name="web", selector=None, ports=None, cluster_ip="10.43.0.10", labels=None, publish=False, uid="svc-uid",
        families=None):
    spec = {"selector": {"app": "web"} if selector is None else selector,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
            "clusterIP": cluster_ip}
    if publish:
        spec["publishNotReadyAddresses"] = True
    if families:
        spec["ipFamilies"] = families
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "labels": labels or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z"}, "spec": spec}


def pod(name, ip="10.42.0.5", ready=True, labels=None, node="n1", ports=None, deleting=False, phase="Running",
        ready_at="2026-01-02T00:00:00Z", ns="default", hostname=None, subdomain=None):
    naming = {k: v for k, v in (("hostname", hostname), ("subdomain", subdomain)) if v}
    return fakes.pod(name, ns, labels={"app": "web"} if labels is None else labels, node=node, phase=phase,
                     ready=ready, ready_since=ready_at, ip=ip, deleting=deleting, ports=ports,
                     created="2026-01-01T12:00:00Z", **naming)


# -- shared helpers --------------------------------------------------------------------------

def test_find_port_by_number_and_by_name_with_matching_protocol():
    p = pod("a", ports=[{"name": "web", "containerPort": 9000}, {"name": "dns", "containerPort": 53,
                                                                   "protocol": "UDP"}])
    assert find_port(p, {"port": 80, "targetPort": 8080}) == 8080
    assert find_port(p, {"port": 80, "targetPort": "web"}) == 9000
    assert find_port(p, {"port": 80}) == 80
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(p, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None
    assert find_port(p, {"port": 80, "targetPort": "missing"}) is None


def test_find_port_looks_into_sidecar_init_containers_only():
    p = pod("a")
    p["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always", "ports": [{"name": "m", "containerPort": 7}]},
                                   {"name": "init", "ports": [{"name": "i", "containerPort": 8}]}]
    assert find_port(p, {"port": 1, "targetPort": "m"}) == 7
    assert find_port(p, {"port": 1, "targetPort": "i"}) is None


def test_pods_selected_and_services_for_pod_respect_namespace_and_selector():
    s = svc()
    pods = [pod("a"), pod("b", labels={"app": "other"}), pod("c", ns="other")]
    assert [p["metadata"]["name"] for p in pods_selected(s, pods)] == ["a"]
    assert pods_selected(svc(selector={}), pods) == []
    assert services_for_pod([s, svc("nosel", selector={})], pods[0]) == ["default/web"]


# -- Endpoints ---------------------------------------------------------------------------------

def test_ready_and_not_ready_addresses_with_target_ref_and_node():
    subsets, truncated = compute_subsets(svc(), [pod("a", "10.42.0.7"), pod("b", "10.42.0.6", ready=False),
                                                 pod("c", ip=None), pod("d", "10.42.0.9", phase="Succeeded")])
    assert not truncated
    assert subsets == [{
        "addresses": [{"ip": "10.42.0.7", "nodeName": "n1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"}}],
        "notReadyAddresses": [{"ip": "10.42.0.6", "nodeName": "n1",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }]


def test_terminating_pods_leave_endpoints_unless_not_ready_addresses_are_published():
    pods = [pod("a", "10.42.0.1", deleting=True), pod("b", "10.42.0.2", ready=False)]
    subsets, _ = compute_subsets(svc(), pods)
    assert [a["ip"] for a in subsets[0].get("addresses", [])] == []
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.42.0.2"]
    subsets, _ = compute_subsets(svc(publish=True), pods)
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.42.0.1", "10.42.0.2"]
    assert "notReadyAddresses" not in subsets[0]


def test_named_target_port_groups_pods_by_resolved_port_and_keeps_app_protocol():
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": "web", "appProtocol": "http"}])
    pods = [pod("a", "10.42.0.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.42.0.2", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.42.0.3", ports=[{"name": "web", "containerPort": 8080}]),
            pod("d", "10.42.0.4", ports=[{"name": "other", "containerPort": 1}])]
    subsets, _ = compute_subsets(s, pods)
    by_port = {sub["ports"][0]["port"]: [a["ip"] for a in sub["addresses"]] for sub in subsets}
    assert by_port == {8080: ["10.42.0.1", "10.42.0.3"], 9090: ["10.42.0.2"]}
    assert subsets[0]["ports"][0] == {"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}


def test_multi_port_service_lists_both_ports_per_address():
    s = svc(ports=[{"name": "http", "port": 80, "targetPort": 8080}, {"name": "m", "port": 9, "targetPort": 9100}])
    subsets, _ = compute_subsets(s, [pod("a")])
    assert [p["port"] for p in subsets[0]["ports"]] == [8080, 9100]


def test_headless_service_without_ports_lists_addresses_and_hostnames():
    s = svc(ports=[], cluster_ip="None")
    subsets, _ = compute_subsets(s, [pod("a", hostname="a-0", subdomain="web")])
    assert subsets == [{"addresses": [{"ip": "10.42.0.5", "nodeName": "n1", "hostname": "a-0",
                                       "targetRef": {"kind": "Pod", "namespace": "default", "name": "a",
                                                     "uid": "uid-a"}}]}]
    # A Service with a cluster IP and no ports has nothing to offer.
    assert compute_subsets(svc(ports=[]), [pod("a")]) == ([], False)


def test_truncate_keeps_ready_addresses_first():
    subsets = [{"addresses": [{"ip": f"r{i}"} for i in range(3)], "notReadyAddresses": [{"ip": "n"}]},
               {"addresses": [{"ip": "x"}]}]
    out, truncated = truncate_subsets(subsets, 4)
    assert truncated
    assert [a["ip"] for s in out for a in s.get("addresses", [])] == ["r0", "r1", "r2", "x"]
    assert all("notReadyAddresses" not in s for s in out)


def test_plan_endpoints_creates_then_is_quiet_until_something_changes():
    s = svc(labels={"team": "a"}, cluster_ip="None")
    pods = [pod("a", "10.42.0.1"), pod("b", "10.42.0.2", ready_at="2026-01-05T00:00:00Z")]
    first = plan_endpoints(s, pods, None)
    assert first["metadata"]["name"] == "web" and first["metadata"]["namespace"] == "default"
    assert first["metadata"]["labels"] == {"team": "a", HEADLESS_LABEL: "", SKIP_MIRROR_LABEL: "true"}
    assert first["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] == "2026-01-05T00:00:00Z"
    stored = copy.deepcopy(first)
    stored["metadata"]["resourceVersion"] = "7"
    # Same inputs in another order: nothing to write.
    assert plan_endpoints(s, list(reversed(pods)), stored) is None
    pods[1]["status"]["conditions"][0]["status"] = "False"
    second = plan_endpoints(s, pods, stored)
    assert second["metadata"]["resourceVersion"] == "7"
    assert [a["ip"] for a in second["subsets"][0]["notReadyAddresses"]] == ["10.42.0.2"]
    # A label change on the Service alone is written too.
    unchanged = [pod("a", "10.42.0.1"), pod("b", "10.42.0.2", ready_at="2026-01-05T00:00:00Z")]
    relabelled = plan_endpoints(svc(labels={"team": "b"}, cluster_ip="None"), unchanged, stored)
    assert relabelled["metadata"]["labels"] == {"team": "b", HEADLESS_LABEL: "", SKIP_MIRROR_LABEL: "true"}


def test_plan_endpoints_with_no_pods_writes_no_subsets_and_marks_over_capacity():
    out = plan_endpoints(svc(), [], None)
    assert "subsets" not in out
    many = [pod(f"p{i}", f"10.42.{i // 250}.{i % 250}") for i in range(1001)]
    big = plan_endpoints(svc(), many, None)
    assert big["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] == "truncated"
    assert sum(len(s["addresses"]) for s in big["subsets"]) == 1000


# -- EndpointSlices ----------------------------------------------------------------------------

def stored(slices, start=0):
    out = []
    for i, s in enumerate(slices, start):
        s = copy.deepcopy(s)
        s["metadata"]["name"] = f"{s['metadata']['generateName']}{i:05d}"
        s["metadata"]["resourceVersion"] = str(10 + i)
        out.append(s)
    return out


def test_slice_shape_conditions_zone_and_owner():
    s = svc(labels={"team": "a"})
    pods = [pod("a", "10.42.0.1"), pod("b", "10.42.0.2", ready=False, node="n2"),
            pod("c", "10.42.0.3", deleting=True)]
    nodes = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}},
             "n2": {"metadata": {"name": "n2"}}}
    plan = plan_slices(s, pods, nodes, [])
    assert not plan.update and not plan.delete and len(plan.create) == 1
    sl = plan.create[0]
    assert sl["apiVersion"] == "discovery.k8s.io/v1" and sl["addressType"] == "IPv4"
    assert sl["metadata"]["generateName"] == "web-"
    assert sl["metadata"]["labels"] == {"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME}
    assert sl["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                  "uid": "svc-uid", "controller": True, "blockOwnerDeletion": True}]
    assert sl["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = {e["targetRef"]["name"]: e for e in sl["endpoints"]}
    assert eps["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert eps["a"]["zone"] == "z1" and eps["a"]["nodeName"] == "n1" and eps["a"]["addresses"] == ["10.42.0.1"]
    assert "zone" not in eps["b"]
    assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert eps["c"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert TRIGGER_TIME_ANNOTATION in sl["metadata"]["annotations"]


def test_publish_not_ready_makes_every_endpoint_ready_and_headless_gets_label():
    plan = plan_slices(svc(publish=True, cluster_ip="None"), [pod("b", ready=False)], {}, [])
    assert plan.create[0]["endpoints"][0]["conditions"]["ready"] is True
    assert plan.create[0]["metadata"]["labels"][HEADLESS_LABEL] == ""


def test_no_endpoints_keeps_one_placeholder_slice():
    plan = plan_slices(svc(), [], {}, [])
    assert len(plan.create) == 1
    assert plan.create[0]["endpoints"] == [] and "ports" not in plan.create[0]
    placeholder = stored(plan.create)
    assert plan_slices(svc(), [], {}, placeholder).empty
    # Once there are endpoints the placeholder goes away.
    plan = plan_slices(svc(), [pod("a")], {}, placeholder)
    assert len(plan.create) == 1 and plan.delete == placeholder


def test_at_most_100_endpoints_per_slice_and_steady_state_is_quiet():
    pods = [pod(f"p{i}", f"10.42.{i // 200}.{i % 200}") for i in range(250)]
    plan = plan_slices(svc(), pods, {}, [])
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    existing = stored(plan.create)
    assert plan_slices(svc(), list(reversed(pods)), {}, existing).empty


def test_changes_update_only_the_slice_holding_the_endpoint():
    pods = [pod(f"p{i}", f"10.42.0.{i}") for i in range(150)]
    existing = stored(plan_slices(svc(), pods, {}, []).create)
    holder = next(s for s in existing if any(e["targetRef"]["name"] == "p3" for e in s["endpoints"]))
    pods[3]["status"]["conditions"][0]["status"] = "False"
    plan = plan_slices(svc(), pods, {}, existing)
    assert not plan.create and not plan.delete
    assert [u["metadata"]["name"] for u in plan.update] == [holder["metadata"]["name"]]
    assert plan.update[0]["metadata"]["resourceVersion"] == holder["metadata"]["resourceVersion"]
    p3 = next(e for e in plan.update[0]["endpoints"] if e["targetRef"]["name"] == "p3")
    assert p3["conditions"]["ready"] is False


def test_new_pods_fill_a_slice_with_room_and_removed_pods_shrink_or_delete_slices():
    pods = [pod(f"p{i}", f"10.42.0.{i}") for i in range(120)]
    existing = stored(plan_slices(svc(), pods, {}, []).create)
    small = next(s for s in existing if len(s["endpoints"]) == 20)
    plan = plan_slices(svc(), [*pods, pod("new", "10.42.1.1")], {}, existing)
    assert not plan.create and [u["metadata"]["name"] for u in plan.update] == [small["metadata"]["name"]]
    assert len(plan.update[0]["endpoints"]) == 21
    # Removing every pod of the small slice deletes it and touches nothing else.
    gone = {e["targetRef"]["name"] for e in small["endpoints"]}
    plan = plan_slices(svc(), [p for p in pods if p["metadata"]["name"] not in gone], {}, existing)
    assert plan.delete == [small] and not plan.update and not plan.create


def test_port_change_replaces_slices_and_duplicates_are_collapsed():
    pods = [pod("a", "10.42.0.1")]
    existing = stored(plan_slices(svc(), pods, {}, []).create)
    plan = plan_slices(svc(ports=[{"name": "http", "port": 80, "targetPort": 9999}]), pods, {}, existing)
    assert plan.delete == existing and len(plan.create) == 1
    assert plan.create[0]["ports"][0]["port"] == 9999
    # The same endpoint in two slices (a lost race) ends up in one.
    dup = existing + stored(plan_slices(svc(), pods, {}, []).create, start=1)
    plan = plan_slices(svc(), pods, {}, dup)
    assert plan.delete == [dup[1]] and not plan.create and not plan.update


def test_service_label_change_updates_slice_labels():
    existing = stored(plan_slices(svc(), [pod("a")], {}, []).create)
    plan = plan_slices(svc(labels={"tier": "front"}), [pod("a")], {}, existing)
    assert plan.update[0]["metadata"]["labels"]["tier"] == "front"


def test_dual_stack_service_gets_a_slice_per_family():
    p = pod("a")
    p["status"]["podIPs"] = [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}]
    plan = plan_slices(svc(families=["IPv4", "IPv6"]), [p], {}, [])
    assert sorted((s["addressType"], s["endpoints"][0]["addresses"][0]) for s in plan.create) == [
        ("IPv4", "10.42.0.5"), ("IPv6", "fd00::5")]
    existing = stored(plan.create)
    plan = plan_slices(svc(families=["IPv4"]), [p], {}, existing)
    assert [s["addressType"] for s in plan.delete] == ["IPv6"]


def test_slice_service_key_only_for_our_slices():
    s = stored(plan_slices(svc(), [pod("a")], {}, []).create)[0]
    assert slice_service_key(s) == "default/web"
    s["metadata"]["labels"][MANAGED_BY_LABEL] = "someone-else"
    assert slice_service_key(s) is None


def test_slice_tracker_reports_stale_until_the_cache_catches_up():
    t = SliceTracker()
    t.created("ns/web", "web-abc")
    assert t.stale("ns/web", {})
    assert not t.stale("ns/web", {"web-abc": {"metadata": {"resourceVersion": "5"}}})
    t.updated("ns/web", "web-abc", "9")
    assert t.stale("ns/web", {"web-abc": {"metadata": {"resourceVersion": "5"}}})
    assert not t.stale("ns/web", {"web-abc": {"metadata": {"resourceVersion": "9"}}})
    t.deleted("ns/web", "web-abc")
    assert t.stale("ns/web", {"web-abc": {"metadata": {"resourceVersion": "9"}}})
    assert not t.stale("ns/web", {})
