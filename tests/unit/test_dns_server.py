"""The cluster DNS server (kybernetes/dns/server.py) on 127.0.0.1: real UDP and TCP
queries with dnspython's `dns.query`, truncation, malformed input, forwarding to a
second server of our own, and the informer wiring."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import pytest

from kybernetes.client.informer import InformerFactory
from kybernetes.client.resources import ENDPOINTSLICES, PODS, SERVICES
from kybernetes.dns.records import ClusterRecords
from kybernetes.dns.server import (
    DnsServer,
    attach_informers,
    is_own_address,
    parse_upstream,
    pod_dns_view,
    read_resolv_conf,
)

HOST = "127.0.0.1"


def service(name: str, ns: str = "default", ips: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "ClusterIP", **spec}
    if ips:
        body["clusterIP"], body["clusterIPs"] = ips[0], ips
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": "1"}, "spec": body}


def headless_with(name: str, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    svc = service(name, ips=["None"])
    eps = {"metadata": {"name": f"{name}-1", "namespace": "default", "resourceVersion": "1",
                        "labels": {"kubernetes.io/service-name": name}},
           "addressType": "IPv4",
           "endpoints": [{"addresses": [f"10.244.{i // 200}.{i % 200 + 1}"], "conditions": {"ready": True}}
                         for i in range(count)]}
    return svc, eps


def cluster_records(zone: str = "cluster.local") -> ClusterRecords:
    records = ClusterRecords(zone)
    records.upsert_service(service("web", ips=["10.96.0.10"], ports=[{"name": "http", "port": 80}]))
    for name, count in (("fifty", 50), ("many", 150)):
        svc, eps = headless_with(name, count)
        records.upsert_service(svc)
        records.upsert_endpoint_slice(eps)
    return records


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    srv = DnsServer(cluster_records(), HOST, 0, upstreams=[])
    await srv.start()
    yield srv
    await srv.stop()


async def udp(srv: DnsServer, q: dns.message.Message, timeout: float = 3.0, **kw: Any) -> dns.message.Message:
    # dns.query is blocking: run it beside the loop that runs the server.
    return await asyncio.to_thread(dns.query.udp, q, HOST, timeout=timeout, port=srv.port, **kw)


async def tcp(srv: DnsServer, q: dns.message.Message, timeout: float = 3.0) -> dns.message.Message:
    return await asyncio.to_thread(dns.query.tcp, q, HOST, timeout=timeout, port=srv.port)


async def raw_udp(port: int, payload: bytes, timeout: float = 0.5) -> bytes | None:
    """Send `payload` as it is; the reply, or None when none comes."""

    def run() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(payload, (HOST, port))
            try:
                return s.recv(65535)
            except TimeoutError:
                return None

    return await asyncio.to_thread(run)


def addresses(msg: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in msg.answer if rrset.rdtype in (T.A, T.AAAA) for rd in rrset)


# -- answers over both transports --------------------------------------------------------------------


@pytest.mark.parametrize("transport", [udp, tcp])
async def test_service_address_over_udp_and_tcp(server, transport):
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    r = await transport(server, q)
    assert r.id == q.id and r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.AA and not r.flags & dns.flags.TC
    assert [rrset.to_text() for rrset in r.answer] == ["web.default.svc.cluster.local. 5 IN A 10.96.0.10"]


@pytest.mark.parametrize("transport", [udp, tcp])
async def test_nxdomain_and_nodata_carry_the_soa(server, transport):
    r = await transport(server, dns.message.make_query("nope.default.svc.cluster.local", "A"))
    assert r.rcode() == dns.rcode.NXDOMAIN and r.answer == []
    assert [rrset.rdtype for rrset in r.authority] == [T.SOA]
    r = await transport(server, dns.message.make_query("web.default.svc.cluster.local", "AAAA"))
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []
    assert [rrset.rdtype for rrset in r.authority] == [T.SOA]


async def test_srv_answer_has_the_target_address(server):
    r = await udp(server, dns.message.make_query("_http._tcp.web.default.svc.cluster.local", "SRV"))
    assert [rd.to_text() for rd in r.answer[0]] == ["0 100 80 web.default.svc.cluster.local."]
    assert [rrset.to_text() for rrset in r.additional] == ["web.default.svc.cluster.local. 5 IN A 10.96.0.10"]


async def test_answers_follow_changes_of_the_records(server):
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    assert addresses(await udp(server, q)) == ["10.96.0.10"]
    server.records.upsert_service(service("web", ips=["10.96.0.99"]))
    # The same question again, byte for byte: a cached reply would be stale.
    assert addresses(await udp(server, q)) == ["10.96.0.99"]
    server.records.delete_service(service("web"))
    assert (await udp(server, q)).rcode() == dns.rcode.NXDOMAIN


async def test_answer_keeps_the_spelling_of_the_question(server):
    for name in ("WEB.default.svc.cluster.local", "web.default.svc.cluster.local"):
        r = await udp(server, dns.message.make_query(name, "A"))
        assert r.answer[0].name.to_text() == name + "."


# -- sizes ------------------------------------------------------------------------------------------


async def test_udp_answer_too_big_for_the_client_is_truncated(server):
    q = dns.message.make_query("fifty.default.svc.cluster.local", "A", use_edns=False)
    r = await udp(server, q)
    assert r.flags & dns.flags.TC
    assert len(r.to_wire()) <= 512
    # The same over TCP: whole.
    r = await tcp(server, q)
    assert not r.flags & dns.flags.TC and len(addresses(r)) == 50


async def test_udp_answer_fits_the_clients_edns_size(server):
    q = dns.message.make_query("fifty.default.svc.cluster.local", "A", use_edns=0, payload=1232)
    wire = await raw_udp(server.port, q.to_wire())
    assert wire is not None and 512 < len(wire) <= 1232
    r = dns.message.from_wire(wire)
    assert not r.flags & dns.flags.TC and len(addresses(r)) == 50
    # A client offering 4096 still gets at most 1232 bytes over UDP (no IP fragments).
    q = dns.message.make_query("many.default.svc.cluster.local", "A", use_edns=0, payload=4096)
    wire = await raw_udp(server.port, q.to_wire())
    assert wire is not None and len(wire) <= 1232
    assert dns.message.from_wire(wire).flags & dns.flags.TC
    assert len(addresses(await tcp(server, q))) == 150


# -- bad input ----------------------------------------------------------------------------------------


async def test_malformed_udp_packets_are_dropped_and_the_server_keeps_answering(server):
    good = dns.message.make_query("web.default.svc.cluster.local", "A")
    wire = good.to_wire()
    response = bytearray(wire)
    response[2] |= 0x80
    junk = [b"", b"\x00", b"\xff" * 11, wire[:20], wire[:12] + b"\x3f" + b"a" * 10,
            wire[:4] + b"\x00\x05" + wire[6:],  # five questions announced, one there
            b"\x12\x34" + bytes(range(200)),
            # A response (QR set) is never answered: two servers must not bounce replies forever.
            bytes(response)]

    def run() -> list[bytes]:
        replies = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            for packet in [*junk, wire]:
                s.sendto(packet, (HOST, server.port))
            # Everything is answered in order: once the good query's reply is in, a reply
            # to the junk would have come before it (or just after, hence the short wait).
            try:
                while True:
                    replies.append(s.recv(65535))
                    s.settimeout(0.2)
            except TimeoutError:
                pass
        return replies

    replies = await asyncio.to_thread(run)
    assert len(replies) == 1
    reply = dns.message.from_wire(replies[0])
    assert reply.id == good.id and addresses(reply) == ["10.96.0.10"]


async def test_malformed_tcp_message_gets_formerr_and_the_connection_stays_usable(server):
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        junk = b"\xab\xcd" + b"\x01\x00\x00\x01" + b"\xff" * 20
        writer.write(struct.pack("!H", len(junk)) + junk)
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        reply = await reader.readexactly(size)
        assert reply[:2] == b"\xab\xcd" and reply[2] & 0x80 and reply[3] & 0xF == dns.rcode.FORMERR
        q = dns.message.make_query("web.default.svc.cluster.local", "A")
        writer.write(q.to_wire(prepend_length=True))
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        r = dns.message.from_wire(await reader.readexactly(size))
        assert r.id == q.id and addresses(r) == ["10.96.0.10"]
    finally:
        writer.close()


async def test_unsupported_requests(server):
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    assert (await udp(server, q)).rcode() == dns.rcode.NOTIMP
    # Two questions in one message.
    q = dns.message.make_query("web.default.svc.cluster.local", "A")
    q.question.append(dns.message.make_query("web.default.svc.cluster.local", "AAAA").question[0])
    assert (await udp(server, q)).rcode() == dns.rcode.FORMERR
    # EDNS version 1.
    q = dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=1)
    assert (await udp(server, q)).rcode() == dns.rcode.BADVERS
    # The cluster zone in another class, and zone transfers.
    q = dns.message.make_query("web.default.svc.cluster.local", "A", rdclass=dns.rdataclass.CH)
    assert (await udp(server, q)).rcode() == dns.rcode.REFUSED
    q = dns.message.make_query("cluster.local", "AXFR")
    assert (await tcp(server, q)).rcode() == dns.rcode.REFUSED


# -- forwarding -------------------------------------------------------------------------------------


async def test_outside_the_zone_without_upstreams_is_servfail(server):
    r = await udp(server, dns.message.make_query("example.com", "A"))
    assert r.rcode() == dns.rcode.SERVFAIL and not r.flags & dns.flags.AA


async def test_unreachable_and_silent_upstreams_give_servfail():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((HOST, 0))
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind((HOST, 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: the query gets ICMP port unreachable
    srv = DnsServer(cluster_records(), HOST, 0, upstreams=[f"{HOST}:{closed_port}", silent.getsockname()],
                    forward_timeout=0.6)
    await srv.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await udp(srv, dns.message.make_query("example.com", "A"))
        assert r.rcode() == dns.rcode.SERVFAIL
        assert loop.time() - started < 2.0
        # The cluster zone does not depend on the upstreams.
        assert addresses(await udp(srv, dns.message.make_query("web.default.svc.cluster.local", "A"))) == [
            "10.96.0.10"]
    finally:
        await srv.stop()
        silent.close()


@pytest.fixture
async def with_upstream() -> AsyncIterator[tuple[DnsServer, DnsServer]]:
    """A server for cluster.local forwarding to a second server for example.test."""
    upstream_records = ClusterRecords("example.test")
    upstream_records.upsert_service(service("web", ips=["192.0.2.7"]))
    upstream = DnsServer(upstream_records, HOST, 0, upstreams=[])
    await upstream.start()
    records = cluster_records()
    records.upsert_service(service("ext", type="ExternalName", externalName="web.default.svc.example.test"))
    records.upsert_service(service("gone", type="ExternalName", externalName="nope.default.svc.example.test"))
    srv = DnsServer(records, HOST, 0, upstreams=[f"{HOST}:{upstream.port}"])
    await srv.start()
    yield srv, upstream
    await srv.stop()
    await upstream.stop()


@pytest.mark.parametrize("transport", [udp, tcp])
async def test_names_outside_the_zone_are_forwarded(with_upstream, transport):
    srv, _ = with_upstream
    q = dns.message.make_query("web.default.svc.example.test", "A")
    r = await transport(srv, q)
    assert r.id == q.id and r.rcode() == dns.rcode.NOERROR and addresses(r) == ["192.0.2.7"]
    # The upstream's answer as it gave it: authoritative there.
    assert r.flags & dns.flags.AA
    r = await transport(srv, dns.message.make_query("nope.default.svc.example.test", "A"))
    assert r.rcode() == dns.rcode.NXDOMAIN
    # The cluster zone is still answered here.
    r = await transport(srv, dns.message.make_query("web.default.svc.cluster.local", "A"))
    assert addresses(r) == ["10.96.0.10"] and r.flags & dns.flags.RA


async def test_external_name_is_followed_through_the_upstream(with_upstream):
    srv, _ = with_upstream
    r = await udp(srv, dns.message.make_query("ext.default.svc.cluster.local", "A"))
    assert r.rcode() == dns.rcode.NOERROR
    assert [rrset.to_text() for rrset in r.answer] == [
        "ext.default.svc.cluster.local. 5 IN CNAME web.default.svc.example.test.",
        "web.default.svc.example.test. 5 IN A 192.0.2.7"]
    r = await udp(srv, dns.message.make_query("gone.default.svc.cluster.local", "A"))
    assert r.rcode() == dns.rcode.NXDOMAIN and [rrset.rdtype for rrset in r.answer] == [T.CNAME]


async def test_upstream_reply_is_cut_to_the_clients_size(with_upstream):
    srv, upstream = with_upstream
    svc, eps = headless_with("many", 150)
    upstream.records.upsert_service(svc)
    upstream.records.upsert_endpoint_slice(eps)
    q = dns.message.make_query("many.default.svc.example.test", "A", use_edns=False)
    wire = await raw_udp(srv.port, q.to_wire())
    assert wire is not None and len(wire) <= 512 and dns.message.from_wire(wire).flags & dns.flags.TC
    assert len(addresses(await tcp(srv, q))) == 150


def test_upstreams_from_resolv_conf_and_text(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch example.com\nnameserver 10.0.0.2\nnameserver fd00::53\noptions ndots:5\n")
    assert read_resolv_conf(str(conf)) == [("10.0.0.2", 53), ("fd00::53", 53)]
    assert read_resolv_conf(str(tmp_path / "missing")) == []
    assert parse_upstream("1.1.1.1") == ("1.1.1.1", 53)
    assert parse_upstream("1.1.1.1:5353") == ("1.1.1.1", 5353)
    assert parse_upstream("[::1]:5353") == ("::1", 5353)
    assert parse_upstream("fd00::53") == ("fd00::53", 53)


def test_own_address_is_not_an_upstream():
    assert is_own_address("127.0.0.1", 53, "127.0.0.1", 53)
    assert not is_own_address("127.0.0.1", 5353, "127.0.0.1", 53)
    assert not is_own_address("127.0.0.2", 53, "127.0.0.1", 53)
    # Bound to every address: loopback and the host's own addresses are this server.
    assert is_own_address("127.0.0.53", 53, "0.0.0.0", 53)
    assert not is_own_address("192.0.2.1", 53, "0.0.0.0", 53)


def _port_free_for_udp_and_tcp() -> int:
    # A free UDP port may have its TCP twin taken by another test's connection.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            udp.bind((HOST, 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind((HOST, port))
            except OSError:
                continue
            return port
    raise AssertionError("no port free for both UDP and TCP")


async def test_own_address_is_dropped_from_the_upstreams():
    port = _port_free_for_udp_and_tcp()
    srv = DnsServer(ClusterRecords(), HOST, port, upstreams=[f"{HOST}:{port}", "192.0.2.53"])
    await srv.start()
    try:
        assert srv.port == port and srv.upstreams == [("192.0.2.53", 53)]
    finally:
        await srv.stop()


async def test_stop_releases_the_port(server):
    port = server.port
    await server.stop()
    again = DnsServer(ClusterRecords(), HOST, port, upstreams=[])
    await again.start()
    await again.stop()


# -- wiring to informers --------------------------------------------------------------------------------


async def test_informer_events_feed_the_records():
    records = ClusterRecords()
    factory = InformerFactory(client=None)  # type: ignore[arg-type] - nothing is listed or watched
    attach_informers(records, factory)
    services = factory.informer(SERVICES)
    slices = factory.informer(ENDPOINTSLICES)
    pods = factory.informer(PODS)
    name = dns.name.from_text("web.default.svc.cluster.local.")

    services._upsert(service("web", ips=["10.96.0.10"]))
    assert [rd.to_text() for rd in records.answer(name, T.A).answer[0]] == ["10.96.0.10"]
    updated = service("web", ips=["10.96.0.11"])
    updated["metadata"]["resourceVersion"] = "2"
    services._upsert(updated)
    assert [rd.to_text() for rd in records.answer(name, T.A).answer[0]] == ["10.96.0.11"]
    services._delete(updated)
    assert records.answer(name, T.A).rcode == dns.rcode.NXDOMAIN

    svc, eps = headless_with("db", 2)
    services._upsert(svc)
    slices._upsert(eps)
    db = records.answer(dns.name.from_text("db.default.svc.cluster.local."), T.A)
    assert sorted(rd.to_text() for rd in db.answer[0]) == ["10.244.0.1", "10.244.0.2"]

    pods._upsert(pod_dns_view({"metadata": {"name": "p", "namespace": "default", "resourceVersion": "1",
                                            "labels": {"big": "x"}},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                               "status": {"phase": "Running", "podIP": "10.244.3.3",
                                          "podIPs": [{"ip": "10.244.3.3"}]}}))
    assert records.answer(dns.name.from_text("10-244-3-3.default.pod.cluster.local."), T.A).answer


def test_pod_view_keeps_only_what_dns_reads():
    view = pod_dns_view({"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7", "labels": {"a": "b"}},
                         "spec": {"containers": []},
                         "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                                    "conditions": []}})
    assert view == {"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7"},
                    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]}}


def test_no_pod_informer_unless_pods_are_verified():
    factory = InformerFactory(client=None)  # type: ignore[arg-type]
    attach_informers(ClusterRecords(pod_mode="insecure"), factory)
    assert {key[0] for key in factory._informers} == {SERVICES, ENDPOINTSLICES}
