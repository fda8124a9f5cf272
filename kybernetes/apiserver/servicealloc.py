"""Service cluster IPs and node ports: the decisions, as kube-apiserver makes them.

This module owns the service network settings (the CIDR, the node port range, the
DNS address), the steps the Service strategy runs on every write before
validation (keep values allocated earlier, keep `clusterIP`/`clusterIPs` in step,
drop what a type change leaves behind), the plan of what a create or update must
allocate and may release, the choice of a free address or port, the wording of
failed allocations, and the repair plan that reconciles allocation records with
the Services. Nothing here does I/O; `serviceips.py` carries the plans out
against the store.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.errors import ApiError, FieldError, invalid
from kybernetes.api.validation import go_string_slice

Obj = dict[str, Any]

DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
# kube-apiserver refuses service ranges larger than this (a bitmap of 2^20 addresses).
MIN_PREFIX_LEN = 12


# -- the service network ----------------------------------------------------------------


@dataclass(frozen=True)
class ServiceNetwork:
    """Where Service addresses and node ports come from.

    Usable addresses exclude the network and broadcast addresses; offsets count
    from the first usable one, which belongs to the `kubernetes` Service."""

    cidr: ipaddress.IPv4Network
    node_port_low: int
    node_port_high: int
    dns_ip: ipaddress.IPv4Address

    @property
    def ip_size(self) -> int:
        return max(self.cidr.num_addresses - 2, 0)

    @property
    def first_ip(self) -> ipaddress.IPv4Address:
        """The `kubernetes` Service's address."""
        return self.cidr.network_address + 1

    def ip_offset(self, ip: str) -> int | None:
        """The offset of `ip` among the usable addresses, None when outside them."""
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        off = int(addr) - int(self.cidr.network_address) - 1
        return off if 0 <= off < self.ip_size else None

    def ip_at(self, offset: int) -> str:
        return str(self.first_ip + offset)

    @property
    def port_size(self) -> int:
        return self.node_port_high - self.node_port_low + 1

    def port_in_range(self, port: int) -> bool:
        return self.node_port_low <= port <= self.node_port_high

    @property
    def port_range_text(self) -> str:
        return f"{self.node_port_low}-{self.node_port_high}"

    @property
    def ip_static_band(self) -> int:
        # kube-apiserver keeps the lowest addresses for requested IPs: dynamic
        # allocation uses them only when the rest is full (min(max(16, size/16), 256)).
        return _band(self.cidr.num_addresses, 16, 256, 16)

    @property
    def port_static_band(self) -> int:
        # The same for node ports: min(max(16, size/32), 128).
        return _band(self.port_size, 16, 128, 32)


