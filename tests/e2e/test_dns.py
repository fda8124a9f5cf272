"""The cluster DNS against a real `kyb server`: informers on Services, EndpointSlices
and Pods feed its records through the API, and its answers follow what is created,
changed and deleted there. No node is needed: addresses come from the API alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype as T

from kybernetes.api.errors import ApiError
from kybernetes.client.api import ApiClient
from kybernetes.client.informer import InformerFactory
from kybernetes.client.resources import ENDPOINTSLICES, NAMESPACES, PODS, SERVICES
from kybernetes.dns.records import ClusterRecords
from kybernetes.dns.server import DnsServer, attach_informers, pod_dns_view

NS = "dns-e2e"
HOST = "127.0.0.1"


async def query(port: int, name: str, qtype: str = "A") -> dns.message.Message:
    return await asyncio.to_thread(dns.query.udp, dns.message.make_query(name, qtype), HOST, timeout=2.0, port=port)


async def eventually(port: int, name: str, check: Callable[[dns.message.Message], bool], qtype: str = "A",
                     timeout: float = 15.0) -> dns.message.Message:
    """The first answer to (name, qtype) that passes `check`: informers are quick, not instant."""
    deadline = time.monotonic() + timeout
    while True:
        r = await query(port, name, qtype)
        if check(r):
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} {qtype}: still {dns.rcode.to_text(r.rcode())} {r.answer}")
        await asyncio.sleep(0.1)


def rdatas(r: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


async def create_retrying(client: ApiClient, res: Any, obj: dict[str, Any]) -> dict[str, Any]:
    # A new namespace's default ServiceAccount, which pods need, comes from a controller.
    for _ in range(100):
        try:
            return await client.create(res, NS, obj)
        except ApiError as e:
            if e.code not in (403, 404, 409, 422, 500):
                raise
            last = e
        await asyncio.sleep(0.1)
    raise last


async def test_cluster_dns_follows_the_api(server):
    client = await ApiClient.from_kubeconfig(server.kubeconfig)
    records = ClusterRecords(pod_mode="verified")
    factory = InformerFactory(client, transforms={PODS: pod_dns_view})
    attach_informers(records, factory)
    server = DnsServer(records, HOST, 0, upstreams=[])
    try:
        await client.create(NAMESPACES, None, {"metadata": {"name": NS}})
        await factory.start()
        await factory.wait_synced(10)
        await server.start()
        port = server.port
        zone = f"{NS}.svc.cluster.local"

        web = await client.create(SERVICES, NS, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        ip = web["spec"]["clusterIP"]
        r = await eventually(port, f"web.{zone}", lambda r: bool(r.answer))
        assert rdatas(r) == [ip] and r.answer[0].ttl == 5
        r = await query(port, f"_http._tcp.web.{zone}", "SRV")
        assert rdatas(r) == [f"0 100 80 web.{zone}."]

        # A headless Service whose endpoints are written by hand, as for a selectorless Service.
        await client.create(SERVICES, NS, {"metadata": {"name": "db"}, "spec": {
            "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}})
        await client.create(ENDPOINTSLICES, NS, {
            "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.5.1"], "hostname": "db-0", "conditions": {"ready": True}},
                          {"addresses": ["10.244.5.2"], "conditions": {"ready": False}}]})
        r = await eventually(port, f"db.{zone}", lambda r: bool(r.answer))
        assert rdatas(r) == ["10.244.5.1"]
        assert rdatas(await query(port, f"db-0.db.{zone}")) == ["10.244.5.1"]
        assert rdatas(await query(port, f"_pg._tcp.db.{zone}", "SRV")) == [f"0 100 5432 db-0.db.{zone}."]

        await client.create(SERVICES, NS, {"metadata": {"name": "ext"}, "spec": {
            "type": "ExternalName", "externalName": f"web.{zone}"}})
        r = await eventually(port, f"ext.{zone}", lambda r: bool(r.answer))
        assert [rrset.rdtype for rrset in r.answer] == [T.CNAME, T.A] and rdatas(r) == [ip, f"web.{zone}."]

        await create_retrying(client, PODS, {"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "busybox:1.35"}]}})
        await client.patch(PODS, NS, "p", {"status": {"podIP": "10.244.6.6", "podIPs": [{"ip": "10.244.6.6"}]}},
                           subresource="status")
        r = await eventually(port, f"10-244-6-6.{NS}.pod.cluster.local", lambda r: bool(r.answer))
        assert rdatas(r) == ["10.244.6.6"]

        await client.delete(SERVICES, NS, "web")
        await eventually(port, f"web.{zone}", lambda r: r.rcode() == dns.rcode.NXDOMAIN)
        await client.delete(ENDPOINTSLICES, NS, "db-1")
        r = await eventually(port, f"db.{zone}", lambda r: not r.answer)
        assert r.rcode() == dns.rcode.NOERROR
    finally:
        await server.stop()
        await factory.stop()
        try:
            await client.delete(NAMESPACES, None, NS)
        except ApiError:
            pass
        await client.close()
