"""What the service proxy should program, decided from API objects alone.

`service_ports` turns Services and EndpointSlices (plain dicts, as the informers hold
them) into one `ServicePort` per port of each Service: the virtual addresses it
answers on (cluster IPs, node ports, the load-balancer port on the node's addresses)
and the endpoints that may receive each kind of traffic. No I/O here: the renderer
of the packet filter's rules and the tests read the same plan.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.labels import SERVICE_NAME_LABEL

Obj = dict[str, Any]

DEFAULT_AFFINITY_SECONDS = 10800
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""


@dataclass
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # nft's spelling: tcp, udp, sctp
    port: int
    cluster_ips: list[str] = field(default_factory=list)
    node_port: int = 0
    # type LoadBalancer without a cloud: the service port opened on the node's own
    # addresses (what k3s's ServiceLB does), plus any ingress IPs in its status.
    load_balancer: bool = False
    ingress_ips: list[str] = field(default_factory=list)
    affinity_seconds: int = 0  # 0: no session affinity
    external_local: bool = False
    internal_local: bool = False
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name or self.port}/{self.protocol}"

    @property
    def external(self) -> bool:
        return bool(self.node_port or self.load_balancer or self.ingress_ips)

    def internal_endpoints(self, node: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.node == node] if self.internal_local else self.endpoints

    def external_endpoints(self, node: str) -> list[Endpoint]:
        return [e for e in self.endpoints if e.node == node] if self.external_local else self.endpoints


def short_id(*parts: object) -> str:
    """A stable 12-character name part for chains and sets (nft names stay short)."""
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:12]


def _ipv4(addresses: list[str]) -> list[str]:
    out = []
    for a in addresses:
        try:
            if ipaddress.ip_address(a).version == 4:
                out.append(a)
        except ValueError:
            continue
    return out


def slice_endpoints(slices: list[Obj], port_name: str, protocol: str) -> list[Endpoint]:
    """Endpoints of one service port: ready ones; if none is ready, the serving ones
    that are terminating (so connections drain instead of failing), as kube-proxy."""
    ready: list[Endpoint] = []
    terminating: list[Endpoint] = []
    seen: set[tuple[str, int]] = set()
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        number = next((p.get("port") for p in s.get("ports") or []
                       if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol), None)
        if not number:
            continue
        for ep in s.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            node = ep.get("nodeName") or ""
            for ip in _ipv4(ep.get("addresses") or [])[:1]:
                if (ip, number) in seen:
                    continue
                if cond.get("ready") is not False:
                    ready.append(Endpoint(ip, int(number), node))
                    seen.add((ip, number))
                elif cond.get("serving") and cond.get("terminating"):
                    terminating.append(Endpoint(ip, int(number), node))
    chosen = ready or terminating
    return sorted(chosen, key=lambda e: (e.ip, e.port))


def service_ports(services: list[Obj], slices: list[Obj]) -> list[ServicePort]:
    """Every port of every Service the proxy handles (those with a cluster IP), in a
    stable order."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            by_service.setdefault((meta.get("namespace", ""), owner), []).append(s)
    out: list[ServicePort] = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind == "ExternalName":
            continue
        cluster_ips = _ipv4(spec.get("clusterIPs") or [spec.get("clusterIP") or ""])
        if not cluster_ips:
            continue  # headless, or not allocated yet
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
        ingress = _ipv4([i.get("ip", "") for i in
                         ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []])
        for p in spec.get("ports") or []:
            protocol = p.get("protocol") or "TCP"
            if protocol not in PROTOCOLS or not p.get("port"):
                continue
            out.append(ServicePort(
                namespace=ns, name=name, port_name=p.get("name") or "", protocol=PROTOCOLS[protocol],
                port=int(p["port"]), cluster_ips=cluster_ips,
                node_port=int(p.get("nodePort") or 0) if kind in ("NodePort", "LoadBalancer") else 0,
                load_balancer=kind == "LoadBalancer", ingress_ips=ingress if kind == "LoadBalancer" else [],
                affinity_seconds=affinity,
                external_local=spec.get("externalTrafficPolicy") == "Local",
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                endpoints=slice_endpoints(by_service.get((ns, name), []), p.get("name") or "", protocol)))
    out.sort(key=lambda sp: sp.key)
    return out
