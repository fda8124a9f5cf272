"""The pod network across nodes: what this node's kernel needs so that its pods reach every
other node's pods by IP, kept in step with the Node objects (flannel's model).

Two backends:

- `vxlan`: one VXLAN device per node (`kyb.vxlan`, VNI 1, UDP 8472, bound to the node's
  LAN address, MTU = the LAN device's MTU - 50 for the VXLAN/UDP/IP/Ethernet headers). The
  device holds the node's VTEP address: the network address of its pod CIDR as a /32
  (10.42.3.0 for 10.42.3.0/24; the CNI bridge keeps .1), so that traffic the node itself
  sends to other nodes' pods has an address they route back. For every other node with a
  podCIDR and a published VTEP there is
    * a route `podCIDR via <their VTEP IP> dev kyb.vxlan onlink`,
    * a permanent neighbour entry `<their VTEP IP> lladdr <their VTEP MAC> dev kyb.vxlan`,
    * an FDB entry `<their VTEP MAC> dev kyb.vxlan dst <their LAN IP>`,
  and each goes when that node goes (or loses its podCIDR).
- `host-gw`: a plain route `podCIDR via <their LAN IP>` for every other node, for nodes on
  one L2 segment (no encapsulation, full MTU).

Each node publishes, as annotations on its own Node (what flannel keeps under
flannel.alpha.coreos.com/*):
    kybernetes.io/backend-type   vxlan | host-gw
    kybernetes.io/public-ip      the LAN address other nodes send to (tunnel end, gateway)
    kybernetes.io/vtep-mac       the VXLAN device's MAC (vxlan only)
A node without kybernetes.io/public-ip is reached at its InternalIP.

Routes this module adds carry their own routing protocol number (RT_PROTO, "kyb"), so the
ones it no longer wants are found and removed without touching anyone else's; the
neighbour and FDB entries it removes are those on its own device only.

The module is pure planning (`desired`, `diff`, `cluster_cidrs`) plus a thin netlink shell
(`Netlink`, pyroute2) and the loop that joins them to the agent's Node informer
(`OverlayNetwork`). It does not masquerade: agent/egress.py does, and it is told every
node's pod CIDR (`cluster_cidrs`) so that pod-to-pod traffic across nodes keeps its
source address."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Obj = dict[str, Any]

BACKENDS = ("vxlan", "host-gw")
DEVICE = "kyb.vxlan"
VNI = 1
VXLAN_PORT = 8472
# Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
VXLAN_OVERHEAD = 50
# Our routes' rtm_protocol: not one of the numbers /etc/iproute2/rt_protos assigns.
RT_PROTO = 0x4B
ANNOTATION_BACKEND = "kybernetes.io/backend-type"
ANNOTATION_PUBLIC_IP = "kybernetes.io/public-ip"
ANNOTATION_VTEP_MAC = "kybernetes.io/vtep-mac"


# -- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Route:
    dst: str  # a pod CIDR
    gateway: str
    # Through the VXLAN device (onlink: the gateway is no neighbour on any subnet of ours),
    # or, for host-gw, through whichever device reaches the gateway.
    vxlan: bool = False


@dataclass(frozen=True, order=True)
class Neighbour:
    ip: str  # a peer's VTEP address
    mac: str


@dataclass(frozen=True, order=True)
class FdbEntry:
    mac: str  # a peer's VTEP MAC
    dst: str  # the peer's LAN address


@dataclass(frozen=True)
class NetState:
    routes: frozenset[Route] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[FdbEntry] = frozenset()


@dataclass(frozen=True)
class NetDiff:
    add_routes: tuple[Route, ...] = ()
    del_routes: tuple[Route, ...] = ()
    add_neighbours: tuple[Neighbour, ...] = ()
    del_neighbours: tuple[Neighbour, ...] = ()
    add_fdb: tuple[FdbEntry, ...] = ()
    del_fdb: tuple[FdbEntry, ...] = ()

    def empty(self) -> bool:
        return not (self.add_routes or self.del_routes or self.add_neighbours or self.del_neighbours
                    or self.add_fdb or self.del_fdb)


def vtep_ip(pod_cidr: str) -> str:
    """A node's VTEP address: its pod CIDR's network address (flannel's choice: the CNI
    bridge takes the first host address)."""
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address)


def _pod_cidr(node: Obj) -> str:
    cidr = (node.get("spec") or {}).get("podCIDR") or ""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return ""
    return str(net) if net.version == 4 else ""


def public_ip(node: Obj) -> str:
    """The LAN address other nodes reach `node` at: its annotation, else its InternalIP."""
    annotated = ((node.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PUBLIC_IP, "")
    if annotated:
        return annotated
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return ""


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)


def _valid_ipv4(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def desired(backend: str, self_name: str, nodes: Iterable[Obj]) -> NetState:
    """What this node's kernel should hold for `nodes` (every Node the informer has). A
    peer that has not yet published what the backend needs (its VTEP MAC, a usable
    address) is left out until it has; so is one whose pod CIDR overlaps ours."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown pod network backend {backend!r} (want one of {', '.join(BACKENDS)})")
    nodes = list(nodes)
    own = next((_pod_cidr(n) for n in nodes if (n.get("metadata") or {}).get("name") == self_name), "")
    own_net = ipaddress.ip_network(own) if own else None
    routes: set[Route] = set()
    neighbours: set[Neighbour] = set()
    fdb: set[FdbEntry] = set()
    for node in nodes:
        meta = node.get("metadata") or {}
        cidr = _pod_cidr(node)
        lan = public_ip(node)
        if meta.get("name") == self_name or not cidr or not _valid_ipv4(lan):
            continue
        if own_net is not None and ipaddress.ip_network(cidr).overlaps(own_net):
            continue
        if backend == "host-gw":
            routes.add(Route(cidr, lan))
            continue
        mac = ((meta.get("annotations") or {}).get(ANNOTATION_VTEP_MAC) or "").lower()
        if not _valid_mac(mac):
            continue
        vtep = vtep_ip(cidr)
        routes.add(Route(cidr, vtep, vxlan=True))
        neighbours.add(Neighbour(vtep, mac))
        fdb.add(FdbEntry(mac, lan))
    return NetState(frozenset(routes), frozenset(neighbours), frozenset(fdb))


