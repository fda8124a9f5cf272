"""Service cluster IPs and node ports, recorded in the store.

Each allocation is a key of its own, created atomically:
`/registry/kybernetes/serviceips/<ip>` and `/registry/kybernetes/servicenodeports/<port>`,
holding the owning Service's namespace, name and uid. A create that finds the
key present has lost the address to someone else, whichever API server that
was, so several API servers sharing one store never hand out the same value.
The watch cache mirrors these keys; it is only used to guess which values are
free, and the store's create decides. `repair` reconciles the keys with the
Services at start and periodically. The decisions are in `servicealloc.py`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api.errors import ApiError
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver import servicealloc as sa
from kybernetes.apiserver.watchcache import WatchCache, encode_for_store
from kybernetes.storage.interface import (
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
)

log = logging.getLogger("kybernetes.apiserver.serviceips")

IP_PREFIX = "/registry/kybernetes/serviceips/"
PORT_PREFIX = "/registry/kybernetes/servicenodeports/"
SERVICE_PREFIX = "/registry/core/services/"

# A record younger than this may belong to a write still in flight (here or on another
# API server): repair and reclaiming leave it alone.
IN_FLIGHT_GRACE_SECONDS = 60.0
# Random picks that lost the race for their key before giving up on a write.
MAX_PICK_ATTEMPTS = 64


def _prefix(kind: str) -> str:
    return IP_PREFIX if kind == "ip" else PORT_PREFIX


def record_value(value: str, owner: sa.Owner) -> bytes:
    return encode_for_store({"metadata": {"name": value, "creationTimestamp": om.now_rfc3339()},
                             "owner": owner.to_json(), "allocatedAt": time.time()})


def decode_record(kind: str, kv: KeyValue, now: float) -> sa.Record:
    try:
        data = orjson.loads(kv.value)
    except orjson.JSONDecodeError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    at = data.get("allocatedAt")
    age = now - float(at) if isinstance(at, int | float) else float("inf")
    return sa.Record(kind, kv.key[len(_prefix(kind)):], sa.Owner.from_json(data.get("owner")), age, kv.mod_revision)


@dataclass
class _Reservation:
    allocator: ServiceAllocator
    owner: sa.Owner
    dry_run: bool
    taken: list[tuple[str, str]] = field(default_factory=list)  # (kind, value) created for this write
    release: list[tuple[str, str]] = field(default_factory=list)  # held before, unused after the write

    async def commit(self) -> None:
        if not self.dry_run:
            await self.allocator.drop_owned(self.release, self.owner)

    async def abort(self) -> None:
        if not self.dry_run:
            await self.allocator.drop_owned(self.taken, self.owner)


class ServiceAllocator:
    """The `Allocator` of Services (see `resources.py`)."""

    def __init__(self, store: Store, cache: WatchCache, net: sa.ServiceNetwork,
                 rng: random.Random | None = None, grace: float = IN_FLIGHT_GRACE_SECONDS) -> None:
        self.store = store
        self.cache = cache
        self.net = net
        self.rng = rng or random.SystemRandom()
        self.grace = grace

    # -- reserve / release ------------------------------------------------------------------

    async def reserve(self, old: dict[str, Any] | None, new: dict[str, Any], dry_run: bool) -> _Reservation:
        plan, errors = sa.plan_allocation(self.net, old, new)
        name = (new.get("metadata") or {}).get("name") or ""
        if errors:
            raise ApiError.invalid("", "Service", name, errors)
        res = _Reservation(self, sa.Owner.of(new), dry_run)
        res.release = [("ip", ip) for ip in sorted(plan.release_ips)] + \
                      [("port", str(p)) for p in sorted(plan.release_ports)]
        if not plan.allocates:
            return res
        spec = new["spec"]
        try:
            if plan.cluster_ip is not None:
                ip = await self._claim_ip(plan.cluster_ip, spec, res, name)
                sa.apply_cluster_ip(spec, ip)
            for claim in plan.node_ports:
                port = await self._claim_node_port(claim, res, name)
                sa.apply_node_port(spec, claim, port)
            if plan.health_check is not None:
                spec["healthCheckNodePort"] = await self._claim_health_check_port(plan.health_check, res)
        except BaseException:
            await res.abort()
            raise
        return res

    async def release(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        held = [("ip", ip) for ip in sorted(sa.held_ips(spec))] + \
               [("port", str(p)) for p in sorted(sa.held_ports(spec))]
        await self.drop_owned(held, sa.Owner.of(obj))

    async def drop_owned(self, items: Iterable[tuple[str, str]], owner: sa.Owner) -> None:
        """Delete the records of `items` that belong to `owner` (a record another Service
        owns is left alone: this one never held it)."""
        for kind, value in items:
            key = _prefix(kind) + value
            kv = await self.store.get(key)
            if kv is None or decode_record(kind, kv, time.time()).owner.uid != owner.uid:
                continue
            try:
                await self.store.delete(key, expected_revision=kv.mod_revision)
            except (KeyNotFoundError, RevisionMismatchError):
                pass

    # -- claiming ---------------------------------------------------------------------------

    async def _claim_ip(self, requested: str, spec: dict[str, Any], res: _Reservation, name: str) -> str:
        if requested:
            if not await self._claim("ip", requested, res):
                ips = list(spec.get("clusterIPs") or [requested])
                raise ApiError.invalid("", "Service", name, [sa.ip_taken_error(ips, requested)])
            return requested
        # The first address is the kubernetes Service's: never handed out unasked.
        off = await self._claim_any("ip", self.net.ip_size, self.net.ip_static_band, self.net.ip_at, res,
                                    exclude={0})
        if off is None:
            raise sa.ip_range_full()
        return self.net.ip_at(off)

    async def _claim_node_port(self, claim: sa.NodePortClaim, res: _Reservation, name: str) -> int:
        if claim.requested:
            if not await self._claim("port", str(claim.requested), res):
                raise ApiError.invalid("", "Service", name, [sa.port_taken_error(claim.field_index, claim.requested)])
            return claim.requested
        off = await self._claim_any("port", self.net.port_size, self.net.port_static_band, self._port_at, res)
        if off is None:
            raise sa.port_range_full()
        return self.net.node_port_low + off

    async def _claim_health_check_port(self, requested: int, res: _Reservation) -> int:
        if requested:
            if not self.net.port_in_range(requested):
                raise sa.health_check_port_error(
                    requested, "provided port is not in the valid range. The range of valid ports is "
                               f"{self.net.port_range_text}")
            if not await self._claim("port", str(requested), res):
                raise sa.health_check_port_error(requested, "provided port is already allocated")
            return requested
        off = await self._claim_any("port", self.net.port_size, self.net.port_static_band, self._port_at, res)
        if off is None:
            raise sa.health_check_port_error(0, "range is full")
        return self.net.node_port_low + off

    def _port_at(self, offset: int) -> str:
        return str(self.net.node_port_low + offset)

    async def _claim(self, kind: str, value: str, res: _Reservation) -> bool:
        """Record `value` for the reservation's owner; False if someone else holds it."""
        key = _prefix(kind) + value
        for _attempt in range(2):
            if res.dry_run:
                kv = await self.store.get(key)
                return kv is None or await self._stale(kind, kv)
            try:
                await self.store.create(key, record_value(value, res.owner))
            except KeyExistsError:
                if await self._reclaim_if_stale(kind, key):
                    continue
                return False
            res.taken.append((kind, value))
            return True
        return False

    async def _claim_any(self, kind: str, size: int, band: int, name_at: Callable[[int], str], res: _Reservation,
                         exclude: set[int] | None = None) -> int | None:
        prefix = _prefix(kind)
        lost: set[int] = set(exclude or ())
        cache = self.cache

        def taken(off: int) -> bool:
            return off in lost or cache.get(prefix + name_at(off)) is not None

        for _attempt in range(MAX_PICK_ATTEMPTS):
            off = sa.pick_offset(size, band, taken, self.rng)
            if off is None:
                return None
            value = name_at(off)
            key = prefix + value
            if res.dry_run:
                if await self.store.get(key) is None:
                    return off
                lost.add(off)
                continue
            try:
                await self.store.create(key, record_value(value, res.owner))
            except KeyExistsError:
                # Another write (maybe on another API server) got it first.
                lost.add(off)
                continue
            res.taken.append((kind, value))
            return off
        raise ApiError.internal(f"failed to allocate a {'serviceIP' if kind == 'ip' else 'nodePort'}: "
                                f"{MAX_PICK_ATTEMPTS} picks were taken concurrently; try again")

    async def _stale(self, kind: str, kv: KeyValue) -> bool:
        """A record no live Service holds, old enough to be no write in flight."""
        rec = decode_record(kind, kv, time.time())
        if rec.age < self.grace:
            return False
        co = self.cache.get(f"{SERVICE_PREFIX}{rec.owner.namespace}/{rec.owner.name}")
        if co is None:
            return True
        svc = co.obj
        if (svc.get("metadata") or {}).get("uid") != rec.owner.uid:
            return True
        spec = svc.get("spec") or {}
        held = sa.held_ips(spec) if kind == "ip" else {str(p) for p in sa.held_ports(spec)}
        return rec.value not in held

    async def _reclaim_if_stale(self, kind: str, key: str) -> bool:
        """A leaked record (its release was lost, say to a crash) is not worth an error:
        delete it now rather than at the next repair. True if the key is free again."""
        kv = await self.store.get(key)
        if kv is None:
            return True
        if not await self._stale(kind, kv):
            return False
        try:
            await self.store.delete(key, expected_revision=kv.mod_revision)
        except (KeyNotFoundError, RevisionMismatchError):
            return False
        log.info("reclaimed leaked %s allocation %s", kind, key[len(_prefix(kind)):])
        return True

    # -- repair ------------------------------------------------------------------------------

    async def repair(self) -> sa.RepairPlan:
        """Drop records no Service holds, add records for values Services hold without one.
        Read from the store, not the cache: the store is what other API servers see."""
        listed = await self.store.list(SERVICE_PREFIX)
        services = []
        for kv in listed.items:
            try:
                services.append(orjson.loads(kv.value))
            except orjson.JSONDecodeError:
                continue
        now = time.time()
        records = [decode_record("ip", kv, now) for kv in (await self.store.list(IP_PREFIX)).items]
        records += [decode_record("port", kv, now) for kv in (await self.store.list(PORT_PREFIX)).items]
        plan = sa.plan_repair(self.net, services, records, self.grace)
        for rec in plan.drop:
            try:
                await self.store.delete(_prefix(rec.kind) + rec.value, expected_revision=rec.revision)
                log.info("repair: released leaked %s %s (was %s/%s)", rec.kind, rec.value,
                         rec.owner.namespace, rec.owner.name)
            except (KeyNotFoundError, RevisionMismatchError):
                pass
        for kind, value, owner in plan.add:
            try:
                await self.store.create(_prefix(kind) + value, record_value(value, owner))
                log.info("repair: recorded %s %s held by %s/%s", kind, value, owner.namespace, owner.name)
            except KeyExistsError:
                log.warning("repair: %s %s held by %s/%s is recorded for another service", kind, value,
                            owner.namespace, owner.name)
        for problem in plan.conflicts + plan.out_of_range:
            log.warning("repair: %s", problem)
        return plan

    async def repair_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.repair()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - repair runs again; the server must not stop
                log.exception("service allocation repair failed")
