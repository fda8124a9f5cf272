"""The service proxy's rules as one nftables table (`ip kybernetes` by default).

`render` turns the plan of `model.service_ports` into an `nft -f` script that moves
the table from the previously applied state to the new one in ONE transaction: the
kernel applies all of it or none of it. The first sync after start (or after a
failed one) rebuilds the table from nothing, so a restart never keeps stale rules;
later syncs rewrite only the chains whose rules changed and add or delete only the
map and set elements that changed; session-affinity sets keep their entries.

Packet path. nat prerouting/output send every packet through `services`, which
looks up (destination, protocol, port) in `service-ips` and, for addresses of this
host, (protocol, port) in `node-ports`; both map to a chain per service port that
picks an endpoint at random (`numgen`) or by affinity and DNATs to it. Traffic from
outside the pod network to a cluster IP and external traffic with the Cluster policy
are marked and masqueraded in postrouting, as is a pod reaching itself through its
service (hairpin: source and translated destination in the `hairpin` set). Service ports without endpoints are rejected in the filter hooks,
as kube-proxy does, instead of timing out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kybernetes.proxy.model import Endpoint, ServicePort, short_id

log = logging.getLogger(__name__)

DEFAULT_TABLE = "kybernetes"
MASQ_MARK = "0x00004000"
LOCAL_DST = "fib daddr type local ip daddr != 127.0.0.0/8"

BASE_CHAINS = {
    "nat-prerouting": "type nat hook prerouting priority -100; policy accept;",
    "nat-output": "type nat hook output priority -100; policy accept;",
    "nat-postrouting": "type nat hook postrouting priority 100; policy accept;",
    "filter-input": "type filter hook input priority -1; policy accept;",
    "filter-forward": "type filter hook forward priority -1; policy accept;",
    "filter-output": "type filter hook output priority -1; policy accept;",
}
MAPS = {
    "service-ips": "type ipv4_addr . inet_proto . inet_service : verdict;",
    "node-ports": "type inet_proto . inet_service : verdict;",
}
SETS = {
    "no-endpoints": "type ipv4_addr . inet_proto . inet_service;",
    "no-endpoint-node-ports": "type inet_proto . inet_service;",
    "hairpin": "type ipv4_addr . ipv4_addr;",
}


@dataclass
class Ruleset:
    """Desired state of the table: rules per chain, affinity sets, map elements."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    affinity_sets: dict[str, int] = field(default_factory=dict)  # name -> timeout seconds
    elements: dict[str, list[str]] = field(default_factory=dict)  # map/set name -> elements


def _sep_chain(sp: ServicePort, e: Endpoint) -> str:
    return f"sep-{short_id(sp.key, e.ip, e.port)}"


def _affinity_set(sp: ServicePort, e: Endpoint) -> str:
    return f"aff-{short_id(sp.key, e.ip, e.port, sp.affinity_seconds)}"


def _pick(sp: ServicePort, endpoints: list[Endpoint]) -> list[str]:
    """Rules choosing an endpoint. Without affinity the choice and the DNAT are one
    rule (a random index into an anonymous map), so a service port costs one chain
    whatever its number of endpoints; affinity needs a chain per endpoint to record
    the client in."""
    if sp.affinity_seconds:
        rules = [f"ip saddr @{_affinity_set(sp, e)} goto {_sep_chain(sp, e)}" for e in endpoints]
        if len(endpoints) == 1:
            return rules + [f"goto {_sep_chain(sp, endpoints[0])}"]
        choices = ", ".join(f"{i} : goto {_sep_chain(sp, e)}" for i, e in enumerate(endpoints))
        return rules + [f"numgen random mod {len(endpoints)} vmap {{ {choices} }}"]
    if len(endpoints) == 1:
        return [f"meta l4proto {sp.protocol} dnat ip to {endpoints[0].ip}:{endpoints[0].port}"]
    targets = ", ".join(f"{i} : {e.ip} . {e.port}" for i, e in enumerate(endpoints))
    return [f"meta l4proto {sp.protocol} dnat ip to numgen random mod {len(endpoints)} map {{ {targets} }}"]


def _route(keys: list[str], verdicts: dict[str, str], rejects: set[str], chain: str, has_endpoints: bool) -> None:
    """Send `keys` to `chain` when there is an endpoint to go to; reject them otherwise."""
    for key in keys:
        if has_endpoints:
            verdicts.setdefault(key, f"goto {chain}")
        else:
            rejects.add(key)