def diff(want: NetState, have: NetState) -> NetDiff:
    """The changes that turn `have` into `want`. A route to a CIDR that changed gateway is
    one deletion and one addition (the shell replaces in place)."""
    return NetDiff(
        add_routes=tuple(sorted(want.routes - have.routes)),
        del_routes=tuple(sorted(r for r in have.routes - want.routes
                                if not any(w.dst == r.dst for w in want.routes))),
        add_neighbours=tuple(sorted(want.neighbours - have.neighbours)),
        del_neighbours=tuple(sorted(n for n in have.neighbours - want.neighbours
                                    if not any(w.ip == n.ip for w in want.neighbours))),
        add_fdb=tuple(sorted(want.fdb - have.fdb)),
        del_fdb=tuple(sorted(have.fdb - want.fdb)),
    )


def network_facts(node: Obj) -> tuple[Any, ...]:
    """What of a Node the plan reads: a change elsewhere (its heartbeat) changes nothing."""
    meta = node.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return (meta.get("name"), _pod_cidr(node), public_ip(node), annotations.get(ANNOTATION_VTEP_MAC),
            annotations.get(ANNOTATION_BACKEND))


def cluster_cidrs(nodes: Iterable[Obj]) -> list[str]:
    """Every node's pod CIDR: destinations pod traffic keeps its source address to."""
    return sorted({c for c in (_pod_cidr(n) for n in nodes) if c})


def own_annotations(backend: str, lan_ip: str, vtep_mac: str) -> dict[str, str]:
    annotations = {ANNOTATION_BACKEND: backend, ANNOTATION_PUBLIC_IP: lan_ip}
    if backend == "vxlan":
        annotations[ANNOTATION_VTEP_MAC] = vtep_mac
    return annotations


