"""The service proxy of a node: watches Services and EndpointSlices and keeps the
host's packet filter in step with them, like kube-proxy: nftables when the host has
it, iptables otherwise.

Changes are coalesced: a burst of endpoint updates becomes one transaction. Every
sync computes the whole plan from the informers' state (`model`, `nftables.build`)
and applies only the difference to what this process applied last; a periodic full
resync (and any failed sync) rebuilds the table from nothing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass

from kybernetes.client import Client, Informers
from kybernetes.client.informer import InformerFactory
from kybernetes.client.resources import ENDPOINTSLICES, SERVICES
from kybernetes.proxy import iptables, model, nftables

log = logging.getLogger(__name__)


@dataclass
class ProxyOptions:
    node_name: str
    cluster_cidr: str = ""  # the pod network: traffic from outside it to a service is masqueraded
    table: str = nftables.DEFAULT_TABLE
    mode: str = "auto"  # nftables, iptables, or auto: nftables when the host has it
    min_interval: float = 0.05  # coalesce changes arriving closer together than this
    full_resync: float = 300.0


def choose_mode(wanted: str = "auto") -> str:
    """The packet filter to program: nftables unless the host lacks it (or iptables is
    asked for)."""
    if wanted in ("nftables", "iptables"):
        return wanted
    if shutil.which("nft") and subprocess.run(["nft", "list", "tables"], capture_output=True).returncode == 0:
        return "nftables"
    return "iptables"


def enable_bridge_netfilter() -> None:
    """Make packets between pods on one bridge pass the IP hooks (br_netfilter): a
    pod reaching a service whose endpoint sits on the same bridge gets its answer
    back through conntrack, un-NATed, instead of straight from the endpoint."""
    path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return
        with open(path, "w") as f:
            f.write("1")
    except OSError as e:
        log.warning("cannot enable %s (is br_netfilter loaded?): %s", path, e)


class Proxier:
    def __init__(self, client: Client, options: ProxyOptions, factory: Informers | None = None) -> None:
        self.options = options
        self.factory = factory or InformerFactory(client)
        self._own_factory = factory is None
        self.services = self.factory.informer(SERVICES)
        self.slices = self.factory.informer(ENDPOINTSLICES)
        self._dirty = asyncio.Event()
        for inf in (self.services, self.slices):
            inf.add_handler(on_add=self._changed, on_update=lambda _o, _n: self._changed(),
                            on_delete=self._changed)
        self.mode = choose_mode(options.mode)
        self._applied: nftables.Ruleset | iptables.Tables | None = None

    def set_pod_cidr(self, cidr: str) -> None:
        if cidr != self.options.cluster_cidr:
            self.options.cluster_cidr = cidr
            self._dirty.set()

    def _changed(self, _obj: object = None) -> None:
        self._dirty.set()

    def plan(self) -> nftables.Ruleset | iptables.Tables:
        ports = model.service_ports(self.services.list(), self.slices.list())
        build = nftables.build if self.mode == "nftables" else iptables.build
        return build(ports, self.options.node_name, self.options.cluster_cidr)

    async def sync(self, full: bool = False) -> None:
        wanted = self.plan()
        previous = None if full else self._applied
        if previous is not None and previous == wanted:
            return
        try:
            if isinstance(wanted, nftables.Ruleset):
                assert previous is None or isinstance(previous, nftables.Ruleset)
                await nftables.apply(nftables.render(wanted, previous, self.options.table))
            else:
                await iptables.apply(wanted)
        except (nftables.NftError, iptables.IptablesError) as e:
            self._applied = None  # unknown state: the next sync rebuilds everything
            log.warning("service rules not applied: %s", e)
            raise
        self._applied = wanted

    async def run(self) -> None:
        enable_bridge_netfilter()
        if self._own_factory:
            await self.factory.start()
        await asyncio.gather(self.services.synced.wait(), self.slices.synced.wait())
        next_full = 0.0
        try:
            while True:
                full = time.monotonic() >= next_full
                self._dirty.clear()
                try:
                    await self.sync(full=full)
                    if full:
                        next_full = time.monotonic() + self.options.full_resync
                except (nftables.NftError, iptables.IptablesError):
                    next_full = 0.0
                    await asyncio.sleep(1.0)
                    continue
                except OSError as e:  # nft missing or not runnable
                    log.warning("service proxy cannot program rules: %s", e)
                    await asyncio.sleep(10.0)
                    continue
                try:
                    await asyncio.wait_for(self._dirty.wait(), timeout=max(1.0, next_full - time.monotonic()))
                except TimeoutError:
                    pass
                await asyncio.sleep(self.options.min_interval)
        finally:
            if self._own_factory:
                await self.factory.stop()
