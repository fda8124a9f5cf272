"""The service proxy's rules for hosts without nftables: iptables chains named `KYB-*`.

The same plan as `nftables` (`model.service_ports`), written the way kube-proxy's
iptables mode does it: a chain per service port picking an endpoint with
`statistic` rules, a chain per endpoint doing the DNAT (and the hairpin mark, and
`recent` for ClientIP affinity). Every sync is one `iptables-restore --noflush` of
the nat and filter tables: all `KYB-*` chains are declared (which empties them)
and refilled, chains no longer wanted are deleted, and nothing outside them is
touched except the jumps from the built-in chains, added once.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from kybernetes.proxy.model import Endpoint, ServicePort, short_id

PREFIX = "KYB-"
MASQ_MARK = "0x4000/0x4000"
LOCAL = "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8"
# (table, built-in chain, our chain, match before the jump)
HOOKS = (
    ("nat", "PREROUTING", "KYB-SERVICES", ""),
    ("nat", "OUTPUT", "KYB-SERVICES", ""),
    ("nat", "POSTROUTING", "KYB-POSTROUTING", ""),
    ("filter", "INPUT", "KYB-REJECT", "-m conntrack --ctstate NEW"),
    ("filter", "FORWARD", "KYB-REJECT", "-m conntrack --ctstate NEW"),
    ("filter", "OUTPUT", "KYB-REJECT", "-m conntrack --ctstate NEW"),
)


@dataclass
class Tables:
    """Rules per chain of the nat and filter tables."""

    nat: dict[str, list[str]] = field(default_factory=dict)
    filter: dict[str, list[str]] = field(default_factory=dict)


def _sep(sp: ServicePort, e: Endpoint) -> str:
    return f"KYB-SEP-{short_id(sp.key, e.ip, e.port).upper()}"


def _pick(sp: ServicePort, endpoints: list[Endpoint]) -> list[str]:
    rules = []
    if sp.affinity_seconds:
        rules += [f"-m recent --name {_sep(sp, e)} --rcheck --seconds {sp.affinity_seconds} --reap -j {_sep(sp, e)}"
                  for e in endpoints]
    n = len(endpoints)
    for i, e in enumerate(endpoints):
        if i < n - 1:
            rules.append(f"-m statistic --mode random --probability {1 / (n - i):.11f} -j {_sep(sp, e)}")
        else:
            rules.append(f"-j {_sep(sp, e)}")
    return rules


def build(ports: list[ServicePort], node: str, cluster_cidr: str = "") -> Tables:
    t = Tables()
    services: list[str] = []
    node_ports: list[str] = []
    reject: list[str] = []
    t.nat["KYB-MARK-MASQ"] = [f"-j MARK --or-mark {MASQ_MARK.split('/')[0]}"]
    t.nat["KYB-POSTROUTING"] = [f"-m mark --mark {MASQ_MARK} -j MASQUERADE --random-fully"]
    for sp in ports:
        sid = short_id(sp.key).upper()
        proto = sp.protocol
        internal = sp.internal_endpoints(node)
        external = sp.external_endpoints(node) if sp.external else []
        for e in {*internal, *external}:
            rules = [f"-s {e.ip}/32 -j KYB-MARK-MASQ"]
            if sp.affinity_seconds:
                rules.append(f"-m recent --name {_sep(sp, e)} --set")
            rules.append(f"-p {proto} -j DNAT --to-destination {e.ip}:{e.port}")
            t.nat[_sep(sp, e)] = rules
        for ip in sp.cluster_ips:
            match = f"-d {ip}/32 -p {proto} -m {proto} --dport {sp.port}"
            if internal:
                services.append(f"{match} -j KYB-SVC-{sid}")
            else:
                reject.append(f"{match} -j REJECT")
        if internal:
            masq = [f"! -s {cluster_cidr} -j KYB-MARK-MASQ"] if cluster_cidr else []
            t.nat[f"KYB-SVC-{sid}"] = masq + _pick(sp, internal)
        if not sp.external:
            continue
        target = f"-j KYB-EXT-{sid}" if external else "-j REJECT"
        for ip in sp.ingress_ips:
            (services if external else reject).append(f"-d {ip}/32 -p {proto} -m {proto} --dport {sp.port} {target}")
        ports_open = ([sp.node_port] if sp.node_port else []) + ([sp.port] if sp.load_balancer else [])
        for port in ports_open:
            (node_ports if external else reject).append(f"{LOCAL} -p {proto} -m {proto} --dport {port} {target}")
        if external:
            masq = [] if sp.external_local else ["-j KYB-MARK-MASQ"]
            t.nat[f"KYB-EXT-{sid}"] = masq + _pick(sp, external)
    # Node ports last: a cluster IP that happens to be local must match as itself.
    t.nat["KYB-SERVICES"] = services + node_ports
    t.filter["KYB-REJECT"] = reject
    return t


def restore_input(wanted: Tables, existing: dict[str, set[str]]) -> str:
    """iptables-restore input replacing every `KYB-*` chain; `existing` maps a table
    to the `KYB-*` chains it has now (those not wanted are deleted)."""
    out: list[str] = []
    for table in ("nat", "filter"):
        chains: dict[str, list[str]] = getattr(wanted, table)
        stale = sorted(existing.get(table, set()) - chains.keys())
        out.append(f"*{table}")
        out += [f":{name} - [0:0]" for name in [*chains, *stale]]
        for name, rules in chains.items():
            out += [f"-A {name} {rule}" for rule in rules]
        out += [f"-X {name}" for name in stale]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


_CHAIN = re.compile(r"^:(KYB-\S+) ", re.M)


async def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE if stdin is not None else None,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(), err.decode()


class IptablesError(Exception):
    """iptables refused the rules; nothing of that table's batch was applied."""


async def existing_chains() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table in ("nat", "filter"):
        code, out, err = await _run("iptables-save", "-t", table)
        if code != 0:
            raise IptablesError(err.strip())
        found[table] = set(_CHAIN.findall(out))
    return found


async def ensure_hooks() -> None:
    for table, builtin, chain, match in HOOKS:
        args = [*match.split(), "-j", chain] if match else ["-j", chain]
        code, _, _ = await _run("iptables", "-w", "-t", table, "-C", builtin, *args)
        if code != 0:
            code, _, err = await _run("iptables", "-w", "-t", table, "-I", builtin, "1", *args)
            if code != 0:
                raise IptablesError(err.strip())


async def apply(wanted: Tables) -> None:
    existing = await existing_chains()
    code, _, err = await _run("iptables-restore", "-w", "--noflush", stdin=restore_input(wanted, existing))
    if code != 0:
        raise IptablesError(err.strip()[:2000])
    await ensure_hooks()


async def remove_all() -> None:
    """Every `KYB-*` chain and the jumps to them (uninstall, tests)."""
    for table, builtin, chain, match in HOOKS:
        args = [*match.split(), "-j", chain] if match else ["-j", chain]
        while (await _run("iptables", "-w", "-t", table, "-D", builtin, *args))[0] == 0:
            pass
    existing = await existing_chains()
    lines = []
    for table in ("nat", "filter"):
        names = sorted(existing.get(table, set()))
        lines += [f"*{table}", *[f":{n} - [0:0]" for n in names], *[f"-X {n}" for n in names], "COMMIT"]
    await _run("iptables-restore", "-w", "--noflush", stdin="\n".join(lines) + "\n")
