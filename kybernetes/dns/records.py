"""The cluster DNS zone: which records exist, built from Services, EndpointSlices and Pods.

`ClusterRecords` owns an index of the cluster's DNS data and answers one question
(name, type) at a time, following the Kubernetes DNS specification the way CoreDNS's
`kubernetes` plugin does:

- `<svc>.<ns>.svc.<zone>`: A/AAAA of the cluster IPs; for a headless Service the
  ready endpoint addresses; for an ExternalName Service a CNAME.
- `<endpoint>.<svc>.<ns>.svc.<zone>` for headless Services: `<endpoint>` is the
  endpoint's hostname, or its address with dashes (`10-1-2-3`).
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for named ports (and every port's
  SRV at `<svc>.<ns>.svc.<zone>`), with the targets' addresses as additional data.
- `<a-b-c-d>.<ns>.pod.<zone>`: A of a pod IP (AAAA for `fd00--1`).
- `dns-version.<zone>` TXT, the schema version; the zone's SOA at its apex.
- PTR for cluster IPs and headless endpoint addresses.

Nothing here does I/O: informer callbacks feed objects in (`upsert_*`/`delete_*`),
and the server turns an `Answer` into a message. Every Service's records are built
when the Service or its EndpointSlices change, so a query is a few dict lookups.
"""

from __future__ import annotations

import copy
import ipaddress
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from kybernetes.api.labels import SERVICE_NAME_LABEL
from kybernetes.api.pods import pod_is_terminal

Obj = dict[str, Any]
PodMode = Literal["verified", "insecure", "disabled"]

DEFAULT_ZONE = "cluster.local"
DEFAULT_TTL = 5
# The version of https://github.com/kubernetes/dns/blob/master/docs/specification.md served.
SCHEMA_VERSION = b"1.1.0"
# In-zone CNAMEs (an ExternalName pointing at another Service) are followed this deep.
MAX_CNAME_CHAIN = 8

_IN = dns.rdataclass.IN
_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_CNAME = dns.rdatatype.CNAME
_SRV = dns.rdatatype.SRV
_SOA = dns.rdatatype.SOA
_TXT = dns.rdatatype.TXT
_PTR = dns.rdatatype.PTR
_ANY = dns.rdatatype.ANY
_REVERSE_ZONES = (dns.reversename.ipv4_reverse_domain, dns.reversename.ipv6_reverse_domain)


@dataclass(slots=True)
class Answer:
    """What the zone says about one question. `authoritative` is False when the name is
    not the cluster's to answer: the server forwards the query instead. `chase` is an
    out-of-zone CNAME target (of an ExternalName Service) whose records the server should
    look up upstream and append. An answer is `cacheable` while `ClusterRecords.generation`
    stays the same."""

    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True
    chase: dns.name.Name | None = None
    cacheable: bool = True


class _Node:
    """The records at one name: prebuilt RRsets by type, owned by the lowercase name."""

    __slots__ = ("rrsets", "additional")

    def __init__(self) -> None:
        self.rrsets: dict[int, dns.rrset.RRset] = {}
        # Addresses of SRV targets, sent in the additional section of SRV answers.
        self.additional: list[dns.rrset.RRset] = []


_EMPTY = _Node()  # an empty non-terminal: the name exists, without records


@dataclass(slots=True)
class _Service:
    """A Service's records: its own name, endpoint names (headless), SRV names."""

    node: _Node
    endpoints: dict[bytes, _Node]
    srv: dict[tuple[bytes, bytes], _Node]
    protos: frozenset[bytes]
    ptr: list[tuple[str, dns.name.Name]]


@dataclass(slots=True, frozen=True)
class _ServiceSpec:
    """The part of a Service that DNS reads; a Service update that leaves it equal
    changes no record."""

    kind: Literal["cluster", "headless", "external"]
    ips: tuple[str, ...]
    external: str
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port)

    @staticmethod
    def of(svc: Obj) -> _ServiceSpec:
        spec = svc.get("spec") or {}
        ports = _ports(spec.get("ports"))
        if spec.get("type") == "ExternalName":
            external = spec.get("externalName")
            return _ServiceSpec("external", (), external if isinstance(external, str) else "", ports)
        if spec.get("clusterIP") == "None":
            return _ServiceSpec("headless", (), "", ports)
        ips = [_ip(text) for text in spec.get("clusterIPs") or [spec.get("clusterIP")]]
        return _ServiceSpec("cluster", tuple(str(ip) for ip in ips if ip is not None), "", ports)


