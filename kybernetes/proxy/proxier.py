"""The service proxy of a node: watches Services and EndpointSlices and keeps the
host's packet filter in step with them (like kube-proxy in nftables mode).

Changes are coalesced: a burst of endpoint updates becomes one transaction. Every
sync computes the whole plan from the informers' state (`model`, `nftables.build`)
and applies only the difference to what this process applied last; a periodic full
resync (and any failed sync) rebuilds the table from nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from kybernetes.client import ApiClient
from kybernetes.client.informer import InformerFactory
from kybernetes.client.resources import ENDPOINTSLICES, SERVICES
from kybernetes.proxy import model, nftables

log = logging.getLogger(__name__)


@dataclass
class ProxyOptions:
    node_name: str
    cluster_cidr: str = ""  # the pod network: traffic from outside it to a service is masqueraded
    table: str = nftables.DEFAULT_TABLE
    min_interval: float = 0.05  # coalesce changes arriving closer together than this
    full_resync: float = 300.0


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
    def __init__(self, client: ApiClient, options: ProxyOptions, factory: InformerFactory | None = None) -> None:
        self.options = options
        self.factory = factory or InformerFactory(client)
        self._own_factory = factory is None
        self.services = self.factory.informer(SERVICES)
        self.slices = self.factory.informer(ENDPOINTSLICES)
        self._dirty = asyncio.Event()
        for inf in (self.services, self.slices):
            inf.add_handler(on_add=self._changed, on_update=lambda _o, _n: self._changed(),
                            on_delete=self._changed)
        self._applied: nftables.Ruleset | None = None
        self.last_sync_seconds = 0.0
        self.syncs = 0

    def set_pod_cidr(self, cidr: str) -> None:
        if cidr != self.options.cluster_cidr:
            self.options.cluster_cidr = cidr
            self._dirty.set()

    def _changed(self, _obj: object = None) -> None:
        self._dirty.set()

    def plan(self) -> nftables.Ruleset:
        ports = model.service_ports(self.services.list(), self.slices.list())
        return nftables.build(ports, self.options.node_name, self.options.cluster_cidr)

    async def sync(self, full: bool = False) -> None:
        started = time.monotonic()
        wanted = self.plan()
        previous = None if full else self._applied
        if previous is not None and previous == wanted:
            return
        try:
            await nftables.apply(nftables.render(wanted, previous, self.options.table))
        except nftables.NftError as e:
            self._applied = None  # unknown state: the next sync rebuilds everything
            log.warning("service rules not applied: %s", e)
            raise
        self._applied = wanted
        self.syncs += 1
        self.last_sync_seconds = time.monotonic() - started

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
                except nftables.NftError:
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