def build(ports: list[ServicePort], node: str, cluster_cidr: str = "") -> Ruleset:
    """The whole table for these service ports, seen from node `node`."""
    rs = Ruleset()
    rs.chains = {
        "nat-prerouting": ["jump services"],
        "nat-output": ["jump services"],
        "nat-postrouting": [f"meta mark & {MASQ_MARK} == {MASQ_MARK} masquerade fully-random",
                            # Hairpin: a pod that reached itself through a service.
                            "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random"],
        "filter-input": ["ct state new jump reject-no-endpoints"],
        "filter-forward": ["ct state new jump reject-no-endpoints"],
        "filter-output": ["ct state new jump reject-no-endpoints"],
        "reject-no-endpoints": ["ip daddr . meta l4proto . th dport @no-endpoints reject",
                                f"{LOCAL_DST} meta l4proto . th dport @no-endpoint-node-ports reject"],
        "mark-for-masquerade": [f"meta mark set meta mark | {MASQ_MARK}"],
        "services": ["ip daddr . meta l4proto . th dport vmap @service-ips",
                     f"{LOCAL_DST} meta l4proto . th dport vmap @node-ports"],
    }
    service_ips: dict[str, str] = {}
    node_ports: dict[str, str] = {}
    no_endpoints: set[str] = set()
    no_endpoint_node_ports: set[str] = set()
    hairpin: set[str] = set()
    for sp in ports:
        sid = short_id(sp.key)
        internal = sp.internal_endpoints(node)
        external = sp.external_endpoints(node) if sp.external else []
        for e in {*internal, *external}:
            hairpin.add(f"{e.ip} . {e.ip}")
            if sp.affinity_seconds:
                aff = _affinity_set(sp, e)
                rs.affinity_sets[aff] = sp.affinity_seconds
                rs.chains[_sep_chain(sp, e)] = [f"update @{aff} {{ ip saddr }}",
                                                f"meta l4proto {sp.protocol} dnat ip to {e.ip}:{e.port}"]
        _route([f"{ip} . {sp.protocol} . {sp.port}" for ip in sp.cluster_ips], service_ips, no_endpoints,
              f"svc-{sid}", bool(internal))
        if internal:
            masq = [f"ip saddr != {cluster_cidr} jump mark-for-masquerade"] if cluster_cidr else []
            rs.chains[f"svc-{sid}"] = masq + _pick(sp, internal)
        if not sp.external:
            continue
        keys = [f"{sp.protocol} . {sp.node_port}"] if sp.node_port else []
        if sp.load_balancer:
            keys.append(f"{sp.protocol} . {sp.port}")
        _route([f"{ip} . {sp.protocol} . {sp.port}" for ip in sp.ingress_ips], service_ips, no_endpoints,
              f"ext-{sid}", bool(external))
        _route(keys, node_ports, no_endpoint_node_ports, f"ext-{sid}", bool(external))
        if external:
            masq = [] if sp.external_local else ["jump mark-for-masquerade"]
            rs.chains[f"ext-{sid}"] = masq + _pick(sp, external)
    rs.elements = {
        "service-ips": [f"{k} : {v}" for k, v in sorted(service_ips.items())],
        "node-ports": [f"{k} : {v}" for k, v in sorted(node_ports.items()) if k not in no_endpoint_node_ports],
        "no-endpoints": sorted(no_endpoints - service_ips.keys()),
        "no-endpoint-node-ports": sorted(no_endpoint_node_ports - node_ports.keys()),
        "hairpin": sorted(hairpin),
    }
    return rs


def render(new: Ruleset, old: Ruleset | None, table: str = DEFAULT_TABLE) -> str:
    """An `nft -f` script taking the table from `old` (None: unknown) to `new`."""
    out: list[str] = [f"add table ip {table}"]
    if old is None:
        out += [f"delete table ip {table}", f"add table ip {table}"]
        old = Ruleset()
    # 1. Declare what is new (a declaration of something that exists is a no-op).
    decl = [f"  chain {name} {{ {BASE_CHAINS[name]} }}" for name in BASE_CHAINS]
    decl += [f"  map {name} {{ {spec} }}" for name, spec in MAPS.items()]
    decl += [f"  set {name} {{ {spec} }}" for name, spec in SETS.items()]
    decl += [f"  set {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {secs}s; }}"
             for name, secs in new.affinity_sets.items() if name not in old.affinity_sets]
    decl += [f"  chain {name} {{ }}" for name in new.chains if name not in old.chains and name not in BASE_CHAINS]
    out += [f"table ip {table} {{", *decl, "}"]
    # 2. Empty the chains whose rules change; take out map and set elements that go or
    # change (a map element is keyed by what precedes its " : ").
    changed = [name for name, rules in new.chains.items() if old.chains.get(name) != rules]
    out += [f"flush chain ip {table} {name}" for name in changed if name in old.chains]
    added: dict[str, list[str]] = {}
    for name in (*MAPS, *SETS):
        before, after = set(old.elements.get(name, ())), set(new.elements.get(name, ()))
        removed = sorted(before - after)
        if removed:
            keys = [e.split(" : ")[0] for e in removed]
            out.append(f"delete element ip {table} {name} {{ {', '.join(keys)} }}")
        added[name] = sorted(after - before)
    # 3. Fill them.
    for name in changed:
        out += [f"add rule ip {table} {name} {rule}" for rule in new.chains[name]]
    for name, elements in added.items():
        if elements:
            out.append(f"add element ip {table} {name} {{ {', '.join(elements)} }}")
    # 4. Remove what is gone (nothing refers to it any more).
    gone = [name for name in old.chains if name not in new.chains]
    out += [f"flush chain ip {table} {name}" for name in gone]
    out += [f"delete chain ip {table} {name}" for name in gone]
    out += [f"delete set ip {table} {name}" for name in old.affinity_sets if name not in new.affinity_sets]
    return "\n".join(out) + "\n"


class NftError(Exception):
    """nft refused a script; nothing of it was applied."""


async def apply(script: str) -> None:
    proc = await asyncio.create_subprocess_exec("nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise NftError(err.decode(errors="replace").strip()[:2000])


async def delete_table(table: str = DEFAULT_TABLE) -> None:
    """Remove every rule of the proxy (uninstall, tests)."""
    await apply(f"add table ip {table}\ndelete table ip {table}\n")
