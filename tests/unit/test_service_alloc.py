"""Service cluster IP and node port allocation: the decisions of `servicealloc`, and the
store-backed allocator of `serviceips` on a real SQLite store (two allocators sharing
one store stand for two API servers)."""

from __future__ import annotations

import copy
import random

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.apiserver import servicealloc as sa
from kybernetes.apiserver import systemservices as ss
from kybernetes.apiserver.serviceips import IP_PREFIX, PORT_PREFIX, ServiceAllocator
from kybernetes.apiserver.watchcache import WatchCache
from kybernetes.storage.sqlite import SQLiteStore

NET = sa.service_network()


def svc(spec: dict, name: str = "web", uid: str = "u1") -> dict:
    return {"metadata": {"name": name, "namespace": "d", "uid": uid}, "spec": spec}


def message(errs: list) -> str:
    return ApiError.invalid("", "Service", "web", errs).message


# -- the service network ------------------------------------------------------------------------


def test_defaults_follow_k3s():
    assert str(NET.cidr) == "10.43.0.0/16"
    assert str(NET.first_ip) == "10.43.0.1"
    assert str(NET.dns_ip) == "10.43.0.10"
    assert NET.port_range_text == "30000-32767"
    assert NET.ip_size == 65534
    # kube-apiserver's static bands: min(max(16, size/16), 256) and min(max(16, size/32), 128)
    assert NET.ip_static_band == 256 and NET.port_static_band == 86


def test_usable_addresses_exclude_network_and_broadcast():
    assert NET.ip_offset("10.43.0.0") is None
    assert NET.ip_offset("10.43.255.255") is None
    assert NET.ip_offset("10.43.0.1") == 0
    assert NET.ip_offset("10.43.255.254") == 65533
    assert NET.ip_offset("10.44.0.1") is None
    assert NET.ip_offset("not-an-ip") is None


@pytest.mark.parametrize(("cidr", "ports", "dns", "why"), [
    ("fd00::/108", "30000-32767", None, "only IPv4"),
    ("10.0.0.0/8", "30000-32767", None, "too large"),
    ("10.43.0.1/16", "30000-32767", None, "invalid service CIDR"),
    ("10.43.0.0/16", "32767-30000", None, "LOW <= HIGH"),
    ("10.43.0.0/16", "abc", None, "expected LOW-HIGH"),
    ("10.43.0.0/16", "30000-32767", "10.44.0.10", "not a usable address"),
    ("10.43.0.0/16", "30000-32767", "10.43.0.1", "belongs to the kubernetes Service"),
])
def test_bad_settings_say_what_is_wrong(cidr, ports, dns, why):
    with pytest.raises(ValueError, match=why):
        sa.service_network(cidr, ports, dns)


def test_other_settings():
    net = sa.service_network("10.96.0.0/12", "30000+99", "10.96.0.53")
    assert str(net.dns_ip) == "10.96.0.53" and net.port_range_text == "30000-30099"
    assert str(sa.service_network("192.168.7.0/24").dns_ip) == "192.168.7.10"


# -- picking -----------------------------------------------------------------------------------


def test_pick_prefers_addresses_above_the_static_band():
    rng = random.Random(7)
    picks = {sa.pick_offset(1000, 62, lambda o: False, rng) for _ in range(200)}
    assert min(picks) >= 62


def test_pick_scans_past_taken_values_then_uses_the_band_then_gives_up():
    taken = set(range(10, 100))
    off = sa.pick_offset(100, 10, lambda o: o in taken, random.Random(1))
    assert off is not None and off < 10
    assert sa.pick_offset(100, 10, lambda o: True, random.Random(1)) is None
    taken = set(range(100)) - {57}
    assert sa.pick_offset(100, 10, lambda o: o in taken, random.Random(3)) == 57


# -- the strategy before validation ---------------------------------------------------------------


def test_create_fills_cluster_ips_from_cluster_ip():
    obj = svc({"clusterIP": "10.43.0.5", "ports": [{"port": 80}]})
    sa.prepare_service(obj, None)
    assert obj["spec"]["clusterIPs"] == ["10.43.0.5"]