def _band(size: int, low: int, high: int, step: int) -> int:
    if size <= low:
        return 0
    return min(max(low, size // step), high)


def parse_service_cidr(text: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        raise ValueError(f"invalid service CIDR {text!r}: {e}") from None
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"invalid service CIDR {text!r}: only IPv4 service networks are supported")
    if net.prefixlen < MIN_PREFIX_LEN:
        raise ValueError(f"service CIDR {text} is too large; the mask must be /{MIN_PREFIX_LEN} or longer")
    if net.prefixlen > 29:
        raise ValueError(f"service CIDR {text} is too small; the mask must be /29 or shorter")
    return net


def parse_node_port_range(text: str) -> tuple[int, int]:
    """`30000-32767`, `30000+2767` (base and extra ports) or a single port."""
    raw = text.strip()
    try:
        if "-" in raw:
            lo_s, hi_s = raw.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        elif "+" in raw:
            lo_s, extra = raw.split("+", 1)
            lo = int(lo_s)
            hi = lo + int(extra)
        else:
            lo = hi = int(raw)
    except ValueError:
        raise ValueError(f"invalid node port range {text!r}: expected LOW-HIGH, e.g. 30000-32767") from None
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"invalid node port range {text!r}: ports must be 1-65535 and LOW <= HIGH")
    return lo, hi


def dns_ip_for(cidr: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """The conventional cluster DNS address: the tenth address of the range (10.43.0.10)."""
    return cidr.network_address + 10


def service_network(cidr: str = DEFAULT_SERVICE_CIDR, node_ports: str = DEFAULT_NODE_PORT_RANGE,
                    cluster_dns: str | None = None) -> ServiceNetwork:
    """Parse and check the settings; ValueError says what is wrong."""
    net = parse_service_cidr(cidr)
    lo, hi = parse_node_port_range(node_ports)
    if cluster_dns:
        try:
            dns = ipaddress.IPv4Address(cluster_dns.strip())
        except ValueError:
            raise ValueError(f"invalid cluster DNS address {cluster_dns!r}") from None
    else:
        dns = dns_ip_for(net)
    result = ServiceNetwork(net, lo, hi, dns)
    offset = result.ip_offset(str(dns))
    if offset is None:
        raise ValueError(f"cluster DNS address {dns} is not a usable address of the service CIDR {net}")
    if offset == 0:
        raise ValueError(f"cluster DNS address {dns} is the first address of {net}, "
                         "which belongs to the kubernetes Service")
    return result


# -- the Service strategy: run before validation on create and update -----------------------


def _spec(obj: Obj | None) -> Obj:
    spec = (obj or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _ports(spec: Obj) -> list[Obj]:
    return [p for p in spec.get("ports") or [] if isinstance(p, dict)]


def needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type") != "ExternalName"


def needs_node_ports(spec: Obj) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def needs_health_check_port(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def externally_accessible(spec: Obj) -> bool:
    svc_type = spec.get("type")
    return svc_type in ("NodePort", "LoadBalancer") or (svc_type == "ClusterIP" and bool(spec.get("externalIPs")))


def _node_port_numbers(spec: Obj) -> set[int]:
    return {p["nodePort"] for p in _ports(spec) if isinstance(p.get("nodePort"), int) and p["nodePort"]}


def prepare_service(new: Obj, old: Obj | None) -> None:
    """What kube-apiserver's Service strategy does before validation, in place."""
    spec = new.get("spec")
    if not isinstance(spec, dict):
        return
    if old is None:
        # An old client sets only clusterIP; the plural follows it.
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        return
    old_spec = _spec(old)
    keep_allocated_values(spec, old_spec)
    normalize_cluster_ips(spec, old_spec)
    drop_type_dependent_fields(spec, old_spec)


def keep_allocated_values(spec: Obj, old_spec: Obj) -> None:
    """A resubmitted manifest without the allocated values (clusterIP, nodePorts,
    healthCheckNodePort) keeps them rather than asking for new ones."""
    if needs_cluster_ip(old_spec) and needs_cluster_ip(spec):
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if not spec.get("clusterIPs") and old_spec.get("clusterIPs"):
            spec["clusterIPs"] = list(old_spec["clusterIPs"])
    if needs_node_ports(old_spec) and needs_node_ports(spec):
        # Matched by port name: the user may have changed anything else about the port.
        by_name = {p.get("name") or "": p.get("nodePort") for p in _ports(old_spec)}
        for p in _ports(spec):
            if not p.get("nodePort") and by_name.get(p.get("name") or ""):
                p["nodePort"] = by_name[p.get("name") or ""]
    if needs_health_check_port(old_spec) and needs_health_check_port(spec):
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def normalize_cluster_ips(spec: Obj, old_spec: Obj) -> None:
    """Guess what a client that manages only one of clusterIP/clusterIPs meant."""
    old_ip, new_ip = old_spec.get("clusterIP") or "", spec.get("clusterIP") or ""
    old_ips, new_ips = list(old_spec.get("clusterIPs") or []), list(spec.get("clusterIPs") or [])
    if old_ips and not new_ips and old_ip == new_ip:
        spec["clusterIPs"] = new_ips = old_ips
    if old_ip != new_ip:
        if old_ip and not new_ip:
            if old_ips == new_ips:
                spec.pop("clusterIPs", None)
        elif old_ips == new_ips:
            spec["clusterIPs"] = [new_ip]


def drop_type_dependent_fields(spec: Obj, old_spec: Obj) -> None:
    """A type change wipes the fields the new type does not use, when the user left
    them as they were (a changed value is the user's and validation judges it). The
    addresses and ports wiped here are released once the update is stored."""
    if needs_cluster_ip(old_spec) and not needs_cluster_ip(spec):
        if (spec.get("clusterIP") or "") == (old_spec.get("clusterIP") or "") and \
                list(spec.get("clusterIPs") or []) == list(old_spec.get("clusterIPs") or []):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        if list(spec.get("ipFamilies") or []) == list(old_spec.get("ipFamilies") or []):
            spec.pop("ipFamilies", None)
        if spec.get("ipFamilyPolicy") == old_spec.get("ipFamilyPolicy"):
            spec.pop("ipFamilyPolicy", None)
    if needs_node_ports(old_spec) and not needs_node_ports(spec) and \
            _node_port_numbers(spec) <= _node_port_numbers(old_spec):
        for p in _ports(spec):
            p.pop("nodePort", None)
    if needs_health_check_port(old_spec) and not needs_health_check_port(spec) and \
            spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if old_spec.get("type") == "LoadBalancer" and spec.get("type") != "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is not None and \
                spec.get("allocateLoadBalancerNodePorts") == old_spec.get("allocateLoadBalancerNodePorts"):
            spec.pop("allocateLoadBalancerNodePorts", None)
        if spec.get("loadBalancerClass") == old_spec.get("loadBalancerClass"):
            spec.pop("loadBalancerClass", None)
    if externally_accessible(old_spec) and not externally_accessible(spec) and \
            spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)


# -- what a write allocates and releases ----------------------------------------------------


def held_ips(spec: Obj) -> set[str]:
    """The cluster addresses a stored Service holds."""
    if not needs_cluster_ip(spec):
        return set()
    ips = {ip for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or [])]
           if isinstance(ip, str) and ip and ip != "None"}
    return ips


def held_ports(spec: Obj) -> set[int]:
    """The node ports a stored Service holds (its health check port included)."""
    ports = _node_port_numbers(spec)
    hc = spec.get("healthCheckNodePort")
    if isinstance(hc, int) and hc:
        ports.add(hc)
    return ports


@dataclass
class NodePortClaim:
    """One node port the write needs: `requested` (0: any free one), written into the
    `spec.ports` entries at `indexes`."""

    requested: int
    indexes: list[int] = field(default_factory=list)
    field_index: int = 0  # the entry an error names


@dataclass
class AllocationPlan:
    cluster_ip: str | None = None  # None: nothing new; "": any free address; else that address
    node_ports: list[NodePortClaim] = field(default_factory=list)
    health_check: int | None = None  # None: nothing new; 0: any free port; else that port
    release_ips: set[str] = field(default_factory=set)  # once the write is stored
    release_ports: set[int] = field(default_factory=set)

    @property
    def allocates(self) -> bool:
        return self.cluster_ip is not None or bool(self.node_ports) or self.health_check is not None


def ip_not_in_range_error(net: ServiceNetwork, ips: list[str], ip: str) -> FieldError:
    return invalid("spec.clusterIPs", go_string_slice(ips),
                   f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                   f"The range of valid IPs is {net.cidr}")


def ip_taken_error(ips: list[str], ip: str) -> FieldError:
    return invalid("spec.clusterIPs", go_string_slice(ips), f"failed to allocate IP {ip}: provided IP is already allocated")


def port_not_in_range_error(net: ServiceNetwork, index: int, port: int) -> FieldError:
    return invalid(f"spec.ports[{index}].nodePort", port,
                   f"provided port is not in the valid range. The range of valid ports is {net.port_range_text}")


def port_taken_error(index: int, port: int) -> FieldError:
    return invalid(f"spec.ports[{index}].nodePort", port, "provided port is already allocated")


def ip_range_full() -> ApiError:
    return ApiError.internal("failed to allocate a serviceIP: range is full")


def port_range_full() -> ApiError:
    return ApiError.internal("failed to allocate a nodePort: range is full")


def health_check_port_error(port: int, why: str) -> ApiError:
    if port:
        return ApiError.internal(f"failed to allocate requested HealthCheck NodePort {port}: {why}")
    return ApiError.internal(f"failed to allocate a HealthCheck NodePort {port}: {why}")


def ip_family_errors(spec: Obj) -> list[FieldError]:
    """This cluster is IPv4 single-stack: what asks for more cannot be served."""
    errs: list[FieldError] = []
    ips = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)]
    for i, ip in enumerate(ips):
        if ip != "None" and ":" in ip:
            errs.append(invalid(f"spec.clusterIPs[{i}]", go_string_slice(ips), "IPv6 is not configured on this cluster"))
    headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
    if headless_selectorless:
        # A headless Service without selector may name any family: it gets no address.
        return errs
    if spec.get("ipFamilyPolicy") == "RequireDualStack":
        errs.append(invalid("spec.ipFamilyPolicy", "RequireDualStack",
                            "this cluster is not configured for dual-stack services"))
    for i, fam in enumerate(spec.get("ipFamilies") or []):
        if fam != "IPv4":
            errs.append(invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster"))
    return errs


def plan_allocation(net: ServiceNetwork, old: Obj | None, new: Obj) -> tuple[AllocationPlan, list[FieldError]]:
    """What storing `new` (over `old`, None on create) allocates and releases, and the
    errors that need no look at other Services (range, families). Whether a requested
    address or port is free is the store's to say."""
    spec, old_spec = _spec(new), _spec(old)
    plan = AllocationPlan()
    errs: list[FieldError] = []
    had_ips = held_ips(old_spec) if old is not None else set()
    had_ports = held_ports(old_spec) if old is not None else set()
    used_ips: set[str] = set()
    if needs_cluster_ip(spec):
        errs += ip_family_errors(spec)
        ip = spec.get("clusterIP") or ""
        if ip != "None":
            if ip and ip in had_ips:
                used_ips.add(ip)
            elif ip:
                if net.ip_offset(ip) is None:
                    if ":" not in ip:  # an IPv6 address was reported above
                        errs.append(ip_not_in_range_error(net, list(spec.get("clusterIPs") or [ip]), ip))
                else:
                    plan.cluster_ip = ip
                    used_ips.add(ip)
            else:
                plan.cluster_ip = ""
    plan.release_ips = had_ips - used_ips
    used_ports: set[int] = set()
    if needs_node_ports(spec):
        for claim in node_port_claims(spec):
            if claim.requested and claim.requested in had_ports:
                used_ports.add(claim.requested)
                continue
            if claim.requested:
                used_ports.add(claim.requested)
                if not net.port_in_range(claim.requested):
                    errs.append(port_not_in_range_error(net, claim.field_index, claim.requested))
            plan.node_ports.append(claim)
    if needs_health_check_port(spec):
        hc = spec.get("healthCheckNodePort") or 0
        if hc and hc in had_ports:
            used_ports.add(hc)
        else:
            if hc:
                used_ports.add(hc)
            plan.health_check = hc
    plan.release_ports = had_ports - used_ports
    return plan, errs


def node_port_claims(spec: Obj) -> list[NodePortClaim]:
    """The node ports a NodePort/LoadBalancer Service needs. Entries with the same port
    number (53/UDP and 53/TCP) share one node port, as kube-apiserver does; a
    LoadBalancer with `allocateLoadBalancerNodePorts: false` gets only those asked for."""
    allocate_any = spec.get("type") == "NodePort" or spec.get("allocateLoadBalancerNodePorts") is not False
    ports = list(enumerate(spec.get("ports") or []))
    claims: list[NodePortClaim] = []
    by_requested: dict[int, NodePortClaim] = {}
    by_port: dict[Any, NodePortClaim] = {}
    for i, p in ports:
        if not isinstance(p, dict):
            continue
        given = p.get("nodePort") if isinstance(p.get("nodePort"), int) else 0
        if not given and not allocate_any:
            continue
        wanted = given or _requested_for_port(p.get("port"), ports)
        if wanted:
            claim = by_requested.get(wanted)
            if claim is None:
                claim = by_requested[wanted] = NodePortClaim(wanted, field_index=i)
                claims.append(claim)
        else:
            claim = by_port.get(p.get("port"))
            if claim is None:
                claim = by_port[p.get("port")] = NodePortClaim(0, field_index=i)
                claims.append(claim)
        claim.indexes.append(i)
    return claims


def _requested_for_port(port: Any, ports: list[tuple[int, Any]]) -> int:
    for _, p in ports:
        if isinstance(p, dict) and p.get("port") == port and isinstance(p.get("nodePort"), int) and p["nodePort"]:
            return int(p["nodePort"])
    return 0


def apply_cluster_ip(spec: Obj, ip: str) -> None:
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]


