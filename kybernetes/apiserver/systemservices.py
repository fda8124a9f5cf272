"""The Services the API server keeps itself, as kube-apiserver does.

`default/kubernetes` (the first address of the service CIDR, port `https` 443 to
the API servers' port) with an `Endpoints` and an `EndpointSlice` named
`kubernetes` listing every live API server, and `kube-system/kube-dns` (the
cluster DNS address, ports 53/UDP, 53/TCP and 9153/TCP), whose endpoints are the
node agents' to publish. Both Services have no selector, so the endpoint
controllers leave them alone.

Each API server records itself in a lease key,
`/registry/kybernetes/apiserverleases/<ip>:<port>`, renewed every few seconds;
the endpoints list the unexpired leases. Several API servers sharing one store
each appear, one that stops drops out at once, and one that dies drops out when
its lease expires. Writes of Services and endpoints go through the same verbs
as any client's, so validation, allocation and watches apply to them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.labels import SERVICE_NAME_LABEL
from kybernetes.api.registry import Registry
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.servicealloc import ServiceNetwork
from kybernetes.apiserver.serviceips import ServiceAllocator
from kybernetes.apiserver.watchcache import WatchCache, encode_for_store
from kybernetes.storage.interface import (
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
    StorageFullError,
    Store,
)

log = logging.getLogger("kybernetes.apiserver.systemservices")

Obj = dict[str, Any]

LEASE_PREFIX = "/registry/kybernetes/apiserverleases/"
MANAGER = "kybernetes-server"
RENEW_SECONDS = 10.0
# Longer than a few renewals, so a busy server or a small clock skew between API
# servers does not make a live one flicker out of the endpoints.
LEASE_TTL_SECONDS = 45.0
REPAIR_SECONDS = 180.0
SKIP_MIRROR = "endpointslice.kubernetes.io/skip-mirror"


@dataclass(frozen=True, order=True)
class ApiEndpoint:
    ip: str
    port: int


# -- decisions ------------------------------------------------------------------------------


def choose_advertise_address(flag: str | None, bind: str, host_ip: str) -> str:
    """kube-apiserver's rule: the flag, else the bind address unless it is unspecified
    or loopback (other machines could not reach it), else the host's primary address."""
    if flag:
        return flag
    try:
        addr = ipaddress.ip_address(bind)
    except ValueError:
        return host_ip
    if addr.is_unspecified or addr.is_loopback:
        return host_ip
    return bind


def kubernetes_service(net: ServiceNetwork, port: int) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": str(net.first_ip), "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    }


def kube_dns_service(net: ServiceNetwork) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": str(net.dns_ip),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
    }


def service_port_drift(existing: Obj, desired: Obj) -> bool:
    """kube-apiserver puts the `kubernetes` Service's type and ports back if they changed."""
    def shape(svc: Obj) -> tuple[Any, ...]:
        spec = svc.get("spec") or {}
        return (spec.get("type"), tuple((p.get("name"), p.get("port"), p.get("protocol") or "TCP",
                                          p.get("targetPort")) for p in spec.get("ports") or []))
    return shape(existing) != shape(desired)


def live_endpoints(leases: list[tuple[ApiEndpoint, float]], now: float, ttl: float) -> list[ApiEndpoint]:
    return sorted({ep for ep, renewed in leases if now - renewed < ttl})


def _https(port: int) -> Obj:
    return {"name": "https", "port": port, "protocol": "TCP"}


def kubernetes_endpoints(eps: list[ApiEndpoint]) -> Obj:
    """One subset per port (all API servers normally share one)."""
    by_port: dict[int, list[str]] = {}
    for ep in eps:
        by_port.setdefault(ep.port, []).append(ep.ip)
    obj: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {SKIP_MIRROR: "true"}}}
    if by_port:
        obj["subsets"] = [{"addresses": [{"ip": ip} for ip in sorted(ips)], "ports": [_https(port)]}
                          for port, ips in sorted(by_port.items())]
    return obj