def test_resubmitted_manifest_keeps_allocated_values():
    old = svc({"type": "NodePort", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
               "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30081}]})
    new = svc({"type": "NodePort", "ports": [{"name": "http", "port": 8080}, {"name": "b", "port": 81}]})
    sa.prepare_service(new, old)
    assert new["spec"]["clusterIP"] == "10.43.1.2" and new["spec"]["clusterIPs"] == ["10.43.1.2"]
    assert [p["nodePort"] for p in new["spec"]["ports"]] == [30080, 30081]


def test_type_change_drops_what_the_new_type_does_not_use():
    old = svc({"type": "LoadBalancer", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
               "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000,
               "allocateLoadBalancerNodePorts": True, "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
               "ports": [{"port": 80, "nodePort": 30080}]})
    to_cluster_ip = copy.deepcopy(old)
    to_cluster_ip["spec"]["type"] = "ClusterIP"
    sa.prepare_service(to_cluster_ip, old)
    spec = to_cluster_ip["spec"]
    assert "nodePort" not in spec["ports"][0]
    assert "healthCheckNodePort" not in spec and "externalTrafficPolicy" not in spec
    assert "allocateLoadBalancerNodePorts" not in spec
    assert spec["clusterIP"] == "10.43.1.2"
    to_external = copy.deepcopy(old)
    to_external["spec"].update(type="ExternalName", externalName="example.com")
    sa.prepare_service(to_external, old)
    assert not {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"} & set(to_external["spec"])


def test_a_node_port_the_user_changed_is_not_dropped():
    old = svc({"type": "NodePort", "clusterIP": "10.43.1.2", "ports": [{"port": 80, "nodePort": 30080}]})
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"][0]["nodePort"] = 30099
    sa.prepare_service(new, old)
    assert new["spec"]["ports"][0]["nodePort"] == 30099  # validation forbids it, with the user's value


# -- plans: create ---------------------------------------------------------------------------------


def test_create_plans():
    plan, errs = sa.plan_allocation(NET, None, svc({"type": "ClusterIP", "ports": [{"port": 80}]}))
    assert errs == [] and plan.cluster_ip == "" and plan.node_ports == [] and plan.health_check is None
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "ClusterIP", "clusterIP": "None"}))
    assert not plan.allocates
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "ExternalName", "externalName": "example.com"}))
    assert not plan.allocates
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "ClusterIP", "clusterIP": "10.43.0.5",
                                                 "clusterIPs": ["10.43.0.5"]}))
    assert plan.cluster_ip == "10.43.0.5"


def test_requested_ip_outside_the_range_has_the_real_servers_message():
    _, errs = sa.plan_allocation(NET, None, svc({"clusterIP": "10.99.0.5", "clusterIPs": ["10.99.0.5"]}))
    assert message(errs) == (
        'Service "web" is invalid: spec.clusterIPs: Invalid value: []string{"10.99.0.5"}: failed to allocate '
        "IP 10.99.0.5: the provided IP (10.99.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16")
    _, errs = sa.plan_allocation(NET, None, svc({"clusterIP": "10.43.255.255", "clusterIPs": ["10.43.255.255"]}))
    assert "not in the valid range" in message(errs)


def test_this_cluster_is_ipv4_single_stack():
    _, errs = sa.plan_allocation(NET, None, svc({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"]}))
    assert message(errs).endswith('spec.clusterIPs[0]: Invalid value: []string{"fd00::5"}: IPv6 is not configured '
                                  "on this cluster")
    _, errs = sa.plan_allocation(NET, None, svc({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 1}]}))
    assert message(errs).endswith('spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
                                  "configured for dual-stack services")
    _, errs = sa.plan_allocation(NET, None, svc({"ipFamilies": ["IPv6"], "ports": [{"port": 1}]}))
    assert message(errs).endswith('spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster')
    plan, errs = sa.plan_allocation(NET, None, svc({"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack"}))
    assert errs == [] and not plan.allocates


def test_node_port_plans():
    plan, errs = sa.plan_allocation(NET, None, svc({"type": "NodePort", "ports": [
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "web", "port": 80, "nodePort": 30080}]}))
    assert errs == []
    assert [(c.requested, c.indexes) for c in plan.node_ports] == [(0, [0, 1]), (30080, [2])]
    # A port number that names a node port on one entry gives it to its siblings.
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "NodePort", "ports": [
        {"name": "u", "port": 53, "protocol": "UDP"}, {"name": "t", "port": 53, "protocol": "TCP", "nodePort": 30053}]}))
    assert [(c.requested, c.indexes) for c in plan.node_ports] == [(30053, [0, 1])]


def test_node_port_outside_the_range_has_the_real_servers_message():
    _, errs = sa.plan_allocation(NET, None, svc({"type": "NodePort", "ports": [
        {"port": 80}, {"name": "b", "port": 81, "nodePort": 40000}]}))
    assert message(errs) == ('Service "web" is invalid: spec.ports[1].nodePort: Invalid value: 40000: provided port '
                             "is not in the valid range. The range of valid ports is 30000-32767")