def apply_node_port(spec: Obj, claim: NodePortClaim, port: int) -> None:
    ports = spec.get("ports") or []
    for i in claim.indexes:
        ports[i]["nodePort"] = port


# -- choosing a free address or port ----------------------------------------------------------


def pick_offset(size: int, band: int, taken: Callable[[int], bool], rng: random.Random) -> int | None:
    """A free offset in [0, size): a random start above the static band scanning upwards
    (wrapping within it), then the same inside the band; None when all are taken."""
    for lo, hi in ((band, size), (0, min(band, size))):
        n = hi - lo
        if n <= 0:
            continue
        start = rng.randrange(n)
        for i in range(n):
            off = lo + (start + i) % n
            if not taken(off):
                return off
    return None


# -- repair: allocation records against the Services ------------------------------------------


@dataclass(frozen=True)
class Owner:
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, svc: Obj) -> Owner:
        meta = svc.get("metadata") or {}
        return cls(meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")

    def to_json(self) -> Obj:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}

    @classmethod
    def from_json(cls, data: Any) -> Owner:
        d = data if isinstance(data, dict) else {}
        return cls(str(d.get("namespace") or ""), str(d.get("name") or ""), str(d.get("uid") or ""))


@dataclass(frozen=True)
class Record:
    """One stored allocation: `kind` "ip" or "port", the address or port as text."""

    kind: str
    value: str
    owner: Owner
    age: float  # seconds since it was written
    revision: int


