"""Where a proxy subresource request goes: `pods/proxy`, `services/proxy`, `nodes/proxy`.

The name segment of a proxy URL is `NAME`, `NAME:PORT` or `SCHEME:NAME:PORT` (scheme
http or https, port a number or a port name). From it and the stored objects, each
kind's strategy picks one backend address, as kube-apiserver's `ResourceLocation`s do:

* a pod: its first pod IP, at the port asked for (a number, or a container port's
  name) or else the first declared container port, or else the scheme's default;
* a service: a ready address of its Endpoints whose pod still has that IP, at the
  endpoint port named like the service port asked for (a service port number names it);
* a node: its agent's address, on the agent's port (dialled with the API server's
  agent client certificate, the agent's serving certificate checked for the node's
  name) unless another port is asked for.

Addresses that are not global unicast (loopback, link-local, unspecified, multicast,
broadcast) are refused: the API server must not become a way into its own host. A
node's stored address must be a bare IP or DNS name (`host_problem`): a port, path or
query smuggled into it (CVE-2022-3294's class) would make the API server send its own
credentials where the node's creator chooses.
Everything here is pure; `Lookup` reads stored objects.
"""

from __future__ import annotations

import ipaddress
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kybernetes.api.errors import ApiError

Obj = dict[str, Any]
# (plural, namespace or None, name) -> the stored object, or None.
Lookup = Callable[[str, str | None, str], Obj | None]
# n -> an index in range(n): where the search over endpoints starts (random upstream).
Chooser = Callable[[int], int]

VALID_SCHEMES = ("", "http", "https")
DEFAULT_AGENT_PORT = 10250
NOT_ALLOWED = "address not allowed"


@dataclass(frozen=True)
class ProxyLocation:
    """One backend: scheme, host (an IP, or a node's host name) and port (None: the
    scheme's default). `agent`: the node agent's own API, dialled with the server's
    agent client credentials; any other backend gets none."""

    scheme: str
    host: str
    port: int | None = None
    agent: bool = False
    # The node whose agent this is: the name its serving certificate must carry.
    node: str = ""
    # The checked address a host name resolved to, dialled instead of resolving again.
    address: str = ""

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def dial_netloc(self) -> str:
        if not self.address:
            return self.netloc
        host = f"[{self.address}]" if ":" in self.address else self.address
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class ProxyId:
    """The name segment of a proxy URL, split."""

    scheme: str
    name: str
    port: str


def split_scheme_name_port(segment: str, kind: str) -> ProxyId:
    """`NAME`, `NAME:PORT` or `SCHEME:NAME:PORT`; 400 "invalid <kind> request" otherwise."""
    parts = segment.split(":")
    if len(parts) == 1:
        pid = ProxyId("", parts[0], "")
    elif len(parts) == 2:
        pid = ProxyId("", parts[0], parts[1])
    elif len(parts) == 3:
        pid = ProxyId(parts[0], parts[1], parts[2])
    else:
        raise ApiError.bad_request(f'invalid {kind} request "{segment}"')
    if not pid.name or pid.scheme not in VALID_SCHEMES:
        raise ApiError.bad_request(f'invalid {kind} request "{segment}"')
    return pid


def is_proxyable_ip(text: str) -> bool:
    """Whether `text` is an IP address the server may dial for a client: global unicast
    in Go's sense (private ranges included; loopback, link-local, unspecified,
    multicast and the IPv4 broadcast address excluded)."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return False
    return not (ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_multicast)


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
DNS_MESSAGE = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
               "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
               "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def is_ip(text: str) -> bool:
    """A bare IPv4 or IPv6 address (no brackets, zone or port)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def is_dns_name(text: str) -> bool:
    """An RFC 1123 subdomain, letters in either case (host names are reported as the
    host spells them)."""
    low = text.lower()
    return 0 < len(low) <= 253 and all(_DNS_LABEL.match(label) and len(label) <= 63 for label in low.split("."))


def host_problem(address_type: str, address: str) -> str | None:
    """Why `address` cannot be a node address of `address_type` (None: it can). IP
    types take an IP; the others an IP or a DNS name. Never a port, path or query."""
    if address_type in ("InternalIP", "ExternalIP"):
        return None if is_ip(address) else IP_MESSAGE
    return None if is_ip(address) or is_dns_name(address) else DNS_MESSAGE


def _port_number(text: str) -> int | None:
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    return None


def _unreachable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip", "") for p in _dicts(status.get("podIPs")) if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


# -- pods ----------------------------------------------------------------------------------