def annotations_patch(node: Obj, wanted: dict[str, str]) -> Obj | None:
    """A merge patch putting `wanted` on the Node, or None when it already has them."""
    have = (node.get("metadata") or {}).get("annotations") or {}
    missing = {k: v for k, v in wanted.items() if have.get(k) != v}
    return {"metadata": {"annotations": missing}} if missing else None


def is_local_address(host: str) -> bool:
    """Whether `host` (an API server's host) is an address of this machine: an agent that
    joined a server elsewhere needs the overlay, one beside its server does not."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return False
    for info in infos:
        ip = str(info[4][0])
        if ipaddress.ip_address(ip).is_loopback:
            return True
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((ip, 0))  # binds only to an address one of our devices holds
            return True
        except OSError:
            continue
        finally:
            s.close()
    return False


# -- netlink shell ------------------------------------------------------------------------------

_NUD_PERMANENT = 0x80
_NTF_SELF = 0x02
_RTNH_F_ONLINK = 0x04


class Netlink:
    """The kernel side, through pyroute2. Blocking, and never to be called on a thread
    running an event loop (pyroute2's sync API runs a loop of its own): use asyncio.to_thread.
    `netns` names a network namespace to work in (tests); None is the agent's own."""

    def __init__(self, netns: str | None = None, device: str = DEVICE) -> None:
        self.netns = netns
        self.device = device

    def _ipr(self) -> Any:
        from pyroute2 import IPRoute
        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    @staticmethod
    def _index(ipr: Any, name: str) -> int | None:
        found = ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def lan_device(self, lan_ip: str) -> tuple[int, int]:
        """(ifindex, mtu) of the device holding `lan_ip`."""
        with self._ipr() as ipr:
            for addr in ipr.get_addr(family=socket.AF_INET):
                if addr.get("IFA_ADDRESS") == lan_ip or addr.get("IFA_LOCAL") == lan_ip:
                    index = addr["index"]
                    link = ipr.get_links(index)[0]
                    return index, int(link.get("IFLA_MTU"))
        raise RuntimeError(f"no device of this host holds the node address {lan_ip}")

    def ensure_vtep(self, lan_ip: str, pod_cidr: str) -> tuple[str, int]:
        """Create (or fix) the VXLAN device on `lan_ip` with our VTEP address; returns its
        (MAC, MTU). A device left with other settings (another address, VNI, port) is
        created anew; its peers' entries are then added again by the next sync."""
        lan_index, lan_mtu = self.lan_device(lan_ip)
        mtu = lan_mtu - VXLAN_OVERHEAD
        with self._ipr() as ipr:
            index = self._index(ipr, self.device)
            if index is not None:
                link = ipr.get_links(index)[0]
                info = (link.get("IFLA_LINKINFO") or {})
                data = info.get("IFLA_INFO_DATA") or {} if info else {}
                if (info.get("IFLA_INFO_KIND") != "vxlan" or data.get("IFLA_VXLAN_ID") != VNI
                        or data.get("IFLA_VXLAN_LOCAL") != lan_ip or data.get("IFLA_VXLAN_PORT") != VXLAN_PORT
                        or data.get("IFLA_VXLAN_LINK") != lan_index):
                    ipr.link("del", index=index)
                    index = None
            if index is None:
                # No learning: every peer is known from its Node, as flannel does.
                ipr.link("add", ifname=self.device, kind="vxlan", vxlan_id=VNI, vxlan_local=lan_ip,
                         vxlan_port=VXLAN_PORT, vxlan_link=lan_index, vxlan_learning=0)
                index = self._index(ipr, self.device)
                if index is None:
                    raise RuntimeError(f"the kernel did not create {self.device}")
            link = ipr.get_links(index)[0]
            if link.get("IFLA_MTU") != mtu or not link["flags"] & 1:  # IFF_UP
                ipr.link("set", index=index, mtu=mtu, state="up")
            address = vtep_ip(pod_cidr)
            for addr in ipr.get_addr(index=index, family=socket.AF_INET):
                if addr.get("IFA_ADDRESS") != address or addr["prefixlen"] != 32:
                    ipr.addr("del", index=index, address=addr.get("IFA_ADDRESS"), prefixlen=addr["prefixlen"])
            if not ipr.get_addr(index=index, family=socket.AF_INET):
                ipr.addr("add", index=index, address=address, prefixlen=32)
            mac = str(ipr.get_links(index)[0].get("IFLA_ADDRESS"))
        return mac, mtu

    def remove_vtep(self) -> bool:
        """Delete the VXLAN device (its routes, neighbours and FDB entries go with it)."""
        with self._ipr() as ipr:
            index = self._index(ipr, self.device)
            if index is None:
                return False
            ipr.link("del", index=index)
            return True

    def observed(self) -> NetState:
        """Our routes (by protocol number), and the neighbour and FDB entries of our device."""
        with self._ipr() as ipr:
            index = self._index(ipr, self.device)
            routes: set[Route] = set()
            for r in ipr.get_routes(family=socket.AF_INET, table=254):
                if r["proto"] != RT_PROTO:
                    continue
                dst = f"{r.get('RTA_DST')}/{r['dst_len']}"
                gateway = r.get("RTA_GATEWAY") or ""
                routes.add(Route(dst, gateway, vxlan=index is not None and r.get("RTA_OIF") == index))
            neighbours: set[Neighbour] = set()
            fdb: set[FdbEntry] = set()
            if index is not None:
                for n in ipr.get_neighbours(family=socket.AF_INET, ifindex=index):
                    if n["state"] & _NUD_PERMANENT and n.get("NDA_LLADDR"):
                        neighbours.add(Neighbour(n.get("NDA_DST"), n.get("NDA_LLADDR").lower()))
                for f in ipr.fdb("dump", ifindex=index):
                    if f["ifindex"] == index and f.get("NDA_DST") and f.get("NDA_LLADDR"):
                        mac = f.get("NDA_LLADDR").lower()
                        if mac != "00:00:00:00:00:00":
                            fdb.add(FdbEntry(mac, f.get("NDA_DST")))
        return NetState(frozenset(routes), frozenset(neighbours), frozenset(fdb))

    def apply(self, changes: NetDiff) -> None:
        """Carry out `changes`. FDB and neighbour entries go in before the routes that use
        them, so that no packet leaves before the kernel knows where to send it."""
        with self._ipr() as ipr:
            index = self._index(ipr, self.device)
            for f in changes.del_fdb:
                if index is not None:
                    _quiet(lambda f=f: ipr.fdb("del", ifindex=index, lladdr=f.mac, dst=f.dst))
            for n in changes.del_neighbours:
                if index is not None:
                    _quiet(lambda n=n: ipr.neigh("del", ifindex=index, dst=n.ip, lladdr=n.mac))
            for r in changes.del_routes:
                _quiet(lambda r=r: ipr.route("del", dst=r.dst, proto=RT_PROTO, table=254))
            if changes.add_fdb or changes.add_neighbours or any(r.vxlan for r in changes.add_routes):
                if index is None:
                    raise RuntimeError(f"{self.device} is missing")
            for f in changes.add_fdb:
                ipr.fdb("append", ifindex=index, lladdr=f.mac, dst=f.dst, flags=_NTF_SELF, state=_NUD_PERMANENT)
            for n in changes.add_neighbours:
                ipr.neigh("replace", ifindex=index, dst=n.ip, lladdr=n.mac, state=_NUD_PERMANENT)
            for r in changes.add_routes:
                if r.vxlan:
                    ipr.route("replace", dst=r.dst, gateway=r.gateway, oif=index, flags=_RTNH_F_ONLINK,
                              proto=RT_PROTO, table=254)
                else:
                    ipr.route("replace", dst=r.dst, gateway=r.gateway, proto=RT_PROTO, table=254)

    def remove_routes(self) -> int:
        """Delete every route of ours (host-gw's, which outlive no device)."""
        state = self.observed()
        self.apply(NetDiff(del_routes=tuple(state.routes)))
        return len(state.routes)


def _quiet(op: Callable[[], Any]) -> None:
    """Deleting what is already gone is no failure."""
    from pyroute2.netlink.exceptions import NetlinkError
    try:
        op()
    except NetlinkError as e:
        if e.code not in (2, 3, 19):  # ENOENT, ESRCH, ENODEV
            raise


# -- the loop ---------------------------------------------------------------------------------


@dataclass
class OverlayNetwork:
    """Keeps the kernel in step with the Node informer. `publish` merge-patches our own Node
    (annotations); `on_cluster_cidrs` is told every node's pod CIDR whenever that set
    changes (the egress masquerade's exceptions)."""

    backend: str
    node_name: str
    lan_ip: str
    nodes: Any  # an informer of Nodes: list(), add_handler()
    publish: Callable[[Obj], Awaitable[Any]]
    netlink: Netlink = field(default_factory=Netlink)
    on_cluster_cidrs: Callable[[list[str]], Awaitable[None]] | None = None
    resync_seconds: float = 30.0
    vtep_mac: str = ""
    mtu: int = 0
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _cidrs: list[str] = field(default_factory=list)
    _vtep_cidr: str = ""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown pod network backend {self.backend!r}")
        self.nodes.add_handler(on_add=self.changed, on_update=self._updated, on_delete=self.changed)

    def changed(self, _obj: object = None) -> None:
        self._dirty.set()

    def _updated(self, old: Obj, new: Obj) -> None:
        # Every node's heartbeat rewrites its status: only what the plan reads wakes the loop.
        if network_facts(old) != network_facts(new):
            self._dirty.set()

    def _own(self) -> Obj | None:
        return next((n for n in self.nodes.list() if (n.get("metadata") or {}).get("name") == self.node_name), None)

    async def sync(self) -> None:
        nodes = self.nodes.list()
        own = self._own()
        cidr = _pod_cidr(own) if own else ""
        if self.backend == "vxlan" and cidr:
            # Every time: a device someone removed or changed is made again (with a new MAC,
            # published below).
            mac, self.mtu = await asyncio.to_thread(self.netlink.ensure_vtep, self.lan_ip, cidr)
            if (mac, cidr) != (self.vtep_mac, self._vtep_cidr):
                log.info("VXLAN device %s up on %s (MAC %s, MTU %d)", self.netlink.device, self.lan_ip, mac,
                         self.mtu)
            self.vtep_mac, self._vtep_cidr = mac, cidr
        if own is not None and (self.backend != "vxlan" or self.vtep_mac):
            patch = annotations_patch(own, own_annotations(self.backend, self.lan_ip, self.vtep_mac))
            if patch is not None:
                await self.publish(patch)
        want = desired(self.backend, self.node_name, nodes)
        have = await asyncio.to_thread(self.netlink.observed)
        changes = diff(want, have)
        if not changes.empty():
            await asyncio.to_thread(self.netlink.apply, changes)
            log.info("pod network: +%d/-%d routes, +%d/-%d neighbours, +%d/-%d FDB entries",
                     len(changes.add_routes), len(changes.del_routes), len(changes.add_neighbours),
                     len(changes.del_neighbours), len(changes.add_fdb), len(changes.del_fdb))
        cidrs = cluster_cidrs(nodes)
        if cidrs != self._cidrs and self.on_cluster_cidrs is not None:
            await self.on_cluster_cidrs(cidrs)
        self._cidrs = cidrs

    async def run(self) -> None:
        """Sync on every Node change, and every `resync_seconds` regardless (something else
        may have removed a route); a failed sync is retried."""
        while True:
            self._dirty.clear()
            try:
                await self.sync()
                delay = self.resync_seconds
            except Exception as e:  # noqa: BLE001 - the network must keep converging
                log.warning("pod network sync failed: %s", e)
                delay = 2.0
            try:
                await asyncio.wait_for(self._dirty.wait(), delay)
            except TimeoutError:
                pass