@dataclass(slots=True, frozen=True)
class _Endpoint:
    address: str
    label: bytes  # its name under the Service: the hostname, or the dashed address
    ports: tuple[tuple[str, str, int], ...]  # (name, protocol, port) from its slice


def _ip(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def dashed(address: str) -> str:
    """The DNS label form of an address: `10.1.2.3` → `10-1-2-3`, `fd00::1` → `fd00--1`."""
    return address.replace(".", "-").replace(":", "-")


def undashed(label: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of a dashed label, or None when the label is not one."""
    if label.count("-") == 3:
        ip = _ip(label.replace("-", "."))
        if ip is not None:
            return ip
    return _ip(label.replace("-", ":"))


def _address_rdata(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> dns.rdata.Rdata:
    if ip.version == 4:
        return A(_IN, _A, str(ip))
    return AAAA(_IN, _AAAA, str(ip))


class ClusterRecords:
    """The index of the cluster zone and the answers it gives.

    Services are kept by (namespace, name); EndpointSlices by the (namespace, Service)
    their `kubernetes.io/service-name` label names; pod IPs by (namespace, IP). Each
    change rebuilds only the records of the Service it touches."""

    def __init__(self, zone: str = DEFAULT_ZONE, ttl: int = DEFAULT_TTL, pod_mode: PodMode = "verified") -> None:
        if pod_mode not in ("verified", "insecure", "disabled"):
            raise ValueError(f"pod_mode must be verified, insecure or disabled, not {pod_mode!r}")
        self.origin = dns.name.from_text(zone.strip(".").lower() + ".")
        self.ttl = ttl
        self.pod_mode = pod_mode
        self._zone_labels = self.origin.labels
        self._zone_len = len(self._zone_labels)
        # Bumped on every change of what a cacheable answer could contain: a cache of
        # answers (the server's) is valid while the generation is the same. Answers about
        # pods are not cacheable, so that pods coming and going, far more often than
        # Services change, do not empty the cache.
        self.generation = 0
        self._serial = int(time.time()) & 0xFFFFFFFF
        self._soa: dns.rrset.RRset | None = None

        self._services: dict[tuple[str, str], _ServiceSpec] = {}
        self._built: dict[tuple[str, str], _Service] = {}
        self._svc_namespaces: Counter[str] = Counter()
        # (namespace, service) -> slice name -> that slice's endpoints
        self._slices: dict[tuple[str, str], dict[str, tuple[_Endpoint, ...]]] = {}
        self._slice_service: dict[tuple[str, str], str] = {}  # (namespace, slice) -> service
        self._pods: dict[tuple[str, str], tuple[str, ...]] = {}  # (namespace, pod) -> its IPs
        self._pod_ips: Counter[tuple[str, str]] = Counter()  # (namespace, IP) -> pods with it
        self._pod_namespaces: Counter[str] = Counter()
        self._ptr: dict[str, dict[tuple[str, str], list[dns.name.Name]]] = {}
        version = _Node()
        version.rrsets[_TXT] = self._rrset(self._name(b"dns-version"), [TXT(_IN, _TXT, [SCHEMA_VERSION])])
        self._version = version

    # -- names and record sets ----------------------------------------------------------------

    def _name(self, *labels: bytes) -> dns.name.Name:
        return dns.name.Name(labels + self._zone_labels)

    def _rrset(self, name: dns.name.Name, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
        return dns.rrset.from_rdata_list(name, self.ttl, rdatas)

    def in_zone(self, qname: dns.name.Name) -> bool:
        """Whether `qname` is inside the cluster domain."""
        labels = qname.labels
        n = self._zone_len
        return len(labels) >= n and tuple(label.lower() for label in labels[-n:]) == self._zone_labels

    def soa(self) -> dns.rrset.RRset:
        """The zone's SOA, sent with every negative answer. Its minimum (the negative
        caching time) is the answers' TTL: a name that appears is not denied from caches
        for longer than a changed address is served from them."""
        if self._soa is None:
            soa = SOA(_IN, _SOA, self._name(b"ns", b"dns"), self._name(b"hostmaster"), self._serial,
                      7200, 1800, 86400, self.ttl)
            self._soa = self._rrset(self.origin, [soa])
        return self._soa

    def _changed(self, pods: bool = False) -> None:
        if not pods:
            self.generation += 1
        serial = int(time.time()) & 0xFFFFFFFF
        if serial != self._serial:
            self._serial = serial
            self._soa = None

    # -- feeding the index ----------------------------------------------------------------------

    def upsert_service(self, svc: Obj) -> None:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        if not key[1]:
            return
        spec = _ServiceSpec.of(svc)
        old = self._services.get(key)
        if old == spec:
            return
        if old is None:
            self._svc_namespaces[key[0]] += 1
        self._services[key] = spec
        self._rebuild(key)

    def delete_service(self, svc: Obj) -> None:
        meta = svc.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        if self._services.pop(key, None) is None:
            return
        self._svc_namespaces[key[0]] -= 1
        if self._svc_namespaces[key[0]] <= 0:
            del self._svc_namespaces[key[0]]
        self._rebuild(key)

    def upsert_endpoint_slice(self, eps: Obj) -> None:
        meta = eps.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        name = meta.get("name") or ""
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) or ""
        previous = self._slice_service.get((ns, name))
        if previous is not None and previous != service:
            self._drop_slice(ns, name, previous)
        if not service:
            return
        self._slice_service[(ns, name)] = service
        slices = self._slices.setdefault((ns, service), {})
        endpoints = _slice_endpoints(eps)
        if slices.get(name) == endpoints:
            return
        slices[name] = endpoints
        self._rebuild_if_headless((ns, service))

    def delete_endpoint_slice(self, eps: Obj) -> None:
        meta = eps.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        name = meta.get("name") or ""
        service = self._slice_service.get((ns, name))
        if service is not None:
            self._drop_slice(ns, name, service)

    def _drop_slice(self, ns: str, name: str, service: str) -> None:
        self._slice_service.pop((ns, name), None)
        slices = self._slices.get((ns, service))
        if slices is not None and slices.pop(name, None) is not None:
            if not slices:
                del self._slices[(ns, service)]
            self._rebuild_if_headless((ns, service))

    def upsert_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        status = pod.get("status") or {}
        ips: tuple[str, ...] = ()
        # A finished pod's IP goes back to the node's pool and may soon be another pod's.
        if not pod_is_terminal(pod):
            found = [_ip(entry.get("ip")) for entry in status.get("podIPs") or [] if isinstance(entry, dict)]
            if not found:
                found = [_ip(status.get("podIP"))]
            ips = tuple(sorted({str(ip) for ip in found if ip is not None}))
        if key not in self._pods:
            self._pod_namespaces[key[0]] += 1
        self._set_pod_ips(key, ips)

    def delete_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        key = (meta.get("namespace") or "default", meta.get("name") or "")
        if key not in self._pods:
            return
        self._set_pod_ips(key, ())
        del self._pods[key]
        self._pod_namespaces[key[0]] -= 1
        if self._pod_namespaces[key[0]] <= 0:
            del self._pod_namespaces[key[0]]

    def _set_pod_ips(self, key: tuple[str, str], ips: tuple[str, ...]) -> None:
        old = self._pods.get(key, ())
        self._pods[key] = ips
        if old == ips:
            return
        for ip in old:
            self._pod_ips[(key[0], ip)] -= 1
            if self._pod_ips[(key[0], ip)] <= 0:
                del self._pod_ips[(key[0], ip)]
        for ip in ips:
            self._pod_ips[(key[0], ip)] += 1
        self._changed(pods=True)

    # -- building a Service's records -------------------------------------------------------------

    def _rebuild_if_headless(self, key: tuple[str, str]) -> None:
        # Only headless Services publish endpoints: the endpoints of the others churn
        # with every pod restart and change nothing here.
        spec = self._services.get(key)
        if spec is not None and spec.kind == "headless":
            self._rebuild(key)

    def _rebuild(self, key: tuple[str, str]) -> None:
        old = self._built.pop(key, None)
        if old is not None:
            self._unindex_ptr(key, old.ptr)
        spec = self._services.get(key)
        if spec is not None:
            built = self._build(key, spec)
            self._built[key] = built
            self._index_ptr(key, built.ptr)
        self._changed()

    def _index_ptr(self, key: tuple[str, str], ptr: list[tuple[str, dns.name.Name]]) -> None:
        for ip, name in ptr:
            self._ptr.setdefault(ip, {}).setdefault(key, []).append(name)

    def _unindex_ptr(self, key: tuple[str, str], ptr: list[tuple[str, dns.name.Name]]) -> None:
        for ip, _name in ptr:
            owners = self._ptr.get(ip)
            if owners is not None:
                owners.pop(key, None)
                if not owners:
                    del self._ptr[ip]

    def _build(self, key: tuple[str, str], spec: _ServiceSpec) -> _Service:
        ns, name = key
        svc_labels = (name.lower().encode(), ns.lower().encode(), b"svc")
        svc_name = self._name(*svc_labels)
        built = _Service(_Node(), {}, {}, frozenset(), [])
        if spec.kind == "headless":
            return self._build_headless(key, svc_labels, built)
        if spec.kind == "external":
            try:
                target = dns.name.from_text(spec.external.rstrip(".") + ".") if spec.external.strip(".") else None
            except dns.exception.DNSException:
                target = None
            if target is not None:
                built.node.rrsets[_CNAME] = self._rrset(svc_name, [CNAME(_IN, _CNAME, target)])
                # The SRV of an ExternalName Service's named ports point at the external
                # name; none at the Service's own name, where a CNAME allows no other data.
                self._add_srv(built, svc_labels, [(target, spec.ports)], {}, at_service=False)
            return built
        ips = [ipaddress.ip_address(ip) for ip in spec.ips]
        addresses = self._address_rrsets(svc_name, ips)
        built.node.rrsets.update(addresses)
        built.ptr = [(ip, svc_name) for ip in spec.ips]
        self._add_srv(built, svc_labels, [(svc_name, spec.ports)], {svc_name: list(addresses.values())})
        return built

    def _build_headless(self, key: tuple[str, str], svc_labels: tuple[bytes, ...], built: _Service) -> _Service:
        svc_name = self._name(*svc_labels)
        by_label: dict[bytes, list[_Endpoint]] = {}
        for endpoints in (self._slices.get(key) or {}).values():
            for ep in endpoints:
                by_label.setdefault(ep.label, []).append(ep)
        all_ips: dict[str, ipaddress.IPv4Address | ipaddress.IPv6Address] = {}
        targets: list[tuple[dns.name.Name, tuple[tuple[str, str, int], ...]]] = []
        additional: dict[dns.name.Name, list[dns.rrset.RRset]] = {}
        for label in sorted(by_label):
            eps = by_label[label]
            ep_name = self._name(label, *svc_labels)
            ips = []
            ports: dict[tuple[str, str, int], None] = {}
            for ep in eps:
                ip = ipaddress.ip_address(ep.address)
                ips.append(ip)
                all_ips[str(ip)] = ip
                ports.update(dict.fromkeys(ep.ports))
                built.ptr.append((str(ip), ep_name))
            node = _Node()
            node.rrsets.update(self._address_rrsets(ep_name, ips))
            built.endpoints[label] = node
            targets.append((ep_name, tuple(ports)))
            additional[ep_name] = list(node.rrsets.values())
        built.node.rrsets.update(self._address_rrsets(svc_name, list(all_ips.values())))
        self._add_srv(built, svc_labels, targets, additional)
        return built

    def _address_rrsets(self, name: dns.name.Name, ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
                        ) -> dict[int, dns.rrset.RRset]:
        out: dict[int, dns.rrset.RRset] = {}
        v4 = [_address_rdata(ip) for ip in ips if ip.version == 4]
        v6 = [_address_rdata(ip) for ip in ips if ip.version == 6]
        if v4:
            out[_A] = self._rrset(name, v4)
        if v6:
            out[_AAAA] = self._rrset(name, v6)
        return out

    def _add_srv(self, built: _Service, svc_labels: tuple[bytes, ...],
                 targets: list[tuple[dns.name.Name, tuple[tuple[str, str, int], ...]]],
                 additional: dict[dns.name.Name, list[dns.rrset.RRset]], at_service: bool = True) -> None:
        """SRV records for every (target, port): one node per named port and protocol, and
        (with `at_service`) all of them at the Service's own name."""
        by_port: dict[tuple[bytes, bytes], list[tuple[dns.name.Name, int]]] = {}
        every: dict[tuple[dns.name.Name, int], None] = {}
        for target, ports in targets:
            for port_name, protocol, port in ports:
                every[(target, port)] = None
                if port_name:
                    key = (b"_" + port_name.lower().encode(), b"_" + protocol.lower().encode())
                    by_port.setdefault(key, []).append((target, port))
        for (port_label, proto_label), entries in by_port.items():
            node = _Node()
            node.rrsets[_SRV] = self._rrset(self._name(port_label, proto_label, *svc_labels), _srv(entries))
            node.additional = [rr for target in dict.fromkeys(t for t, _ in entries) for rr in additional.get(target, ())]
            built.srv[(port_label, proto_label)] = node
        built.protos = frozenset(proto for _, proto in by_port)
        if every and at_service:
            built.node.rrsets[_SRV] = self._rrset(self._name(*svc_labels), _srv(list(every)))
            built.node.additional = [rr for target in dict.fromkeys(t for t, _ in every)
                                     for rr in additional.get(target, ())]

    # -- answering --------------------------------------------------------------------------------

    def answer(self, qname: dns.name.Name, qtype: int) -> Answer:
        """The answer to (qname, qtype, class IN)."""
        labels = tuple(label.lower() for label in qname.labels)
        n = self._zone_len
        if len(labels) < n or labels[-n:] != self._zone_labels:
            if qtype == _PTR or (len(labels) > 3 and labels[-3:] in _REVERSE_LABELS):
                return self._reverse(qname, qtype)
            return Answer(dns.rcode.NOERROR, authoritative=False)
        rel = labels[:-n]
        node = self._lookup(rel)
        if node is None:
            out = Answer(dns.rcode.NXDOMAIN, authority=[self.soa()])
        else:
            out = self._from_node(qname, qtype, node, 0)
        if rel and rel[-1] == b"pod":
            out.cacheable = False
        return out

    def _lookup(self, rel: tuple[bytes, ...]) -> _Node | None:
        """The node at the name whose labels under the zone are `rel`; None when the name
        does not exist."""
        size = len(rel)
        if size == 0:
            apex = _Node()
            apex.rrsets[_SOA] = self.soa()
            return apex
        top = rel[-1]
        if top == b"svc":
            if size == 1:
                return _EMPTY
            ns = rel[-2].decode("latin-1")
            if size == 2:
                return _EMPTY if ns in self._svc_namespaces else None
            built = self._built.get((ns, rel[-3].decode("latin-1")))
            if built is None:
                return None
            if size == 3:
                return built.node
            if size == 4:
                if rel[0].startswith(b"_"):
                    return _EMPTY if rel[0] in built.protos else None
                return built.endpoints.get(rel[0])
            if size == 5:
                return built.srv.get((rel[0], rel[1]))
            return None
        if top == b"pod":
            if size == 1:
                return _EMPTY
            ns = rel[-2].decode("latin-1")
            if size == 2:
                if self.pod_mode == "insecure" or ns in self._pod_namespaces:
                    return _EMPTY
                return None
            if size == 3 and self.pod_mode != "disabled":
                return self._pod_node(ns, rel[0])
            return None
        if size == 1 and top == b"dns-version":
            return self._version
        return None

    def _pod_node(self, ns: str, label: bytes) -> _Node | None:
        ip = undashed(label.decode("latin-1"))
        if ip is None:
            return None
        if self.pod_mode == "verified" and (ns, str(ip)) not in self._pod_ips:
            return None
        node = _Node()
        node.rrsets.update(self._address_rrsets(self._name(label, ns.encode(), b"pod"), [ip]))
        return node

    def _from_node(self, qname: dns.name.Name, qtype: int, node: _Node, depth: int) -> Answer:
        rrsets = node.rrsets
        if qtype == _ANY and rrsets:
            return Answer(dns.rcode.NOERROR, [_owned(qname, rr) for rr in rrsets.values()])
        rrset = rrsets.get(qtype)
        if rrset is not None:
            return Answer(dns.rcode.NOERROR, [_owned(qname, rrset)],
                          additional=node.additional if qtype == _SRV else [])
        cname = rrsets.get(_CNAME)
        if cname is None:
            return Answer(dns.rcode.NOERROR, authority=[self.soa()])
        out = Answer(dns.rcode.NOERROR, [_owned(qname, cname)])
        target: dns.name.Name = cname[0].target
        if not self.in_zone(target):
            out.chase = target
            return out
        # An ExternalName pointing into the cluster: follow it here, as a resolver would.
        if depth >= MAX_CNAME_CHAIN:
            return out
        rel = tuple(label.lower() for label in target.labels)[:-self._zone_len]
        next_node = self._lookup(rel)
        out.cacheable = not rel or rel[-1] != b"pod"
        if next_node is None:
            out.rcode = dns.rcode.NXDOMAIN
            out.authority = [self.soa()]
            return out
        rest = self._from_node(target, qtype, next_node, depth + 1)
        out.rcode = rest.rcode
        out.answer.extend(rest.answer)
        out.authority = rest.authority
        out.additional = rest.additional
        out.chase = rest.chase
        out.cacheable = out.cacheable and rest.cacheable
        return out

    def _reverse(self, qname: dns.name.Name, qtype: int) -> Answer:
        """PTR of an address the cluster gave out; any other reverse name is not ours."""
        try:
            address = dns.reversename.to_address(qname)
        except (dns.exception.DNSException, ValueError):
            return Answer(dns.rcode.NOERROR, authoritative=False)
        ip = _ip(address)
        owners = self._ptr.get(str(ip)) if ip is not None else None
        if not owners:
            return Answer(dns.rcode.NOERROR, authoritative=False)
        if qtype not in (_PTR, _ANY):
            return Answer(dns.rcode.NOERROR, authority=[self.soa()])
        names = sorted({name for names in owners.values() for name in names})
        rrset = dns.rrset.from_rdata_list(qname, self.ttl, [PTR(_IN, _PTR, name) for name in names])
        return Answer(dns.rcode.NOERROR, [rrset])


_REVERSE_LABELS = {tuple(label.lower() for label in zone.labels) for zone in _REVERSE_ZONES}


def _owned(qname: dns.name.Name, rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    """`rrset` owned by the name as the client spelled it (resolvers that randomise the
    case of their questions compare it); the prebuilt set itself when the spelling matches."""
    if qname.labels == rrset.name.labels:
        return rrset
    renamed = copy.copy(rrset)
    renamed.name = qname
    return renamed


def _srv(entries: list[tuple[dns.name.Name, int]]) -> list[dns.rdata.Rdata]:
    # Equal priority, weights sharing 100 between the targets, as CoreDNS does.
    weight = max(1, 100 // len(entries))
    return [SRV(_IN, _SRV, 0, weight, port, target) for target, port in entries]


def _slice_endpoints(eps: Obj) -> tuple[_Endpoint, ...]:
    """The ready endpoints of an EndpointSlice. Like kube-proxy, only an endpoint's first
    address is used: the API says its addresses are fungible."""
    if eps.get("addressType") not in ("IPv4", "IPv6"):
        return ()
    ports = _ports(eps.get("ports"))
    out = []
    for ep in eps.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        # An absent `ready` means ready, per the EndpointSlice API.
        if (ep.get("conditions") or {}).get("ready") is False:
            continue
        addresses = ep.get("addresses") or []
        ip = _ip(addresses[0]) if addresses else None
        if ip is None:
            continue
        hostname = ep.get("hostname")
        label = hostname.lower() if isinstance(hostname, str) and hostname else dashed(str(ip))
        out.append(_Endpoint(str(ip), label.encode(), ports))
    return tuple(out)


def _ports(ports: Any) -> tuple[tuple[str, str, int], ...]:
    """(name, protocol, port) of a Service's or an EndpointSlice's ports; a slice port
    without a number (meaning "all ports") has no SRV record."""
    out = []
    for p in ports if isinstance(ports, list) else ():
        if not isinstance(p, dict):
            continue
        port = p.get("port")
        if isinstance(port, int) and 0 < port < 65536:
            out.append((str(p.get("name") or ""), str(p.get("protocol") or "TCP"), port))
    return tuple(out)
