"""The cluster DNS zone's answers (kybernetes/dns/records.py), from Services,
EndpointSlices and Pods as the API returns them: no server, no sockets."""

from __future__ import annotations

from typing import Any

import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.reversename
import pytest

from kybernetes.dns.records import Answer, ClusterRecords, dashed, undashed
from kybernetes.testing import fakes

NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN


def service(name: str, ns: str = "default", type_: str = "ClusterIP", ips: list[str] | None = None,
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type_, **spec}
    if ips is not None:
        body["clusterIP"] = ips[0]
        body["clusterIPs"] = ips
    if ports is not None:
        body["ports"] = ports
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def headless(name: str, ns: str = "default", ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return service(name, ns, ips=["None"], ports=ports)


def endpoint_slice(name: str, svc: str, endpoints: list[dict[str, Any]], ns: str = "default",
                   ports: list[dict[str, Any]] | None = None, address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports or []}


def ep(address: str, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"addresses": [address]}
    if ready is not None:
        out["conditions"] = {"ready": ready}
    if hostname:
        out["hostname"] = hostname
    return out


def pod(name: str, ns: str = "default", ips: list[str] | None = None, phase: str = "Running") -> dict[str, Any]:
    return fakes.pod(name, ns, phase=phase, ip=ips)


def ask(records: ClusterRecords, name: str | dns.name.Name, qtype: int = T.A) -> Answer:
    return records.answer(dns.name.from_text(name) if isinstance(name, str) else name, qtype)


def texts(answer: Answer, section: str = "answer") -> list[str]:
    """The rdata of every record in a section, as text, sorted."""
    return sorted(rd.to_text() for rrset in getattr(answer, section) for rd in rrset)


def types(answer: Answer, section: str = "answer") -> list[str]:
    return [T.to_text(rrset.rdtype) for rrset in getattr(answer, section)]


def assert_nxdomain(answer: Answer) -> None:
    assert answer.authoritative
    assert answer.rcode == NXDOMAIN
    assert answer.answer == []
    assert types(answer, "authority") == ["SOA"]


def assert_nodata(answer: Answer) -> None:
    assert answer.authoritative
    assert answer.rcode == NOERROR
    assert answer.answer == []
    assert types(answer, "authority") == ["SOA"]


@pytest.fixture
def records() -> ClusterRecords:
    return ClusterRecords()


# -- Services with a cluster IP -----------------------------------------------------------------------


@pytest.mark.parametrize("type_", ["ClusterIP", "NodePort", "LoadBalancer"])
def test_service_name_answers_its_cluster_ip(records, type_):
    records.upsert_service(service("web", "shop", type_, ["10.96.0.10"]))
    answer = ask(records, "web.shop.svc.cluster.local.")
    assert answer.rcode == NOERROR and answer.authoritative
    assert texts(answer) == ["10.96.0.10"]
    assert answer.answer[0].ttl == 5
    assert answer.answer[0].name == dns.name.from_text("web.shop.svc.cluster.local.")


def test_dual_stack_service_answers_a_and_aaaa_and_ipv4_only_is_nodata_for_aaaa(records):
    records.upsert_service(service("web", ips=["10.96.0.10", "fd00:10:96::a"]))
    records.upsert_service(service("v4", ips=["10.96.0.11"]))
    assert texts(ask(records, "web.default.svc.cluster.local.", T.A)) == ["10.96.0.10"]
    assert texts(ask(records, "web.default.svc.cluster.local.", T.AAAA)) == ["fd00:10:96::a"]
    assert_nodata(ask(records, "v4.default.svc.cluster.local.", T.AAAA))
    assert_nodata(ask(records, "v4.default.svc.cluster.local.", T.MX))


def test_names_match_in_any_case_and_answers_keep_the_question_spelling(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    answer = ask(records, "WeB.DeFault.SVC.Cluster.Local.")
    assert texts(answer) == ["10.96.0.10"]
    assert answer.answer[0].name.to_text() == "WeB.DeFault.SVC.Cluster.Local."


def test_service_without_an_allocated_ip_exists_with_no_address(records):
    records.upsert_service(service("pending"))
    assert_nodata(ask(records, "pending.default.svc.cluster.local."))


def test_service_update_and_delete(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    records.upsert_service(service("web", ips=["10.96.0.20"]))
    assert texts(ask(records, "web.default.svc.cluster.local.")) == ["10.96.0.20"]
    records.delete_service(service("web"))
    assert_nxdomain(ask(records, "web.default.svc.cluster.local."))
    # The namespace had only that Service: now it is gone from the zone too.
    assert_nxdomain(ask(records, "default.svc.cluster.local."))


def test_services_are_kept_per_namespace(records):
    records.upsert_service(service("web", "a", ips=["10.96.0.1"]))
    records.upsert_service(service("web", "b", ips=["10.96.0.2"]))
    assert texts(ask(records, "web.a.svc.cluster.local.")) == ["10.96.0.1"]
    assert texts(ask(records, "web.b.svc.cluster.local.")) == ["10.96.0.2"]
    assert_nxdomain(ask(records, "web.c.svc.cluster.local."))


# -- headless Services ----------------------------------------------------------------------------


def test_headless_service_answers_ready_endpoints_of_all_its_slices(records):
    records.upsert_service(headless("db"))
    records.upsert_endpoint_slice(endpoint_slice("db-1", "db", [
        ep("10.244.0.5"), ep("10.244.0.6", ready=None), ep("10.244.0.7", ready=False)]))
    records.upsert_endpoint_slice(endpoint_slice("db-2", "db", [ep("10.244.1.5")]))
    # A slice of another Service is not this one's.
    records.upsert_endpoint_slice(endpoint_slice("other-1", "other", [ep("10.244.9.9")]))
    answer = ask(records, "db.default.svc.cluster.local.")
    assert answer.rcode == NOERROR
    assert texts(answer) == ["10.244.0.5", "10.244.0.6", "10.244.1.5"]


def test_headless_ipv6_endpoints_are_aaaa(records):
    records.upsert_service(headless("db"))
    records.upsert_endpoint_slice(endpoint_slice("db-6", "db", [ep("fd00::5")], address_type="IPv6"))
    records.upsert_endpoint_slice(endpoint_slice("db-f", "db", [{"addresses": ["db.example.com"]}],
                                                 address_type="FQDN"))
    assert texts(ask(records, "db.default.svc.cluster.local.", T.AAAA)) == ["fd00::5"]
    assert_nodata(ask(records, "db.default.svc.cluster.local.", T.A))


def test_endpoints_arriving_before_their_service_are_used_when_it_comes(records):
    records.upsert_endpoint_slice(endpoint_slice("db-1", "db", [ep("10.244.0.5")]))
    assert_nxdomain(ask(records, "db.default.svc.cluster.local."))
    records.upsert_service(headless("db"))
    assert texts(ask(records, "db.default.svc.cluster.local.")) == ["10.244.0.5"]


def test_headless_service_without_ready_endpoints_exists_with_no_address(records):
    records.upsert_service(headless("db"))
    records.upsert_endpoint_slice(endpoint_slice("db-1", "db", [ep("10.244.0.7", ready=False)]))
    assert_nodata(ask(records, "db.default.svc.cluster.local."))


def test_slice_updates_deletes_and_relabels(records):
    records.upsert_service(headless("db"))
    records.upsert_service(headless("cache"))
    records.upsert_endpoint_slice(endpoint_slice("s", "db", [ep("10.244.0.5")]))
    records.upsert_endpoint_slice(endpoint_slice("s", "db", [ep("10.244.0.6")]))
    assert texts(ask(records, "db.default.svc.cluster.local.")) == ["10.244.0.6"]
    # The same slice now labelled for another Service moves there.
    records.upsert_endpoint_slice(endpoint_slice("s", "cache", [ep("10.244.0.6")]))
    assert_nodata(ask(records, "db.default.svc.cluster.local."))
    assert texts(ask(records, "cache.default.svc.cluster.local.")) == ["10.244.0.6"]
    records.delete_endpoint_slice(endpoint_slice("s", "cache", []))
    assert_nodata(ask(records, "cache.default.svc.cluster.local."))


def test_headless_endpoint_names_by_hostname_and_by_dashed_address(records):
    records.upsert_service(headless("db"))
    records.upsert_endpoint_slice(endpoint_slice("db-1", "db", [
        ep("10.244.0.5", hostname="db-0"), ep("10.244.0.6"), ep("10.244.0.7", ready=False, hostname="db-2")]))
    assert texts(ask(records, "db-0.db.default.svc.cluster.local.")) == ["10.244.0.5"]
    assert texts(ask(records, "10-244-0-6.db.default.svc.cluster.local.")) == ["10.244.0.6"]
    # Not ready: not published.
    assert_nxdomain(ask(records, "db-2.db.default.svc.cluster.local."))
    assert_nxdomain(ask(records, "db-9.db.default.svc.cluster.local."))
    # Only headless Services have endpoint names.
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    assert_nxdomain(ask(records, "db-0.web.default.svc.cluster.local."))


# -- ExternalName -----------------------------------------------------------------------------------


def test_external_name_is_a_cname_whose_target_the_server_resolves(records):
    records.upsert_service(service("ext", type_="ExternalName", externalName="db.example.com"))
    for qtype in (T.A, T.AAAA, T.CNAME):
        answer = ask(records, "ext.default.svc.cluster.local.", qtype)
        assert answer.rcode == NOERROR and answer.authoritative
        assert types(answer) == ["CNAME"] and texts(answer) == ["db.example.com."]
    assert ask(records, "ext.default.svc.cluster.local.", T.A).chase == dns.name.from_text("db.example.com.")
    # Asked for the CNAME itself: nothing to chase.
    assert ask(records, "ext.default.svc.cluster.local.", T.CNAME).chase is None


def test_external_name_into_the_cluster_is_followed_here(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    records.upsert_service(service("alias", type_="ExternalName", externalName="web.default.svc.cluster.local."))
    records.upsert_service(service("dangling", type_="ExternalName", externalName="gone.default.svc.cluster.local"))
    answer = ask(records, "alias.default.svc.cluster.local.")
    assert answer.rcode == NOERROR and answer.chase is None
    assert [rr.to_text() for rr in answer.answer] == [
        "alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
        "web.default.svc.cluster.local. 5 IN A 10.96.0.10"]
    dangling = ask(records, "dangling.default.svc.cluster.local.")
    assert dangling.rcode == NXDOMAIN and types(dangling) == ["CNAME"]


def test_external_name_loop_ends(records):
    records.upsert_service(service("a", type_="ExternalName", externalName="b.default.svc.cluster.local"))
    records.upsert_service(service("b", type_="ExternalName", externalName="a.default.svc.cluster.local"))
    answer = ask(records, "a.default.svc.cluster.local.")
    assert set(types(answer)) == {"CNAME"} and 2 <= len(answer.answer) <= 10


# -- SRV ---------------------------------------------------------------------------------------------


def test_srv_of_a_named_port_points_at_the_service(records):
    records.upsert_service(service("web", ips=["10.96.0.10"], ports=[
        {"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 8080}]))
    answer = ask(records, "_http._tcp.web.default.svc.cluster.local.", T.SRV)
    assert answer.rcode == NOERROR
    assert texts(answer) == ["0 100 80 web.default.svc.cluster.local."]
    assert [rr.to_text() for rr in answer.additional] == ["web.default.svc.cluster.local. 5 IN A 10.96.0.10"]
    assert texts(ask(records, "_dns._udp.web.default.svc.cluster.local.", T.SRV)) == [
        "0 100 53 web.default.svc.cluster.local."]
    # Wrong protocol or an unknown port name: no such name. The protocol level alone exists.
    assert_nxdomain(ask(records, "_dns._tcp.web.default.svc.cluster.local.", T.SRV))
    assert_nxdomain(ask(records, "_nope._tcp.web.default.svc.cluster.local.", T.SRV))
    assert_nodata(ask(records, "_tcp.web.default.svc.cluster.local.", T.SRV))
    assert_nxdomain(ask(records, "_sctp.web.default.svc.cluster.local.", T.SRV))
    # At the port name, only SRV.
    assert_nodata(ask(records, "_http._tcp.web.default.svc.cluster.local.", T.A))
    # At the Service's own name, every port, the unnamed one too.
    assert texts(ask(records, "web.default.svc.cluster.local.", T.SRV)) == [
        "0 33 53 web.default.svc.cluster.local.", "0 33 80 web.default.svc.cluster.local.",
        "0 33 8080 web.default.svc.cluster.local."]


def test_srv_of_a_headless_service_points_at_each_ready_endpoint(records):
    records.upsert_service(headless("db", ports=[{"name": "pg", "port": 5432}]))
    records.upsert_endpoint_slice(endpoint_slice(
        "db-1", "db", [ep("10.244.0.5", hostname="db-0"), ep("10.244.0.6"), ep("10.244.0.7", ready=False)],
        ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}]))
    answer = ask(records, "_pg._tcp.db.default.svc.cluster.local.", T.SRV)
    assert answer.rcode == NOERROR
    # The endpoints' port (the slice's), and each endpoint's own name as target.
    assert texts(answer) == ["0 50 15432 10-244-0-6.db.default.svc.cluster.local.",
                             "0 50 15432 db-0.db.default.svc.cluster.local."]
    assert sorted(rr.to_text() for rr in answer.additional) == [
        "10-244-0-6.db.default.svc.cluster.local. 5 IN A 10.244.0.6",
        "db-0.db.default.svc.cluster.local. 5 IN A 10.244.0.5"]


def test_srv_of_an_external_name_points_at_the_external_name(records):
    records.upsert_service(service("ext", type_="ExternalName", externalName="db.example.com",
                                   ports=[{"name": "pg", "port": 5432}]))
    assert texts(ask(records, "_pg._tcp.ext.default.svc.cluster.local.", T.SRV)) == ["0 100 5432 db.example.com."]
    # The Service's own name is a CNAME, which allows no other record beside it.
    assert types(ask(records, "ext.default.svc.cluster.local.", T.SRV)) == ["CNAME"]


# -- pods -------------------------------------------------------------------------------------------


def test_pod_dashed_address_answers_when_a_pod_in_the_namespace_has_it(records):
    records.upsert_pod(pod("a", "shop", ["10.244.0.9"]))
    records.upsert_pod(pod("b", "shop", ["10.244.0.10", "fd00::a"]))
    answer = ask(records, "10-244-0-9.shop.pod.cluster.local.")
    assert answer.rcode == NOERROR and texts(answer) == ["10.244.0.9"] and answer.answer[0].ttl == 5
    assert texts(ask(records, "fd00--a.shop.pod.cluster.local.", T.AAAA)) == ["fd00::a"]
    assert_nodata(ask(records, "10-244-0-9.shop.pod.cluster.local.", T.AAAA))
    # No pod with that address there, or not that namespace's pod, or not an address.
    assert_nxdomain(ask(records, "10-244-0-8.shop.pod.cluster.local."))
    assert_nxdomain(ask(records, "10-244-0-9.other.pod.cluster.local."))
    assert_nxdomain(ask(records, "not-an-ip.shop.pod.cluster.local."))
    assert_nxdomain(ask(records, "10-244-0-999.shop.pod.cluster.local."))


def test_pod_addresses_follow_the_pod(records):
    records.upsert_pod(pod("a", ips=["10.244.0.9"]))
    records.upsert_pod(pod("a", ips=["10.244.0.11"]))
    assert_nxdomain(ask(records, "10-244-0-9.default.pod.cluster.local."))
    assert texts(ask(records, "10-244-0-11.default.pod.cluster.local.")) == ["10.244.0.11"]
    # A finished pod's address is free for another pod.
    records.upsert_pod(pod("a", ips=["10.244.0.11"], phase="Succeeded"))
    assert_nxdomain(ask(records, "10-244-0-11.default.pod.cluster.local."))
    records.upsert_pod(pod("a", ips=["10.244.0.11"]))
    records.delete_pod(pod("a"))
    assert_nxdomain(ask(records, "10-244-0-11.default.pod.cluster.local."))


def test_pods_sharing_an_address_keep_it_until_the_last_goes(records):
    # Host-network pods all have their node's address.
    records.upsert_pod(pod("a", ips=["192.168.1.10"]))
    records.upsert_pod(pod("b", ips=["192.168.1.10"]))
    records.delete_pod(pod("a"))
    assert texts(ask(records, "192-168-1-10.default.pod.cluster.local.")) == ["192.168.1.10"]
    records.delete_pod(pod("b"))
    assert_nxdomain(ask(records, "192-168-1-10.default.pod.cluster.local."))


def test_insecure_pod_mode_answers_any_address_and_disabled_none():
    insecure = ClusterRecords(pod_mode="insecure")
    assert texts(ask(insecure, "1-2-3-4.anything.pod.cluster.local.")) == ["1.2.3.4"]
    disabled = ClusterRecords(pod_mode="disabled")
    disabled.upsert_pod(pod("a", ips=["1.2.3.4"]))
    assert_nxdomain(ask(disabled, "1-2-3-4.default.pod.cluster.local."))
    with pytest.raises(ValueError):
        ClusterRecords(pod_mode="sometimes")  # type: ignore[arg-type]


def test_dashed_forms():
    assert dashed("10.1.2.3") == "10-1-2-3" and dashed("fd00::1") == "fd00--1"
    assert str(undashed("10-1-2-3")) == "10.1.2.3" and str(undashed("fd00--1")) == "fd00::1"
    assert undashed("web") is None and undashed("1-2-3") is None


# -- the rest of the zone ---------------------------------------------------------------------------


def test_unknown_names_in_the_zone_are_nxdomain_with_the_soa(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    for name in ["nope.default.svc.cluster.local.", "web.nope.svc.cluster.local.", "x.cluster.local.",
                 "a.b.web.default.svc.cluster.local.", "a.b.c.d.e.web.default.svc.cluster.local.",
                 # What a pod's search path makes of an external name.
                 "example.com.default.svc.cluster.local."]:
        answer = ask(records, name)
        assert_nxdomain(answer)
        soa = answer.authority[0]
        assert soa.name == dns.name.from_text("cluster.local.") and soa.ttl == 5 and soa[0].minimum == 5


def test_empty_non_terminals_exist_without_records(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    records.upsert_pod(pod("a", ips=["10.244.0.9"]))
    for name in ["svc.cluster.local.", "pod.cluster.local.", "default.svc.cluster.local.",
                 "default.pod.cluster.local."]:
        assert_nodata(ask(records, name))


def test_apex_soa_and_schema_version(records):
    soa = ask(records, "cluster.local.", T.SOA)
    assert soa.rcode == NOERROR and types(soa) == ["SOA"]
    assert soa.answer[0][0].mname == dns.name.from_text("ns.dns.cluster.local.")
    assert texts(ask(records, "dns-version.cluster.local.", T.TXT)) == ['"1.1.0"']


def test_any_returns_every_record_at_the_name(records):
    records.upsert_service(service("web", ips=["10.96.0.10", "fd00::a"], ports=[{"name": "http", "port": 80}]))
    assert sorted(types(ask(records, "web.default.svc.cluster.local.", T.ANY))) == ["A", "AAAA", "SRV"]


def test_names_outside_the_zone_are_not_ours(records):
    for name in ["example.com.", "cluster.local.example.com.", "local.", "svc.cluster.locall."]:
        answer = ask(records, name)
        assert not answer.authoritative and answer.answer == []


def test_reverse_lookups_of_cluster_addresses(records):
    records.upsert_service(service("web", ips=["10.96.0.10", "fd00::a"]))
    records.upsert_service(headless("db"))
    records.upsert_endpoint_slice(endpoint_slice("db-1", "db", [ep("10.244.0.5", hostname="db-0")]))
    assert texts(ask(records, "10.0.96.10.in-addr.arpa.", T.PTR)) == ["web.default.svc.cluster.local."]
    assert texts(ask(records, dns.reversename.from_address("fd00::a"), T.PTR)) == ["web.default.svc.cluster.local."]
    assert texts(ask(records, "5.0.244.10.in-addr.arpa.", T.PTR)) == ["db-0.db.default.svc.cluster.local."]
    assert_nodata(ask(records, "10.0.96.10.in-addr.arpa.", T.A))
    # Any other address is the upstream's to answer.
    assert not ask(records, "8.8.8.8.in-addr.arpa.", T.PTR).authoritative
    assert not ask(records, "96.10.in-addr.arpa.", T.PTR).authoritative
    records.delete_service(service("web"))
    assert not ask(records, "10.0.96.10.in-addr.arpa.", T.PTR).authoritative


def test_another_cluster_domain():
    records = ClusterRecords("Corp.Example.")
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    assert texts(ask(records, "web.default.svc.corp.example.")) == ["10.96.0.10"]
    assert not ask(records, "web.default.svc.cluster.local.").authoritative
    assert ask(records, "nope.corp.example.").authority[0].name == dns.name.from_text("corp.example.")


# -- index bookkeeping ------------------------------------------------------------------------------


def test_generation_moves_only_when_a_cacheable_answer_can_change(records):
    records.upsert_service(service("web", ips=["10.96.0.10"]))
    g = records.generation
    # A status-only update (as a load balancer controller makes) changes no record.
    changed = service("web", ips=["10.96.0.10"])
    changed["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    records.upsert_service(changed)
    assert records.generation == g
    # Endpoints of a Service with a cluster IP are not in DNS.
    records.upsert_endpoint_slice(endpoint_slice("web-1", "web", [ep("10.244.0.5")]))
    assert records.generation == g
    # Pods change often; their answers are never cached, so they leave the generation alone.
    records.upsert_pod(pod("a", ips=["10.244.0.9"]))
    assert records.generation == g
    assert not ask(records, "10-244-0-9.default.pod.cluster.local.").cacheable
    assert ask(records, "web.default.svc.cluster.local.").cacheable
    records.upsert_service(service("web", ips=["10.96.0.11"]))
    assert records.generation > g


def test_thousands_of_services():
    records = ClusterRecords()
    for i in range(3000):
        records.upsert_service(service(f"s{i}", f"ns{i % 7}", ips=[f"10.96.{i // 250}.{i % 250 + 1}"]))
    assert texts(ask(records, "s2999.ns3.svc.cluster.local.")) == ["10.96.11.250"]
    assert texts(ask(records, "s0.ns0.svc.cluster.local.")) == ["10.96.0.1"]
    assert_nxdomain(ask(records, "s0.ns1.svc.cluster.local."))
