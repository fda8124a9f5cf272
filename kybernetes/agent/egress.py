"""Masquerade for pod traffic leaving the node's pod network: one nftables rule for the
whole pod CIDR, in a table of the node's own (`ip kyb-egress-<bridge>`).

The CNI bridge plugin's `ipMasq` would do the same with an iptables chain per pod,
added on every pod start and removed on every delete (about 10 ms of each start and
50 ms of CPU per delete). The table outlives the agent on purpose: a restarting agent
must not cut its running pods off; `scripts/down.sh` and the test harness remove it."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
from collections.abc import Iterable

# Multicast is never masqueraded, as the bridge plugin's rule leaves it alone.
_MULTICAST = "224.0.0.0/4"


def table_name(bridge: str) -> str:
    """The node's egress table, named after its bridge so that two agents on one host
    (tests, a second cluster) keep apart."""
    return f"kyb-egress-{bridge}"


def masquerade_script(table: str, pod_cidr: str, cluster_cidrs: Iterable[str] = ()) -> str:
    """An `nft -f` script that (re)creates `table` with the one rule, atomically: from
    the pod CIDR to anywhere outside it and outside every other node's pod CIDR
    (`cluster_cidrs`, from agent/overlay.py: pods across nodes see each other's own
    addresses), and not multicast, masquerade."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    if net.version != 4:
        raise ValueError(f"pod CIDR {pod_cidr} is not IPv4")
    keep = sorted({net, *(ipaddress.ip_network(c, strict=False) for c in cluster_cidrs)}, key=str)
    if any(k.version != 4 for k in keep):
        raise ValueError(f"cluster CIDRs {list(cluster_cidrs)} are not all IPv4")
    # nft refuses overlapping elements in an anonymous set: keep only the widest.
    keep = [k for k in keep if not any(o != k and k.subnet_of(o) for o in keep)]
    dests = str(keep[0]) if len(keep) == 1 else "{ " + ", ".join(str(k) for k in keep) + " }"
    return (f"table ip {table} {{}}\n"
            f"delete table ip {table}\n"
            f"table ip {table} {{\n"
            f"  chain postrouting {{\n"
            f"    type nat hook postrouting priority srcnat; policy accept;\n"
            f"    ip saddr {net} ip daddr != {dests} ip daddr != {_MULTICAST} masquerade\n"
            f"  }}\n"
            f"}}\n")


def available() -> bool:
    """Whether this host can take the rule (else the bridge plugin masquerades per pod)."""
    return shutil.which("nft") is not None


async def apply(script: str) -> None:
    proc = await asyncio.create_subprocess_exec("nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise RuntimeError(f"nft refused the pod network's masquerade rule: {err.decode(errors='replace').strip()}")