def test_load_balancer_plans():
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                                                 "ports": [{"port": 80}]}))
    assert len(plan.node_ports) == 1 and plan.health_check == 0
    plan, _ = sa.plan_allocation(NET, None, svc({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False,
                                                 "ports": [{"name": "a", "port": 80},
                                                           {"name": "b", "port": 81, "nodePort": 30081}]}))
    assert [(c.requested, c.indexes) for c in plan.node_ports] == [(30081, [1])]


# -- plans: update ---------------------------------------------------------------------------------


def updated(old: dict, **changes) -> dict:
    new = copy.deepcopy(old)
    new["spec"].update(changes)
    sa.prepare_service(new, old)
    return new


CLUSTER_IP = svc({"type": "ClusterIP", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
                  "ports": [{"name": "http", "port": 80}]})
NODE_PORT = svc({"type": "NodePort", "clusterIP": "10.43.1.2", "clusterIPs": ["10.43.1.2"],
                 "externalTrafficPolicy": "Cluster", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]})


def test_an_unchanged_update_allocates_and_releases_nothing():
    plan, errs = sa.plan_allocation(NET, NODE_PORT, updated(NODE_PORT, clusterIP=""))
    assert errs == [] and not plan.allocates and not plan.release_ips and not plan.release_ports


def test_cluster_ip_to_node_port_allocates_a_port():
    plan, _ = sa.plan_allocation(NET, CLUSTER_IP, updated(CLUSTER_IP, type="NodePort"))
    assert plan.cluster_ip is None and [c.requested for c in plan.node_ports] == [0] and not plan.release_ports


def test_node_port_to_cluster_ip_releases_the_port():
    plan, _ = sa.plan_allocation(NET, NODE_PORT, updated(NODE_PORT, type="ClusterIP"))
    assert not plan.allocates and plan.release_ports == {30080} and not plan.release_ips


def test_to_external_name_releases_the_address_and_back_allocates_one():
    external = updated(NODE_PORT, type="ExternalName", externalName="example.com")
    plan, _ = sa.plan_allocation(NET, NODE_PORT, external)
    assert not plan.allocates and plan.release_ips == {"10.43.1.2"} and plan.release_ports == {30080}
    back = copy.deepcopy(external)
    back["spec"]["type"] = "ClusterIP"
    sa.prepare_service(back, external)
    plan, _ = sa.plan_allocation(NET, external, back)
    assert plan.cluster_ip == "" and not plan.release_ips


def test_changing_a_node_port_claims_the_new_one_and_releases_the_old():
    new = copy.deepcopy(NODE_PORT)
    new["spec"]["ports"][0]["nodePort"] = 30099
    plan, _ = sa.plan_allocation(NET, NODE_PORT, new)
    assert [c.requested for c in plan.node_ports] == [30099] and plan.release_ports == {30080}


def test_a_held_port_outside_a_narrowed_range_is_kept():
    narrow = sa.service_network(node_ports="31000-32000")
    plan, errs = sa.plan_allocation(narrow, NODE_PORT, copy.deepcopy(NODE_PORT))
    assert errs == [] and not plan.allocates


# -- repair -------------------------------------------------------------------------------------------


def rec(kind: str, value: str, owner: sa.Owner, age: float = 600.0) -> sa.Record:
    return sa.Record(kind, value, owner, age, 1)


def test_repair_drops_leaks_adds_missing_and_reports_conflicts():
    web = svc({"type": "NodePort", "clusterIP": "10.43.1.2", "ports": [{"port": 80, "nodePort": 30080}]}, uid="w")
    twin = svc({"clusterIP": "10.43.1.2", "ports": [{"port": 80}]}, name="twin", uid="t")
    outside = svc({"clusterIP": "10.99.0.1", "ports": [{"port": 80}]}, name="old", uid="o")
    owner = sa.Owner("d", "web", "w")
    gone = sa.Owner("d", "gone", "g")
    records = [
        rec("ip", "10.43.1.2", owner),  # correct
        rec("ip", "10.43.9.9", gone),  # leaked long ago
        rec("port", "30999", gone, age=5.0),  # maybe a create in flight elsewhere
        rec("port", "30081", owner),  # web no longer holds it
    ]
    plan = sa.plan_repair(NET, [web, twin, outside], records, grace=60.0)
    assert sorted((r.kind, r.value) for r in plan.drop) == [("ip", "10.43.9.9"), ("port", "30081")]
    assert plan.add == [("port", "30080", owner)]
    assert any("10.43.1.2 is held by both d/web and d/twin" in c for c in plan.conflicts)
    assert any("10.99.0.1" in o for o in plan.out_of_range)


