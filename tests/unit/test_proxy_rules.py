"""The service proxy's decisions without a kernel: which service ports and endpoints it
programs, the table it builds, and the difference it sends between two syncs. The
rules themselves are exercised against the kernel in tests/e2e/test_services.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from kybernetes.proxy import model, nftables


def svc(name: str, ip: str = "10.43.0.5", type_: str = "ClusterIP", **spec) -> dict:
    ports = spec.pop("ports", [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"type": type_, "clusterIP": ip, "clusterIPs": [ip] if ip != "None" else ["None"],
                     "ports": ports, **spec}}


def ep(ip: str, node: str = "n1", ready: bool | None = True, **cond) -> dict:
    conditions = {"ready": ready, **cond} if ready is not None else cond
    return {"addresses": [ip], "conditions": conditions, "nodeName": node}


def slice_of(service: str, *endpoints: dict, port: int = 8080, name: str = "http", protocol: str = "TCP") -> dict:
    return {"metadata": {"namespace": "ns", "name": f"{service}-x",
                         "labels": {model.SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": protocol}],
            "endpoints": list(endpoints)}


def test_only_ready_endpoints_are_used():
    ports = model.service_ports([svc("web")], [slice_of("web", ep("10.42.0.2"), ep("10.42.0.3", ready=False),
                                                         ep("10.42.0.4", ready=None))])
    assert [e.ip for e in ports[0].endpoints] == ["10.42.0.2", "10.42.0.4"]
    assert ports[0].endpoints[0].port == 8080


def test_terminating_serving_endpoints_are_used_when_nothing_is_ready():
    ports = model.service_ports([svc("web")], [slice_of("web", ep("10.42.0.2", ready=False, serving=True,
                                                                 terminating=True))])
    assert [e.ip for e in ports[0].endpoints] == ["10.42.0.2"]


def test_headless_external_name_and_unallocated_services_are_not_programmed():
    services = [svc("headless", "None"), svc("ext", "", "ExternalName", externalName="example.org"),
                svc("pending", "")]
    assert model.service_ports(services, []) == []


def test_endpoints_of_another_port_name_or_namespace_are_ignored():
    other_ns = slice_of("web", ep("10.42.0.9"))
    other_ns["metadata"]["namespace"] = "elsewhere"
    ports = model.service_ports([svc("web")], [slice_of("web", ep("10.42.0.2"), name="metrics"), other_ns])
    assert ports[0].endpoints == []


def test_node_ports_only_for_node_port_and_load_balancer_types():
    plain, np, lb = model.service_ports([svc("a"), svc("b", "10.43.0.6", "NodePort"),
                                         svc("c", "10.43.0.7", "LoadBalancer")], [])
    assert (plain.node_port, plain.load_balancer, plain.external) == (0, False, False)
    assert (np.node_port, np.load_balancer, np.external) == (30080, False, True)
    assert (lb.node_port, lb.load_balancer, lb.external) == (30080, True, True)


def test_local_traffic_policies_keep_to_this_nodes_endpoints():
    spec = {"externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local"}
    (sp,) = model.service_ports([svc("web", type_="NodePort", **spec)],
                                [slice_of("web", ep("10.42.0.2", "n1"), ep("10.42.1.2", "n2"))])
    assert [e.ip for e in sp.internal_endpoints("n1")] == ["10.42.0.2"]
    assert [e.ip for e in sp.external_endpoints("n2")] == ["10.42.1.2"]


def test_a_service_without_endpoints_is_rejected_not_dnatted():
    rs = nftables.build(model.service_ports([svc("web", type_="NodePort")], []), "n1")
    assert rs.elements["no-endpoints"] == ["10.43.0.5 . tcp . 80"]
    assert rs.elements["no-endpoint-node-ports"] == ["tcp . 30080"]
    assert rs.elements["service-ips"] == [] and rs.elements["node-ports"] == []
    assert not [c for c in rs.chains if c.startswith(("svc-", "ext-"))]


def test_load_balancer_opens_its_port_and_node_port_on_the_node():
    ports = model.service_ports([svc("web", type_="LoadBalancer")], [slice_of("web", ep("10.42.0.2"))])
    rs = nftables.build(ports, "n1", "10.42.0.0/24")
    ext = f"ext-{model.short_id(ports[0].key)}"
    assert rs.elements["node-ports"] == [f"tcp . 30080 : goto {ext}", f"tcp . 80 : goto {ext}"]
    assert rs.chains[ext] == ["jump mark-for-masquerade", "meta l4proto tcp dnat ip to 10.42.0.2:8080"]
    svc_chain = rs.chains[f"svc-{model.short_id(ports[0].key)}"]
    assert svc_chain[0] == "ip saddr != 10.42.0.0/24 jump mark-for-masquerade"
    assert rs.elements["hairpin"] == ["10.42.0.2 . 10.42.0.2"]


def test_several_endpoints_are_picked_at_random_in_one_rule():
    ports = model.service_ports([svc("web")], [slice_of("web", ep("10.42.0.2"), ep("10.42.0.3"))])
    (rule,) = nftables.build(ports, "n1").chains[f"svc-{model.short_id(ports[0].key)}"]
    assert rule == ("meta l4proto tcp dnat ip to numgen random mod 2 map "
                    "{ 0 : 10.42.0.2 . 8080, 1 : 10.42.0.3 . 8080 }")


def test_client_ip_affinity_records_the_client_per_endpoint():
    ports = model.service_ports([svc("web", sessionAffinity="ClientIP",
                                     sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})],
                                [slice_of("web", ep("10.42.0.2"), ep("10.42.0.3"))])
    rs = nftables.build(ports, "n1")
    assert sorted(rs.affinity_sets.values()) == [60, 60]
    seps = sorted(c for c in rs.chains if c.startswith("sep-"))
    assert len(seps) == 2 and all(rs.chains[c][0].startswith("update @aff-") for c in seps)


def test_an_unchanged_plan_sends_nothing_but_declarations():
    ports = model.service_ports([svc("web")], [slice_of("web", ep("10.42.0.2"))])
    rs = nftables.build(ports, "n1")
    script = nftables.render(rs, rs, "t")
    assert "add rule" not in script and "element" not in script and "delete" not in script


def test_the_difference_between_syncs_touches_only_what_changed():
    services = [svc("web"), svc("api", "10.43.0.6")]
    one = nftables.build(model.service_ports(services, [slice_of("web", ep("10.42.0.2")),
                                                        slice_of("api", ep("10.42.0.9"))]), "n1")
    two = nftables.build(model.service_ports(services[:1], [slice_of("web", ep("10.42.0.3"))]), "n1")
    script = nftables.render(two, one, "t")
    web_chain = f"svc-{model.short_id('ns/web:http/tcp')}"
    api_chain = f"svc-{model.short_id('ns/api:http/tcp')}"
    assert f"flush chain ip t {web_chain}" in script
    assert f"add rule ip t {web_chain} meta l4proto tcp dnat ip to 10.42.0.3:8080" in script
    assert f"delete chain ip t {api_chain}" in script
    assert "delete element ip t service-ips { 10.43.0.6 . tcp . 80 }" in script
    assert "delete element ip t hairpin { 10.42.0.2 . 10.42.0.2, 10.42.0.9 . 10.42.0.9 }" in script
    assert "add element ip t hairpin { 10.42.0.3 . 10.42.0.3 }" in script
    # The api chain is emptied before it is deleted, and after its map element goes.
    assert script.index("delete element ip t service-ips") < script.index(f"delete chain ip t {api_chain}")


def test_a_first_sync_starts_from_an_empty_table():
    script = nftables.render(nftables.build([], "n1"), None, "t")
    assert script.startswith("add table ip t\ndelete table ip t\nadd table ip t\n")


@pytest.mark.skipif(shutil.which("nft") is None or subprocess.run(["nft", "list", "tables"],
                                                                  capture_output=True).returncode != 0,
                    reason="needs nft and CAP_NET_ADMIN")
def test_the_kernel_accepts_full_and_incremental_scripts():
    import asyncio

    table = "kyb-unit"
    services = [svc("web", type_="LoadBalancer", sessionAffinity="ClientIP"), svc("api", "10.43.0.6", "NodePort",
                                                                                  ports=[{"port": 81, "nodePort": 30081,
                                                                                          "protocol": "UDP"}])]
    one = nftables.build(model.service_ports(services, [slice_of("web", ep("10.42.0.2"), ep("10.42.0.3"))]), "n1")
    two = nftables.build(model.service_ports(services[1:], [slice_of("api", ep("10.42.0.4"), name="", protocol="UDP")]), "n1",
                         "10.42.0.0/24")

    async def go() -> str:
        try:
            await nftables.apply(nftables.render(one, None, table))
            await nftables.apply(nftables.render(two, one, table))
            return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
        finally:
            await nftables.delete_table(table)

    listed = asyncio.run(go())
    assert "10.43.0.6 . udp . 81" in listed and "meta l4proto udp dnat to 10.42.0.4:8080" in listed
    assert "10.42.0.2" not in listed and "aff-" not in listed
    assert subprocess.run(["nft", "list", "table", "ip", table], capture_output=True).returncode != 0


def test_iptables_mode_picks_endpoints_with_falling_probabilities():
    from kybernetes.proxy import iptables

    ports = model.service_ports([svc("web", type_="NodePort")],
                                [slice_of("web", ep("10.42.0.2"), ep("10.42.0.3"), ep("10.42.0.4"))])
    t = iptables.build(ports, "n1", "10.42.0.0/24")
    sid = model.short_id(ports[0].key).upper()
    rules = t.nat[f"KYB-SVC-{sid}"]
    assert rules[0] == "! -s 10.42.0.0/24 -j KYB-MARK-MASQ"
    assert [r.rsplit("-j ", 1)[0].strip() for r in rules[1:]] == [
        "-m statistic --mode random --probability 0.33333333333",
        "-m statistic --mode random --probability 0.50000000000", ""]
    assert t.nat["KYB-SERVICES"] == [f"-d 10.43.0.5/32 -p tcp -m tcp --dport 80 -j KYB-SVC-{sid}",
                                     f"{iptables.LOCAL} -p tcp -m tcp --dport 30080 -j KYB-EXT-{sid}"]
    seps = [c for c in t.nat if c.startswith("KYB-SEP-")]
    assert len(seps) == 3 and all(t.nat[c][-1].startswith("-p tcp -j DNAT --to-destination 10.42.0.") for c in seps)


def test_iptables_mode_rejects_without_endpoints_and_drops_stale_chains():
    from kybernetes.proxy import iptables

    t = iptables.build(model.service_ports([svc("web")], []), "n1")
    assert t.filter["KYB-REJECT"] == ["-d 10.43.0.5/32 -p tcp -m tcp --dport 80 -j REJECT"]
    text = iptables.restore_input(t, {"nat": {"KYB-SVC-OLD", "KYB-SERVICES"}, "filter": set()})
    assert ":KYB-SVC-OLD - [0:0]" in text and "-X KYB-SVC-OLD" in text
    assert text.index(":KYB-SVC-OLD") < text.index("-X KYB-SVC-OLD") < text.index("COMMIT")
    assert "-X KYB-SERVICES" not in text