def pod_location(namespace: str | None, segment: str, lookup: Lookup) -> ProxyLocation:
    pid = split_scheme_name_port(segment, "pod")
    pod = lookup("pods", namespace, pid.name)
    if pod is None:
        raise ApiError.not_found("", "pods", pid.name)
    containers = _dicts((pod.get("spec") or {}).get("containers"))
    port: int | None = None
    if pid.port == "":
        for c in containers:
            declared = _dicts(c.get("ports"))
            if declared and isinstance(declared[0].get("containerPort"), int):
                port = declared[0]["containerPort"]
                break
    elif pid.port.isdigit():
        port = _port_number(pid.port)
        if port is None:
            raise ApiError.bad_request(f'invalid port "{pid.port}" in pod request "{segment}"')
    else:
        named = [p.get("containerPort") for c in containers for p in _dicts(c.get("ports"))
                 if p.get("name") == pid.port]
        if not named or not isinstance(named[0], int):
            raise _unreachable(f'error trying to reach service: pod "{pid.name}" has no container port '
                               f'named "{pid.port}"')
        port = named[0]
    ips = _pod_ips(pod)
    if not ips or not is_proxyable_ip(ips[0]):
        raise ApiError.bad_request(NOT_ALLOWED)
    return ProxyLocation(pid.scheme or "http", ips[0], port)


# -- services ------------------------------------------------------------------------------


def _address_is_valid(addr: Obj, namespace: str | None, lookup: Lookup) -> bool:
    """An endpoint address is dialled only if it names a pod of the service's namespace
    that still has that IP (as upstream's isValidAddress), and is a proxyable IP."""
    ip = addr.get("ip") or ""
    ref = addr.get("targetRef")
    if not isinstance(ref, dict) or ref.get("kind", "Pod") != "Pod" or not is_proxyable_ip(ip):
        return False
    if (ref.get("namespace") or namespace) != namespace:
        return False
    pod = lookup("pods", namespace, ref.get("name") or "")
    return pod is not None and ip in _pod_ips(pod)


def service_location(namespace: str | None, segment: str, lookup: Lookup,
                     choose: Chooser = random.randrange) -> ProxyLocation:
    pid = split_scheme_name_port(segment, "service")
    svc = lookup("services", namespace, pid.name)
    if svc is None:
        raise ApiError.not_found("", "services", pid.name)
    port_name = pid.port
    if pid.port.isdigit():
        wanted = int(pid.port)
        names = [p.get("name") or "" for p in _dicts((svc.get("spec") or {}).get("ports")) if p.get("port") == wanted]
        if not names:
            raise _unreachable(f'no service port {wanted} found for service "{pid.name}"')
        port_name = names[0]
    eps = lookup("endpoints", namespace, pid.name)
    if eps is None:
        raise ApiError.not_found("", "endpoints", pid.name)
    subsets = _dicts(eps.get("subsets"))
    if not subsets:
        raise _unreachable(f'no endpoints available for service "{pid.name}"')
    first = choose(len(subsets))
    for i in range(len(subsets)):
        subset = subsets[(first + i) % len(subsets)]
        addresses = _dicts(subset.get("addresses"))
        if not addresses:
            continue
        for ep_port in _dicts(subset.get("ports")):
            if (ep_port.get("name") or "") != port_name or not isinstance(ep_port.get("port"), int):
                continue
            start = choose(len(addresses))
            for j in range(len(addresses)):
                addr = addresses[(start + j) % len(addresses)]
                if _address_is_valid(addr, namespace, lookup):
                    return ProxyLocation(pid.scheme or "http", addr["ip"], ep_port["port"])
    raise _unreachable(f'no endpoints available for service "{segment}"')


# -- nodes ---------------------------------------------------------------------------------


def agent_endpoint(node: Obj) -> tuple[str, int] | None:
    """The node agent's address and port from a Node's status (None: no address). An
    address stored before addresses were validated, that is not a bare IP or DNS name,
    is skipped: it is never dialled."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or DEFAULT_AGENT_PORT
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return None
    for kind in ("InternalIP", "ExternalIP", "Hostname"):
        for addr in _dicts(status.get("addresses")):
            value = addr.get("address")
            if addr.get("type") == kind and isinstance(value, str) and value and host_problem(kind, value) is None:
                return value, port
    return None


def node_location(segment: str, lookup: Lookup) -> ProxyLocation:
    """The node's agent, or another port of the node's address (plain HTTP unless asked).
    A host name is checked by the caller once resolved (`is_proxyable_ip` on each address)."""
    pid = split_scheme_name_port(segment, "node")
    node = lookup("nodes", None, pid.name)
    if node is None:
        raise ApiError.not_found("", "nodes", pid.name)
    found = agent_endpoint(node)
    if found is None:
        raise _unreachable(f"node {pid.name} has no address")
    host, agent_port = found
    if pid.port in ("", str(agent_port)):
        return ProxyLocation("https", host, agent_port, agent=True, node=pid.name)
    port = _port_number(pid.port)
    if port is None:
        raise ApiError.bad_request(f'invalid port "{pid.port}" in node request "{segment}"')
    return ProxyLocation(pid.scheme or "http", host, port)