def test_repair_gives_a_record_of_a_dead_owner_to_the_service_holding_it():
    web = svc({"clusterIP": "10.43.1.2", "ports": [{"port": 80}]}, uid="new")
    stale = rec("ip", "10.43.1.2", sa.Owner("d", "web", "old"))
    plan = sa.plan_repair(NET, [web], [stale], grace=60.0)
    assert plan.drop == [stale] and plan.add == [("ip", "10.43.1.2", sa.Owner("d", "web", "new"))]


# -- the allocator on a real store ----------------------------------------------------------------------


class FixedRandom(random.Random):
    """Every allocator picks the same first candidate, as two servers racing would."""

    def randrange(self, n: int, *_: object) -> int:  # type: ignore[override]
        return 0


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(str(tmp_path / "state.db"), fsync=False)
    await s.start()
    yield s
    await s.close()


async def allocator(store, rng: random.Random | None = None) -> ServiceAllocator:
    cache = WatchCache(store)
    await cache.start()
    return ServiceAllocator(store, cache, NET, rng=rng or random.Random(5))


async def owner_of(store, key: str) -> str | None:
    kv = await store.get(key)
    return None if kv is None else orjson.loads(kv.value)["owner"]["uid"]


async def test_two_api_servers_racing_for_one_address_get_different_ones(store):
    a, b = await allocator(store, FixedRandom()), await allocator(store, FixedRandom())
    one, two = svc({"ports": [{"port": 80}]}, "one", "u1"), svc({"ports": [{"port": 80}]}, "two", "u2")
    await a.reserve(None, one, False)
    await b.reserve(None, two, False)
    ip1, ip2 = one["spec"]["clusterIP"], two["spec"]["clusterIP"]
    assert ip1 != ip2 and NET.ip_offset(ip1) >= NET.ip_static_band
    assert await owner_of(store, IP_PREFIX + ip1) == "u1" and await owner_of(store, IP_PREFIX + ip2) == "u2"


async def test_a_taken_address_or_port_is_refused_with_the_real_message(store):
    a = await allocator(store)
    await a.reserve(None, svc({"type": "NodePort", "clusterIP": "10.43.0.5",
                               "ports": [{"port": 80, "nodePort": 30080}]}, "one", "u1"), False)
    with pytest.raises(ApiError) as e:
        await a.reserve(None, svc({"clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                                   "ports": [{"port": 80}]}, "two", "u2"), False)
    assert e.value.code == 422 and e.value.message == (
        'Service "two" is invalid: spec.clusterIPs: Invalid value: []string{"10.43.0.5"}: failed to allocate IP '
        "10.43.0.5: provided IP is already allocated")
    with pytest.raises(ApiError) as e:
        await a.reserve(None, svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}, "three", "u3"),
                        False)
    assert e.value.message.endswith("spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated")


async def test_a_failed_write_leaves_no_allocation_behind(store):
    a = await allocator(store)
    await a.reserve(None, svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}, "one", "u1"), False)
    ip_one = [kv.key for kv in (await store.list(IP_PREFIX)).items]
    # The address is claimed first, then the node port is found taken: the address goes back.
    with pytest.raises(ApiError):
        await a.reserve(None, svc({"type": "NodePort", "clusterIP": "10.43.0.7", "clusterIPs": ["10.43.0.7"],
                                   "ports": [{"port": 80, "nodePort": 30080}]}, "two", "u2"), False)
    assert await store.get(IP_PREFIX + "10.43.0.7") is None
    # The store write after a successful reservation failed: abort gives everything back.
    res = await a.reserve(None, svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30081}]}, "three", "u3"),
                          False)
    assert await owner_of(store, PORT_PREFIX + "30081") == "u3"
    await res.abort()
    assert [kv.key for kv in (await store.list(PORT_PREFIX)).items] == [PORT_PREFIX + "30080"]
    assert [kv.key for kv in (await store.list(IP_PREFIX)).items] == ip_one


async def test_update_commit_releases_what_the_old_version_held_and_delete_releases_all(store):
    a = await allocator(store)
    old = copy.deepcopy(NODE_PORT)
    await a.reserve(None, old, False)
    new = updated(old, type="ClusterIP")
    res = await a.reserve(old, new, False)
    assert await owner_of(store, PORT_PREFIX + "30080") == "u1"  # not before the write is stored
    await res.commit()
    assert await store.get(PORT_PREFIX + "30080") is None
    await a.release(new)
    assert (await store.list(IP_PREFIX)).items == []


