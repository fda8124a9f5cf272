"""Cluster DNS on a node: every node agent answers DNS on its own address and
publishes itself as an endpoint of the `kube-system/kube-dns` Service, whose
cluster IP (10.43.0.10 by default) pods have in their resolv.conf. The node's
service proxy sends those queries to one of the published servers, so DNS keeps
working while any node does, and there is no DNS pod to schedule.

The endpoint is an EndpointSlice of its own per node (`kube-dns-<node>`), marked as
managed by the node's DNS so the EndpointSlice controller leaves it alone; it is
removed when the DNS stops, and owned by the Node, so it goes with a deleted node.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kybernetes.api.labels import MANAGED_BY_LABEL, NODE_DNS_MANAGER, SERVICE_NAME_LABEL
from kybernetes.client import ApiError, Client, Informers
from kybernetes.client.resources import ENDPOINTSLICES, NODES, SERVICES
from kybernetes.dns.records import DEFAULT_ZONE, ClusterRecords
from kybernetes.dns.server import DnsServer, attach_informers

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SERVICE = "kube-dns"
REPUBLISH_SECONDS = 60.0


def endpoint_slice(node: str, address: str, port: int, node_uid: str = "") -> dict[str, Any]:
    """The EndpointSlice that names this node's DNS server as a kube-dns endpoint. Owned
    by the Node when its uid is known, so that deleting the node removes it."""
    owners = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}] if node_uid else []
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{SERVICE}-{node}", "namespace": NAMESPACE,
                     "labels": {SERVICE_NAME_LABEL: SERVICE, MANAGED_BY_LABEL: NODE_DNS_MANAGER},
                     **({"ownerReferences": owners} if owners else {})},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "nodeName": node,
                       "conditions": {"ready": True, "serving": True, "terminating": False}}],
        "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
    }


async def cluster_dns_ip(client: Client) -> str:
    """The kube-dns Service's cluster IP, or "" when there is none (yet)."""
    try:
        svc = await client.get(SERVICES, NAMESPACE, SERVICE)
    except ApiError:
        return ""
    ip = (svc.get("spec") or {}).get("clusterIP") or ""
    return "" if ip == "None" else ip


def _same_endpoint(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the stored slice already says what this node would publish. Its
    conditions are not compared: the node-DNS controller keeps them in step with the
    node's readiness."""
    def strip(s: dict[str, Any]) -> Any:
        return ([{k: v for k, v in ep.items() if k != "conditions"} for ep in s.get("endpoints") or []],
                s.get("ports"), (s.get("metadata") or {}).get("ownerReferences"))
    return strip(current) == strip(wanted)


async def _publish(client: Client, body: dict[str, Any]) -> None:
    name = body["metadata"]["name"]
    try:
        await client.create(ENDPOINTSLICES, NAMESPACE, body, field_manager="kyb-node-dns")
        return
    except ApiError as e:
        if e.code != 409:
            raise
    current = await client.get(ENDPOINTSLICES, NAMESPACE, name)
    if not _same_endpoint(current, body):
        await client.patch(ENDPOINTSLICES, NAMESPACE, name, body, field_manager="kyb-node-dns")


async def run_node_dns(client: Client, factory: Informers, node: str, address: str, port: int = 53,
                       zone: str = DEFAULT_ZONE) -> None:
    """Serve DNS on `address:port` from the factory's informers and publish it, until
    cancelled. A port that cannot be bound (another DNS server on the host) is
    logged and leaves the node without cluster DNS rather than without pods."""
    records = ClusterRecords(zone=zone, pod_mode="insecure")  # the agent does not watch every pod
    attach_informers(records, factory)
    server = DnsServer(records, bind=address, port=port)
    try:
        await server.start()
    except OSError as e:
        log.warning("cluster DNS not started on %s:%d: %s", address, port, e)
        await asyncio.Event().wait()  # the node goes on without it
    log.info("cluster DNS on %s:%d", address, server.port)
    body = endpoint_slice(node, address, server.port)
    try:
        while True:
            if "ownerReferences" not in body["metadata"]:
                try:
                    uid = ((await client.get(NODES, None, node)).get("metadata") or {}).get("uid", "")
                    body = endpoint_slice(node, address, server.port, uid)
                except ApiError as e:
                    # The agent registers the Node at the same time: the slice goes out
                    # without an owner now and gets one on the next round.
                    log.debug("node %s not readable yet (%s); DNS endpoint published without an owner", node, e)
            try:
                await _publish(client, body)
            except ApiError as e:
                log.warning("cannot publish the DNS endpoint: %s", e)
            owned = "ownerReferences" in body["metadata"]
            await asyncio.sleep(REPUBLISH_SECONDS if owned else 2.0)
    finally:
        await server.stop()
        try:
            await asyncio.shield(client.delete(ENDPOINTSLICES, NAMESPACE, body["metadata"]["name"]))
        except (ApiError, OSError, asyncio.CancelledError):
            pass
