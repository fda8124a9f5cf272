"""The cluster DNS server: UDP and TCP listeners, the DNS wire format, and forwarding.

`DnsServer` answers names in the cluster domain from a `ClusterRecords` index and
forwards every other name, unchanged, to upstream resolvers (those of
/etc/resolv.conf unless given). `attach_informers` keeps the index current from an
informer factory's Services, EndpointSlices (and Pods, when pod names are verified);
`kybernetes.dns.node` runs it on a node.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kybernetes.client.informer import Obj
from kybernetes.client.protocols import Informers
from kybernetes.client.resources import ENDPOINTSLICES, PODS, SERVICES, Resource
from kybernetes.dns.records import ClusterRecords

log = logging.getLogger(__name__)

Upstream = tuple[str, int]

# The largest UDP answer sent, whatever the client offers: the DNS flag day 2020 size,
# which fits any path's MTU unfragmented. Larger answers get TC and are asked again
# over TCP.
UDP_PAYLOAD = 1232
# Replies kept per transport for repeated questions (see DnsServer._cache).
CACHE_SIZE = 10_000
# Without EDNS a client takes at most this much over UDP (RFC 1035).
CLASSIC_UDP_SIZE = 512
_FLAGS_AND_COUNTS = struct.Struct("!HHHHH")
_QR = 0x80  # in the third byte of the header
_TC = 0x02  # likewise
_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_ANSWERED_CLASSES = frozenset({dns.rdataclass.IN, dns.rdataclass.ANY})


# -- upstreams -----------------------------------------------------------------------------------


def parse_upstream(text: str) -> Upstream:
    """`1.1.1.1`, `1.1.1.1:5353`, `::1` or `[::1]:5353` as (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, 53


def read_resolv_conf(path: str = "/etc/resolv.conf") -> list[Upstream]:
    """The nameservers of a resolv.conf, in order; none if it cannot be read."""
    out: list[Upstream] = []
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append((fields[1], 53))
    return out


def is_own_address(host: str, port: int, bind: str, own_port: int) -> bool:
    """Whether (host, port) is this server itself: forwarding there would loop."""
    if port != own_port:
        return False
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
        bound = ipaddress.ip_address(bind.split("%")[0])
    except ValueError:
        return False
    if ip == bound:
        return True
    if not bound.is_unspecified:
        return False
    if ip.is_loopback:
        return True
    # Bound to every address: the upstream is this host if one of its addresses is local,
    # which is exactly when a socket can be bound to it.
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


def _question_end(wire: bytes) -> int:
    """The offset just past the first question of a message, or 0 when it cannot be walked
    (a compressed or cut name)."""
    pos = 12
    while pos < len(wire):
        length = wire[pos]
        if length == 0:
            end = pos + 5
            return end if end <= len(wire) else 0
        if length & 0xC0:
            return 0
        pos += length + 1
    return 0


class _Exchange(asyncio.DatagramProtocol):
    """One UDP query to one upstream: the first reply with our ID and question wins."""

    def __init__(self, query: bytes, question_end: int) -> None:
        self.query = query
        self.question_end = question_end
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The transport of a datagram endpoint (not a DatagramTransport subclass in 3.11).
        cast(asyncio.DatagramTransport, transport).sendto(self.query)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self.reply.done() or len(data) < 12 or data[:2] != self.query[:2] or not data[2] & _QR:
            return
        end = self.question_end
        if end and data[12:end].lower() != self.query[12:end].lower():
            return
        self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


class Forwarder:
    """Sends queries, as they came, to the upstream resolvers in turn: each gets its share
    of `timeout`, and the first that answers wins. Each query goes out with a fresh random
    ID from a fresh socket (a random source port), and the client's ID is put back."""

    def __init__(self, upstreams: Sequence[Upstream], timeout: float = 3.0, max_in_flight: int = 1000) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def query(self, wire: bytes, tcp: bool = False, full: bool = False) -> bytes | None:
        """The upstream reply to `wire`, or None when no upstream answered in time. A
        truncated UDP reply is returned as it is (the client asks again over TCP) unless
        `full`, when it is asked again over TCP here."""
        if not self.upstreams or len(wire) < 12 or self.in_flight >= self.max_in_flight:
            return None
        self.in_flight += 1
        try:
            out = secrets.randbits(16).to_bytes(2, "big") + wire[2:]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            for i, upstream in enumerate(self.upstreams):
                share = (deadline - loop.time()) / (len(self.upstreams) - i)
                if share <= 0:
                    break
                try:
                    async with asyncio.timeout(share):
                        reply = await (self._tcp(upstream, out) if tcp else self._udp(upstream, out))
                        if full and reply[2] & _TC:
                            reply = await self._tcp(upstream, out)
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                    log.debug("upstream %s:%s failed: %r", upstream[0], upstream[1], e)
                    continue
                return wire[:2] + reply[2:]
            return None
        finally:
            self.in_flight -= 1

    async def _udp(self, upstream: Upstream, wire: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Exchange(wire, _question_end(wire)), remote_addr=upstream)
        try:
            return await protocol.reply
        finally:
            transport.close()

    async def _tcp(self, upstream: Upstream, wire: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(upstream[0], upstream[1])
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = await reader.readexactly(size)
                if len(reply) >= 12 and reply[:2] == wire[:2]:
                    return reply
        finally:
            writer.close()


# -- the server ---------------------------------------------------------------------------------


def _error_reply(wire: bytes, rcode: int) -> bytes | None:
    """A bare reply with `rcode` to a message too broken to parse: its ID, opcode and RD
    echoed, no sections. None when not even the ID is there."""
    if len(wire) < 2:
        return None
    first = wire[2] & 0x79 if len(wire) > 2 else 0  # opcode and RD
    flags = ((_QR | first) << 8) | (rcode & 0xF)
    return wire[:2] + _FLAGS_AND_COUNTS.pack(flags, 0, 0, 0, 0)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            reply = self.server.respond(data, tcp=False)
        except Exception:  # noqa: BLE001 - one bad query must not stop the listener
            log.exception("answering a UDP query failed")
            return
        if reply is None:
            return
        if isinstance(reply, bytes):
            if self.transport is not None:
                self.transport.sendto(reply, addr)
            return
        self.server._spawn(self._send_later(reply, addr))

    async def _send_later(self, reply: Awaitable[bytes | None], addr: tuple[str | int, ...]) -> None:
        wire = await reply
        if wire is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier reply (the client went away): nothing to do.
        pass


class DnsServer:
    """A DNS server on `bind`:`port`, UDP and TCP, answering from `records`.

    `bind` is an IP address. Port 0 picks a free port (the same for UDP and TCP); `port` holds it after `start`.
    `upstreams` are "address[:port]" strings or (address, port) pairs; None reads
    /etc/resolv.conf, and an empty list forwards nothing (SERVFAIL outside the zone)."""

    def __init__(self, records: ClusterRecords, bind: str = "0.0.0.0", port: int = 53,
                 upstreams: Iterable[str | Upstream] | None = None, *, forward_timeout: float = 3.0,
                 udp_payload: int = UDP_PAYLOAD, tcp_idle_timeout: float = 10.0,
                 cache_size: int = CACHE_SIZE) -> None:
        self.records = records
        self.bind = bind
        self.port = port
        configured = read_resolv_conf() if upstreams is None else [
            parse_upstream(u) if isinstance(u, str) else (u[0], int(u[1])) for u in upstreams]
        self._configured_upstreams = configured
        self.forwarder = Forwarder([], forward_timeout)
        self.udp_payload = max(CLASSIC_UDP_SIZE, udp_payload)
        self.tcp_idle_timeout = tcp_idle_timeout
        self.cache_size = cache_size
        # Replies by query: the query's bytes after its ID -> the reply's bytes after its ID.
        # Identical bytes are an identical question with identical options (EDNS size, RD,
        # the spelling of the name), so the reply is the same until the records change.
        self._cache: tuple[dict[bytes, bytes], dict[bytes, bytes]] = ({}, {})  # UDP, TCP
        self._cache_generation = records.generation
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_protocol: _UdpProtocol | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: dict[asyncio.StreamWriter, asyncio.Task[None] | None] = {}

    @property
    def upstreams(self) -> list[Upstream]:
        return self.forwarder.upstreams

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(50):
            sock = self._udp_socket(self.port)
            port = sock.getsockname()[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.bind, port, reuse_address=True,
                                                       backlog=1024)
            except OSError:
                sock.close()
                # A free UDP port whose TCP twin is taken: only worth another try when the
                # port was picked for us.
                if self.port != 0 or attempt == 49:
                    raise
                continue
            transport, protocol = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), sock=sock)
            self._udp, self._udp_protocol = transport, protocol
            self.port = port
            break
        self.forwarder.upstreams = [u for u in self._configured_upstreams
                                    if not is_own_address(u[0], u[1], self.bind, self.port)]
        log.info("cluster DNS for %s on %s:%d (udp, tcp), forwarding to %s", self.records.origin, self.bind,
                 self.port, ", ".join(f"{h}:{p}" for h, p in self.upstreams) or "nothing")

    def _udp_socket(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            # A deep receive queue absorbs bursts of queries while the loop is busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            if family == socket.AF_INET6:
                # As asyncio does for the TCP listener: "::" is IPv6 only on both transports.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((self.bind, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            # The socket is closed a loop iteration later: wait, so the port is free on return.
            if self._udp_protocol is not None:
                await self._udp_protocol.closed
            self._udp = self._udp_protocol = None
        if self._tcp is not None:
            self._tcp.close()
            handlers = [task for task in self._connections.values() if task is not None]
            for writer in list(self._connections):
                writer.close()
            # Closed connections end their handlers at the next read; waiting for that
            # (instead of cancelling them) leaves no handler task for the loop to cancel.
            if handlers:
                await asyncio.wait(handlers, timeout=2.0)
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- answering ----------------------------------------------------------------------------------

    def respond(self, wire: bytes, tcp: bool) -> bytes | Awaitable[bytes | None] | None:
        """The reply to one query message: its wire form, an awaitable of it when upstream
        resolvers must be asked, or None when the message gets no reply (a response, or
        garbage over UDP)."""
        if self._cache_generation != self.records.generation:
            self._cache[0].clear()
            self._cache[1].clear()
            self._cache_generation = self.records.generation
        cache = self._cache[tcp]
        hit = cache.get(wire[2:])
        if hit is not None:
            return wire[:2] + hit
        if len(wire) < 12 or wire[2] & _QR:
            return _error_reply(wire, dns.rcode.FORMERR) if tcp and len(wire) < 12 else None
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - any parse failure is the client's malformed message
            return _error_reply(wire, dns.rcode.FORMERR) if tcp else None
        if query.opcode() != dns.opcode.QUERY:
            return _error_reply(wire, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return _error_reply(wire, dns.rcode.FORMERR)
        # What the client can take over UDP; what we send is capped lower still (see UDP_PAYLOAD).
        client_size = max(CLASSIC_UDP_SIZE, query.payload) if query.edns >= 0 else CLASSIC_UDP_SIZE
        limit = 65535 if tcp else min(client_size, self.udp_payload)
        if query.edns > 0:
            response = self._response(query)
            response.set_rcode(dns.rcode.BADVERS)
            return response.to_wire(max_size=limit)
        question = query.question[0]
        if question.rdclass not in _ANSWERED_CLASSES:
            if self.records.in_zone(question.name):
                return self._reply(query, dns.rcode.REFUSED, limit)
            return self._forward(query, wire, tcp, client_size)
        answer = self.records.answer(question.name, question.rdtype)
        if not answer.authoritative:
            return self._forward(query, wire, tcp, client_size)
        if question.rdtype in _REFUSED_TYPES:
            return self._reply(query, dns.rcode.REFUSED, limit)
        response = self._response(query)
        response.flags |= dns.flags.AA
        response.set_rcode(answer.rcode)
        response.answer = list(answer.answer)
        response.authority = list(answer.authority)
        response.additional = list(answer.additional)
        if answer.chase is not None and question.rdtype != dns.rdatatype.CNAME and self.upstreams:
            return self._chase(response, answer.chase, question.rdtype, tcp, limit)
        reply = response.to_wire(max_size=limit, prefer_truncation=True)
        if answer.cacheable and self.cache_size > 0:
            if len(cache) >= self.cache_size:
                # The oldest entry goes (dicts keep insertion order).
                del cache[next(iter(cache))]
            cache[wire[2:]] = reply[2:]
        return reply

    def _response(self, query: dns.message.Message) -> dns.message.Message:
        return dns.message.make_response(query, recursion_available=bool(self.upstreams),
                                         our_payload=self.udp_payload)

    def _reply(self, query: dns.message.Message, rcode: int, limit: int) -> bytes:
        response = self._response(query)
        response.set_rcode(rcode)
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _forward(self, query: dns.message.Message, wire: bytes, tcp: bool, client_size: int) -> bytes | None:
        reply = await self.forwarder.query(wire, tcp=tcp)
        if reply is None:
            return self._reply(query, dns.rcode.SERVFAIL, 65535 if tcp else client_size)
        if not tcp and len(reply) > client_size:
            # An upstream that ignored the size the client offered: cut the reply to fit.
            try:
                return dns.message.from_wire(reply).to_wire(max_size=client_size, prefer_truncation=True)
            except Exception:  # noqa: BLE001 - an upstream's garbage is a failure to answer
                return self._reply(query, dns.rcode.SERVFAIL, client_size)
        return reply

    async def _chase(self, response: dns.message.Message, target: dns.name.Name, qtype: int, tcp: bool,
                     limit: int) -> bytes | None:
        """Complete an ExternalName's CNAME with the target's records from upstream, as a
        recursive resolver would: stub resolvers do not follow CNAMEs themselves."""
        lookup = dns.message.make_query(target, qtype, use_edns=0, payload=self.udp_payload)
        reply = await self.forwarder.query(lookup.to_wire(), tcp=tcp, full=True)
        parsed = None
        if reply is not None:
            try:
                parsed = dns.message.from_wire(reply)
            except Exception:  # noqa: BLE001 - an upstream's garbage is a failure to answer
                parsed = None
        if parsed is None or parsed.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            response.set_rcode(dns.rcode.SERVFAIL)
        else:
            response.set_rcode(parsed.rcode())
            response.answer.extend(parsed.answer)
        # The records came from elsewhere: only the CNAME is ours to vouch for.
        response.flags &= ~dns.flags.AA
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections[writer] = asyncio.current_task()
        try:
            while True:
                try:
                    async with asyncio.timeout(self.tcp_idle_timeout):
                        size = int.from_bytes(await reader.readexactly(2), "big")
                        wire = await reader.readexactly(size)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    reply = self.respond(wire, tcp=True)
                except Exception:  # noqa: BLE001 - one bad query must not stop the connection
                    log.exception("answering a TCP query failed")
                    reply = _error_reply(wire, dns.rcode.SERVFAIL)
                if reply is None:
                    continue
                if isinstance(reply, bytes):
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                else:
                    # Pipelined queries may be answered out of order (RFC 7766): a slow
                    # upstream does not hold up the cluster answers behind it.
                    self._spawn(self._write_later(writer, reply))
        finally:
            self._connections.pop(writer, None)
            writer.close()

    @staticmethod
    async def _write_later(writer: asyncio.StreamWriter, reply: Awaitable[bytes | None]) -> None:
        wire = await reply
        if wire is not None and not writer.is_closing():
            writer.write(len(wire).to_bytes(2, "big") + wire)


# -- wiring to the API server --------------------------------------------------------------------


def pod_dns_view(pod: Obj) -> Obj:
    """The part of a pod the DNS reads (an informer transform): its IPs and phase."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                     "resourceVersion": meta.get("resourceVersion")},
        "status": {"phase": status.get("phase"), "podIP": status.get("podIP"), "podIPs": status.get("podIPs")},
    }


def attach_informers(records: ClusterRecords, factory: Informers) -> None:
    """Feed `records` from the factory's Service and EndpointSlice informers, and its Pod
    informer when pod names are verified against pods."""

    def feed(res: Resource, upsert: Callable[[Obj], None], delete: Callable[[Obj], None]) -> None:
        factory.informer(res).add_handler(on_add=upsert, on_update=lambda _old, new: upsert(new), on_delete=delete)

    feed(SERVICES, records.upsert_service, records.delete_service)
    feed(ENDPOINTSLICES, records.upsert_endpoint_slice, records.delete_endpoint_slice)
    if records.pod_mode == "verified":
        feed(PODS, records.upsert_pod, records.delete_pod)
