"""How the API server dials node agents and workloads without becoming a confused deputy.

Owns the rules upstream added after CVE-2020-8559 and CVE-2022-3294, for every call the
server makes on a client's behalf (pods/log, exec, attach, port-forward and the proxy
subresources):

* the address: a bare IP or DNS name (stored addresses are validated, `host_problem`),
  every address it resolves to proxyable (not loopback, link-local, unspecified,
  multicast), and never the API server's own listening endpoint (`refusal`);
* the agent's identity: its serving certificate must chain to the cluster CA, name the
  node (the TLS host name the call sends is the node's name, not its address) and
  belong to that node (subject `system:node:<name>` in `system:nodes`, as the
  `kubernetes.io/kubelet-serving` signer issues it) -- checked during the handshake,
  before any byte of the request leaves (`AgentIdentity`);
* redirects: never followed (`refuse_redirects` aborts any a call would follow).

The decisions are pure functions; `AgentDialer` is the shell holding the TLS context
and the agent session.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.x509.oid import NameOID

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.proxying import NOT_ALLOWED, agent_endpoint, is_proxyable_ip

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

Resolve = Callable[[str], Awaitable[list[str]]]
# An endpoint the API server listens on: (address, port) of the socket a request came in on.
Endpoint = tuple[str, int]


class RedirectRefused(aiohttp.ClientError):
    """A backend answered with a redirect that a call would have followed."""


class AgentIdentityError(aiohttp.ClientError):
    """The peer's serving certificate is not its node's (see `node_identity_problem`)."""


@dataclass(frozen=True)
class AgentTarget:
    """Where a node's agent is: `node` is also the name its certificate must carry."""

    node: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# -- decisions -----------------------------------------------------------------------------


def is_local_ip(ip: str) -> bool:
    """Whether `ip` is an address of this host: the kernel then routes a datagram to it
    from that very address (no packet is sent by a UDP connect)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if addr.is_loopback or addr.is_unspecified:
        return True
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((ip, 9))
            return ipaddress.ip_address(s.getsockname()[0]) == addr
    except OSError:
        return False


def refusal(addresses: list[str], port: int | None, own: Endpoint | None,
            local: Callable[[str], bool] = is_local_ip) -> str | None:
    """Why the server must not dial `port` at any of `addresses` (None: it may): an
    address that is not proxyable, or the server's own endpoint (its port on one of its
    own addresses)."""
    if not addresses:
        return NOT_ALLOWED
    for a in addresses:
        if not is_proxyable_ip(a):
            return NOT_ALLOWED
        if own is not None and port == own[1] and (a == own[0] or local(a)):
            return NOT_ALLOWED
    return None


def node_identity_problem(cert: x509.Certificate, node: str) -> str | None:
    """Why `cert` (already verified against the cluster CA for host name `node`) is not
    the serving certificate of node `node`'s agent; None when it is."""
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if cns != [NODE_USER_PREFIX + node] or NODES_GROUP not in orgs:
        return (f"the serving certificate of {node!r} belongs to {cns[0] if cns else 'nobody'!r}, "
                f"not to {NODE_USER_PREFIX + node!r}")
    return None


def agent_target(node_name: str, node: dict[str, Any] | None) -> AgentTarget:
    """The agent of a stored Node, or the Status the client gets."""
    if node is None:
        raise ApiError(503, "ServiceUnavailable", f"node {node_name} is not registered")
    found = agent_endpoint(node)
    if found is None:
        raise ApiError(503, "ServiceUnavailable", f"node {node_name} has no address")
    return AgentTarget(node_name, found[0], found[1])


def request_endpoint(transport: Any) -> Endpoint | None:
    """The API server's own (address, port) a request came in on."""
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return None


# -- the shell -----------------------------------------------------------------------------


class AgentIdentity(aiohttp.Fingerprint):
    """Checks, in aiohttp's connection set-up (its certificate-pinning seam, run right after
    the handshake and before the request is written), that the peer is the agent of the
    node the call named as its TLS host name. The chain and host name are verified by the
    SSL context already."""

    def __init__(self) -> None:  # no digest: nothing is pinned
        pass

    def check(self, transport: asyncio.Transport) -> None:
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is None:
            return
        node = sslobj.server_hostname or ""
        der = sslobj.getpeercert(binary_form=True)
        problem = "no serving certificate" if not der else node_identity_problem(
            x509.load_der_x509_certificate(der), node)
        if problem is not None:
            transport.close()
            raise AgentIdentityError(problem)


async def refuse_redirects(session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
    raise RedirectRefused(f"the backend redirected to {params.response.headers.get('Location', '')!r}; "
                          "redirects are not followed")


def no_redirects() -> aiohttp.TraceConfig:
    """A trace that aborts a call about to follow a redirect (WebSocket handshakes follow
    them and have no switch to turn that off)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(refuse_redirects)
    return trace


async def resolve_host(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class AgentDialer:
    """The API server's calls to node agents: one session whose every connection must
    prove the agent's identity, with the server's agent client certificate."""

    def __init__(self, tls: ssl.SSLContext | None, resolve: Resolve = resolve_host,
                 local: Callable[[str], bool] = is_local_ip) -> None:
        self.tls = tls
        self._resolve = resolve
        self._local = local
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=AgentIdentity()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[no_redirects()])
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def tls_options(self, node: str) -> dict[str, Any]:
        """The keyword arguments of a call to `node`'s agent: the verifying context, the
        node's name as the TLS host name, no redirects."""
        if self.tls is None:
            raise ApiError(503, "ServiceUnavailable", "this server has no credentials for node agents")
        return {"ssl": self.tls, "server_hostname": node}

    async def check(self, host: str, port: int | None, own: Endpoint | None) -> list[str]:
        """The addresses of `host`; 400 "address not allowed" unless every one may be dialled."""
        try:
            ipaddress.ip_address(host)
            addresses = [host]
        except ValueError:
            try:
                addresses = await self._resolve(host)
            except OSError as e:
                raise ApiError.bad_request(f"lookup {host}: {e}") from None
            if not addresses:
                raise ApiError.bad_request(f"no addresses for hostname {host}") from None
        problem = refusal(addresses, port, own, self._local)
        if problem is not None:
            raise ApiError.bad_request(problem)
        return addresses

    async def target(self, node_name: str, node: dict[str, Any] | None, own: Endpoint | None) -> AgentTarget:
        """The agent of `node_name`, its address checked."""
        found = agent_target(node_name, node)
        await self.check(found.host, found.port, own)
        return found