@dataclass
class RepairPlan:
    drop: list[Record] = field(default_factory=list)  # leaked: no live owner holds it
    add: list[tuple[str, str, Owner]] = field(default_factory=list)  # held by a Service, not recorded
    conflicts: list[str] = field(default_factory=list)  # held by two Services, or recorded for another
    out_of_range: list[str] = field(default_factory=list)  # held outside the configured ranges


def plan_repair(net: ServiceNetwork, services: Iterable[Obj], records: Iterable[Record],
                grace: float) -> RepairPlan:
    """Records whose owner is gone, or no longer holds the value, are dropped once older
    than `grace` seconds (younger ones may belong to a write still in flight on this or
    another API server); values Services hold without a record get one."""
    holders: dict[tuple[str, str], Owner] = {}
    plan = RepairPlan()
    for svc in services:
        owner = Owner.of(svc)
        spec = _spec(svc)
        for kind, values in (("ip", sorted(held_ips(spec))), ("port", sorted(str(p) for p in held_ports(spec)))):
            for value in values:
                in_range = net.ip_offset(value) is not None if kind == "ip" else net.port_in_range(int(value))
                if not in_range:
                    plan.out_of_range.append(f"{owner.namespace}/{owner.name} holds {kind} {value} "
                                             "outside the configured range")
                    continue
                other = holders.get((kind, value))
                if other is not None and other != owner:
                    plan.conflicts.append(f"{kind} {value} is held by both {other.namespace}/{other.name} "
                                          f"and {owner.namespace}/{owner.name}")
                    continue
                holders[(kind, value)] = owner
    recorded: set[tuple[str, str]] = set()
    for rec in records:
        holder = holders.get((rec.kind, rec.value))
        if holder == rec.owner:
            recorded.add((rec.kind, rec.value))
        elif holder is not None:
            # Recorded for someone else while a live Service holds it: the Service wins
            # once the record is old enough to be no write in flight.
            if rec.age >= grace:
                plan.drop.append(rec)
                plan.conflicts.append(f"{rec.kind} {rec.value} was recorded for {rec.owner.namespace}/"
                                      f"{rec.owner.name} but is held by {holder.namespace}/{holder.name}")
            else:
                recorded.add((rec.kind, rec.value))
        elif rec.age >= grace:
            plan.drop.append(rec)
    for (kind, value), owner in holders.items():
        if (kind, value) not in recorded:
            plan.add.append((kind, value, owner))
    plan.add.sort(key=lambda a: (a[0], a[1]))
    return plan