def common_port(eps: list[ApiEndpoint]) -> int:
    """The port most API servers use (the lowest on a tie; 0 for none): the same answer on
    every server, so servers on different ports never take turns rewriting what carries one."""
    counts: dict[int, int] = {}
    for ep in eps:
        counts[ep.port] = counts.get(ep.port, 0) + 1
    return min(counts, key=lambda p: (-counts[p], p)) if counts else 0


def kubernetes_endpointslice(eps: list[ApiEndpoint]) -> Obj:
    """An EndpointSlice has one port list: it carries the `common_port`."""
    port = common_port(eps)
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": "kubernetes", "namespace": "default",
                             "labels": {SERVICE_NAME_LABEL: "kubernetes"}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [ep.ip], "conditions": {"ready": True}}
                              for ep in eps if ep.port == port]}
    if port:
        obj["ports"] = [_https(port)]
    return obj


def endpoints_changed(existing: Obj, desired: Obj) -> bool:
    fields = ("subsets",) if desired.get("kind") == "Endpoints" else ("addressType", "endpoints", "ports")
    if any((existing.get(f) or None) != (desired.get(f) or None) for f in fields):
        return True
    labels = (existing.get("metadata") or {}).get("labels") or {}
    return any(labels.get(k) != v for k, v in desired["metadata"]["labels"].items())


# -- the shell ------------------------------------------------------------------------------