async def test_dry_run_shows_values_and_takes_nothing(store):
    a = await allocator(store)
    obj = svc({"type": "NodePort", "ports": [{"port": 80}]})
    await a.reserve(None, obj, True)
    assert NET.ip_offset(obj["spec"]["clusterIP"]) is not None
    assert NET.port_in_range(obj["spec"]["ports"][0]["nodePort"])
    assert (await store.list(IP_PREFIX)).items == [] and (await store.list(PORT_PREFIX)).items == []


async def test_release_leaves_records_of_other_owners_alone(store):
    a = await allocator(store)
    await a.reserve(None, svc({"clusterIP": "10.43.0.5", "ports": [{"port": 80}]}, "one", "u1"), False)
    await a.release(svc({"clusterIP": "10.43.0.5", "ports": [{"port": 80}]}, "imposter", "u9"))
    assert await owner_of(store, IP_PREFIX + "10.43.0.5") == "u1"


async def test_repair_on_the_store(store):
    a = await allocator(store)
    a.grace = 0.0
    await a.reserve(None, svc({"clusterIP": "10.43.0.5", "ports": [{"port": 80}]}, "gone", "g"), False)
    plan = await a.repair()  # no Service "gone" is stored: its record leaked
    assert [(r.kind, r.value) for r in plan.drop] == [("ip", "10.43.0.5")]
    assert (await store.list(IP_PREFIX)).items == []


# -- the Services the API server keeps ---------------------------------------------------------------


def test_advertise_address_follows_kube_apiserver():
    assert ss.choose_advertise_address("10.1.1.1", "0.0.0.0", "192.0.2.2") == "10.1.1.1"
    assert ss.choose_advertise_address(None, "0.0.0.0", "192.0.2.2") == "192.0.2.2"
    assert ss.choose_advertise_address(None, "127.0.0.1", "192.0.2.2") == "192.0.2.2"
    assert ss.choose_advertise_address(None, "10.0.0.7", "192.0.2.2") == "10.0.0.7"


def test_system_services():
    k8s = ss.kubernetes_service(NET, 6443)
    assert k8s["spec"]["clusterIP"] == "10.43.0.1" and "selector" not in k8s["spec"]
    assert k8s["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]
    dns = ss.kube_dns_service(NET)
    assert dns["spec"]["clusterIP"] == "10.43.0.10" and "selector" not in dns["spec"]
    assert [(p["name"], p["port"], p["protocol"]) for p in dns["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    moved = copy.deepcopy(k8s)
    moved["spec"]["ports"][0]["targetPort"] = 7443
    assert ss.service_port_drift(moved, k8s) and not ss.service_port_drift(copy.deepcopy(k8s), k8s)


def test_endpoints_list_the_unexpired_leases():
    a, b, c = ss.ApiEndpoint("10.0.0.2", 6443), ss.ApiEndpoint("10.0.0.1", 6443), ss.ApiEndpoint("10.0.0.3", 7443)
    live = ss.live_endpoints([(a, 100.0), (b, 95.0), (c, 99.0), (ss.ApiEndpoint("10.0.0.9", 6443), 10.0)],
                             now=100.0, ttl=45.0)
    assert live == [b, a, c]
    ep = ss.kubernetes_endpoints(live)
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}
    assert ep["subsets"] == [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "https", "port": 6443,
                                                                           "protocol": "TCP"}]},
        {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"name": "https", "port": 7443, "protocol": "TCP"}]}]
    es = ss.kubernetes_endpointslice(live)  # the port most servers use
    assert es["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
    assert [e["addresses"] for e in es["endpoints"]] == [["10.0.0.1"], ["10.0.0.2"]]
    assert es["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"} and es["addressType"] == "IPv4"
    assert "subsets" not in ss.kubernetes_endpoints([])


def test_servers_on_different_ports_agree_on_one_common_port():
    six, seven = ss.ApiEndpoint("10.0.0.1", 6443), ss.ApiEndpoint("10.0.0.2", 7443)
    assert ss.common_port([seven, six]) == ss.common_port([six, seven]) == 6443, "a tie: the lowest"
    assert ss.common_port([six, seven, ss.ApiEndpoint("10.0.0.3", 7443)]) == 7443, "most servers' port"
    assert ss.common_port([]) == 0


def test_endpoints_changed():
    desired = ss.kubernetes_endpoints([ss.ApiEndpoint("10.0.0.1", 6443)])
    same = copy.deepcopy(desired)
    same["metadata"]["labels"]["extra"] = "kept"
    assert not ss.endpoints_changed(same, desired)
    assert ss.endpoints_changed(ss.kubernetes_endpoints([]), desired)
    unlabelled = copy.deepcopy(desired)
    unlabelled["metadata"]["labels"] = {}
    assert ss.endpoints_changed(unlabelled, desired)