class SystemServices:
    """Creates the system Services at start and keeps `kubernetes` and its endpoints current."""

    LEAVE_TIMEOUT = 2.0  # seconds a stopping server tries to leave the endpoints

    def __init__(self, registry: Registry, store: Store, cache: WatchCache, service: ResourceService,
                 allocator: ServiceAllocator, net: ServiceNetwork, advertise: ApiEndpoint) -> None:
        self.registry = registry
        self.store = store
        self.cache = cache
        self.service = service
        self.allocator = allocator
        self.net = net
        self.me = advertise
        self.renew_seconds = RENEW_SECONDS
        self.lease_ttl = LEASE_TTL_SECONDS
        self.repair_seconds = REPAIR_SECONDS
        # The Service's targetPort: the live servers' common port once they are known.
        self.service_port = advertise.port
        self._task: asyncio.Task[None] | None = None

    def _info(self, group: str, version: str, plural: str) -> Any:
        info = self.registry.get(group, version, plural)
        assert info is not None
        return info

    async def start(self) -> None:
        try:
            await self.allocator.repair()
            # The endpoints first: they tell which targetPort the live servers agree on.
            await self.sync_endpoints()
            await self.ensure_kubernetes_service()
            await self._ensure_created(kube_dns_service(self.net))
        except StorageFullError as e:
            # Come up read-only rather than not at all; each round below tries again.
            log.error("serving read-only: %s", e)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Leave the endpoints now rather than when the lease would expire."""
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        try:
            # Bounded: the last server of an etcd cluster that lost its quorum cannot write,
            # and a stop must not wait for the store's retries.
            await asyncio.wait_for(self.sync_endpoints(present=False), self.LEAVE_TIMEOUT)
        except TimeoutError:
            log.warning("could not remove this API server from the kubernetes endpoints within %.0fs; "
                        "its lease expires instead", self.LEAVE_TIMEOUT)
        except Exception:  # noqa: BLE001 - shutting down: the lease expires anyway
            log.exception("could not remove this API server from the kubernetes endpoints")

    async def _run(self) -> None:
        next_repair = time.monotonic() + self.repair_seconds
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.sync_endpoints()
                await self.ensure_kubernetes_service()
                if time.monotonic() >= next_repair:
                    next_repair = time.monotonic() + self.repair_seconds
                    await self.allocator.repair()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - tried again next round; the server must not stop
                log.exception("keeping the system services failed")

    # -- Services -------------------------------------------------------------------------

    async def ensure_kubernetes_service(self) -> None:
        desired = kubernetes_service(self.net, self.service_port)
        co = self.cache.get("/registry/core/services/default/kubernetes")
        if co is None:
            await self._ensure_created(desired)
            return
        current = co.obj
        if not service_port_drift(current, desired):
            return
        spec = current.setdefault("spec", {})
        spec["type"] = "ClusterIP"
        spec["ports"] = desired["spec"]["ports"]
        try:
            await self.service.update(self._info("", "v1", "services"), "default", "kubernetes", current,
                                      WriteContext(field_manager=MANAGER))
        except ApiError as e:
            log.warning("could not put back the ports of the kubernetes service: %s", e.message)

    async def _ensure_created(self, svc: Obj) -> None:
        meta = svc["metadata"]
        if self.cache.get(f"/registry/core/services/{meta['namespace']}/{meta['name']}") is not None:
            return
        try:
            await self.service.create(self._info("", "v1", "services"), meta["namespace"], svc,
                                      WriteContext(field_manager=MANAGER))
        except ApiError as e:
            if e.code != 409:
                # Its address is held by another Service (made before this one, or a
                # changed --service-cidr): the cluster runs on, the operator sees why.
                log.warning("could not create service %s/%s: %s", meta["namespace"], meta["name"], e.message)

    # -- endpoints ----------------------------------------------------------------------------

    async def sync_endpoints(self, present: bool = True) -> None:
        """Renew (or drop) this server's lease, drop expired ones, write the endpoints."""
        key = f"{LEASE_PREFIX}{self.me.ip}:{self.me.port}"
        if present:
            await self._renew(key)
        else:
            kv = await self.store.get(key)
            if kv is not None:
                try:
                    await self.store.delete(key, expected_revision=kv.mod_revision)
                except (KeyNotFoundError, RevisionMismatchError):
                    pass  # already dropped by a peer, or renewed: its expiry drops it
        now = time.time()
        leases = []
        for kv in (await self.store.list(LEASE_PREFIX)).items:
            try:
                data = orjson.loads(kv.value)
                ep, renewed = ApiEndpoint(str(data["ip"]), int(data["port"])), float(data["renewedAt"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                ep, renewed = None, 0.0
            if ep is None or now - renewed >= self.lease_ttl:
                try:
                    await self.store.delete(kv.key, expected_revision=kv.mod_revision)
                except (KeyNotFoundError, RevisionMismatchError):
                    pass  # a peer dropped it first, or its owner renewed it just now
                continue
            leases.append((ep, renewed))
        eps = live_endpoints(leases, now, self.lease_ttl)
        self.service_port = common_port(eps) or self.me.port
        await self._write(self._info("", "v1", "endpoints"), kubernetes_endpoints(eps))
        await self._write(self._info("discovery.k8s.io", "v1", "endpointslices"), kubernetes_endpointslice(eps))

    async def _renew(self, key: str) -> None:
        value = encode_for_store({"metadata": {"name": f"{self.me.ip}:{self.me.port}"}, "ip": self.me.ip,
                                  "port": self.me.port, "renewedAt": time.time()})
        kv = await self.store.get(key)
        try:
            if kv is None:
                await self.store.create(key, value)
            else:
                await self.store.update(key, value, expected_revision=kv.mod_revision)
        except (KeyExistsError, KeyNotFoundError, RevisionMismatchError) as e:
            # Written between our read and write: another renewal of this server's, or
            # a peer dropping it as expired. The next renewal, well inside the TTL,
            # settles it.
            log.debug("lease %s renewed concurrently (%s)", key, type(e).__name__)

    async def _write(self, info: Any, desired: Obj) -> None:
        co = self.cache.get(info.key("default", "kubernetes"))
        ctx = WriteContext(field_manager=MANAGER)
        try:
            if co is None:
                await self.service.create(info, "default", desired, ctx)
                return
            current = co.obj
            if not endpoints_changed(current, desired):
                return
            new = dict(desired)
            meta = dict(current.get("metadata") or {})
            meta["labels"] = {**(meta.get("labels") or {}), **desired["metadata"]["labels"]}
            new["metadata"] = meta  # its resourceVersion makes a concurrent writer's update fail
            await self.service.update(info, "default", "kubernetes", new, ctx)
        except ApiError as e:
            if e.code != 409:
                raise
            # Another API server wrote it meanwhile; the next round compares again.
