"""ResourceQuota in the API server: admission of creates, and each quota's status.

Upstream splits this between an admission plugin (refuses a create that would go over
`spec.hard`, charging `status.used` as it goes) and kube-controller-manager's quota
controller (recounts `status.used` from informers of every counted resource). Here the
watch cache already holds every object, so both live in the server process:

- `QuotaUsage` keeps each quota's use: counted from the cache once (again when the
  quota's spec changes), then adjusted by the cache's events.
- `check_create`, called by `ResourceService` before a create is stored, adds what the
  new object would use to that and refuses (403 Forbidden, as upstream words it) when
  a quota that sees the object would be exceeded.
- `QuotaStatus` follows the cache: a change to anything in a namespace with quotas
  marks the namespace, and a background task rewrites the quotas' `status`
  (`hard` = `spec.hard`, `used` = the kept use) when it differs.

Creates racing in one namespace (a ReplicaSet creating a batch of pods) must not all
pass on the same count: upstream serializes them on the quota's resourceVersion. Here
an admitted create holds a reservation, counted by later checks, until the write fails
or the cache shows the stored object. Updates are not checked (a pod's resources cannot
change; a Service changing type can go over).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kybernetes.api import quota as q
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.api.resize import resources_changed
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

log = logging.getLogger(__name__)

QUOTA_PREFIX = "/registry/core/resourcequotas/"
MANAGER = "resourcequota-controller"
# Changes arriving together (a ReplicaSet creating pods) are counted once.
BATCH_SECONDS = 0.05

Obj = dict[str, Any]


def _prefix(group: str, plural: str, namespace: str) -> str:
    return f"/registry/{group or 'core'}/{plural}/{namespace}/"


def _namespace_of(key: str) -> str | None:
    """The namespace in a namespaced object's key (`/registry/<group>/<plural>/<ns>/<name>`)."""
    parts = key.split("/")
    return parts[4] if len(parts) == 6 else None


def _quantities(values: list[tuple[str, Decimal]]) -> str:
    return ",".join(f"{name}={q.format_quantity(name, v)}" for name, v in values)


# A stored create the cache has not shown after this long is counted from the cache
# alone (it was deleted again before the cache caught up, or the cache is behind).
RESERVATION_SECONDS = 5.0
# A reservation never settled (a later admission step refused the create before the
# write was tried) stops counting after this.
UNSETTLED_SECONDS = 30.0


@dataclass(eq=False)
class _Reservation:
    group: str
    plural: str
    obj: Obj
    usage: q.Usage  # what it uses, worked out once
    made_at: float = 0.0
    key: str | None = None  # set once stored
    stored_at: float = field(default=0.0)


@dataclass(eq=False)
class _Totals:
    spec: Any  # the quota's spec the totals were counted for
    hard: dict[str, Decimal]  # its spec.hard, parsed
    scoped: list[str]  # the names it tracks
    names: dict[tuple[str, str], list[str]]  # (group, plural) -> the names its objects use
    used: dict[str, Decimal]


class QuotaUsage:
    """Each quota's use, counted once from the cache and then kept up to date from its
    events, so that admission and status need not recount a namespace on every change
    (a namespace of N pods made N² work). Totals are made when first asked for and
    counted again only when the quota's spec changes."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._totals: dict[str, _Totals] = {}  # quota key ->
        self._by_namespace: dict[str, set[str]] = {}  # namespace -> quota keys with totals
        cache.add_listener(self._on_event)

    def used(self, quota_key: str, quota: Obj) -> dict[str, Decimal]:
        """What the cache's objects use of each name `quota` tracks."""
        return self.totals(quota_key, quota).used

    def totals(self, quota_key: str, quota: Obj) -> _Totals:
        spec = quota.get("spec")
        t = self._totals.get(quota_key)
        if t is None or t.spec != spec:
            t = self._count(quota)
            self._totals[quota_key] = t
            ns = _namespace_of(quota_key)
            if ns is not None:
                self._by_namespace.setdefault(ns, set()).add(quota_key)
        return t

    def _count(self, quota: Obj) -> _Totals:
        namespace = (quota.get("metadata") or {}).get("namespace") or ""
        hard = q.hard_of(quota)
        names = q.scoped_names(quota, hard)
        by_resource: dict[tuple[str, str], list[str]] = {}
        for group, plural in q.resources_of_hard(names):
            wanted = [n for n in names if q.tracks(group, plural, n)]
            if wanted:
                by_resource[(group, plural)] = wanted
        used = {n: Decimal(0) for n in names}
        for (group, plural), wanted in by_resource.items():
            for co in self.cache.list(_prefix(group, plural, namespace)):
                _add(used, quota, group, plural, co.obj, wanted, 1)
        return _Totals(copy.deepcopy(quota.get("spec")), hard, names, by_resource, used)

    def _on_event(self, ev: CacheEvent) -> None:
        parts = ev.key.split("/")
        if len(parts) != 6:
            return
        keys = self._by_namespace.get(parts[4])
        if not keys:
            return
        if ev.key.startswith(QUOTA_PREFIX):
            if ev.new is None:  # deleted: forget its totals
                self._totals.pop(ev.key, None)
                keys.discard(ev.key)
            return
        resource = ("" if parts[2] == "core" else parts[2], parts[3])
        for qkey in keys:
            t = self._totals.get(qkey)
            wanted = t.names.get(resource) if t is not None else None
            if not wanted or t is None:
                continue
            qco = self.cache.get(qkey)
            if qco is None:
                continue
            if ev.old is not None:
                _add(t.used, qco.obj, resource[0], resource[1], ev.old.obj, wanted, -1)
            if ev.new is not None:
                _add(t.used, qco.obj, resource[0], resource[1], ev.new.obj, wanted, 1)


def _add(used: dict[str, Decimal], quota: Obj, group: str, plural: str, obj: Obj, names: list[str],
         sign: int) -> None:
    if not q.quota_sees(quota, group, plural, obj):
        return
    usage = q.object_usage(group, plural, obj)
    for n in names:
        amount = usage.get(n)
        if amount is not None:
            used[n] = used.get(n, Decimal(0)) + sign * amount


_USAGE: weakref.WeakKeyDictionary[WatchCache, QuotaUsage] = weakref.WeakKeyDictionary()


def usage_for(cache: WatchCache) -> QuotaUsage:
    """The one usage index of a cache, shared by admission and the status writer."""
    u = _USAGE.get(cache)
    if u is None:
        u = _USAGE[cache] = QuotaUsage(cache)
    return u


class QuotaAdmission:
    """Refuses creates that would take a namespace over one of its quotas."""

    def __init__(self, cache: WatchCache, clock: Callable[[], float] = time.monotonic) -> None:
        self.cache = cache
        self.clock = clock
        self.usage = usage_for(cache)
        self._inflight: dict[str, list[_Reservation]] = {}

    def _pending(self, namespace: str, group: str, plural: str) -> list[_Reservation]:
        """Admitted creates of this resource the cache does not show yet."""
        held = self._inflight.get(namespace)
        if not held:
            return []
        now = self.clock()
        live = [r for r in held if (r.key is None and now - r.made_at < UNSETTLED_SECONDS)
                or (r.key is not None and self.cache.get(r.key) is None and now - r.stored_at < RESERVATION_SECONDS)]
        if live:
            self._inflight[namespace] = live
        else:
            del self._inflight[namespace]
        return [r for r in live if r.group == group and r.plural == plural]

    def check_create(self, info: ResourceInfo, obj: Obj) -> Callable[[str | None], None] | None:
        """Refuses the create (ApiError) or admits it; an admitted create in a namespace
        with quotas returns the call that settles its reservation: with the stored key,
        or None when the write failed (or was a dry run)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace")
        if not info.namespaced or not namespace:
            return None
        quotas = self.cache.list(QUOTA_PREFIX + namespace + "/")
        if not quotas:
            return None
        group, plural = info.group, info.plural
        delta = q.object_usage(group, plural, obj)
        pending: list[_Reservation] | None = None
        counted = False
        for co in quotas:
            quota = co.obj
            qname = (quota.get("metadata") or {}).get("name", "")
            if not q.quota_sees(quota, group, plural, obj):
                continue
            t = self.usage.totals(co.key, quota)
            names = [n for n in t.scoped if q.tracks(group, plural, n)]
            if not names:
                continue
            if not group and plural == "pods" and q.pod_counts(obj):
                missing = q.missing_requests(quota, obj, t.scoped)
                if missing:
                    raise self._forbidden(info, meta, f"failed quota: {qname}: must specify {'; '.join(missing)}")
            if pending is None:
                pending = self._pending(namespace, group, plural)
            counted = True
            used = {n: t.used.get(n, Decimal(0)) for n in names}
            for other in pending:
                if q.quota_sees(quota, group, plural, other.obj):
                    for n in names:
                        used[n] += other.usage.get(n, Decimal(0))
            over = q.exceeded(quota, used, delta, t.hard, t.scoped)
            if over:
                raise self._forbidden(info, meta, (
                    f"exceeded quota: {qname}, requested: {_quantities([(n, r) for n, r, _, _ in over])}, "
                    f"used: {_quantities([(n, u) for n, _, u, _ in over])}, "
                    f"limited: {_quantities([(n, h) for n, _, _, h in over])}"))
        if not counted:
            return None
        reservation = _Reservation(group, plural, obj, delta, self.clock())
        self._inflight.setdefault(namespace, []).append(reservation)

        def settle(key: str | None) -> None:
            if key is None:
                held = self._inflight.get(namespace)
                if held is not None and reservation in held:
                    held.remove(reservation)
                return
            reservation.key = key
            reservation.stored_at = self.clock()
        return settle

    def check_update(self, info: ResourceInfo, new: Obj, old: Obj) -> None:
        """Refuses an update that would take a quota over (upstream's evaluators judge a
        claim's resize, a Service's new type or ports, a pod entering a Terminating
        scope): only what the update adds is charged."""
        meta = new.get("metadata") or {}
        namespace = meta.get("namespace")
        group, plural = info.group, info.plural
        if group or plural not in ("persistentvolumeclaims", "services", "pods") or not namespace:
            return
        # Only pods/resize changes a pod's resources: charged on its new requests, as upstream.
        if plural == "pods" and ((new.get("spec") or {}).get("activeDeadlineSeconds") is None) == (
                (old.get("spec") or {}).get("activeDeadlineSeconds") is None) and not resources_changed(new, old):
            return
        quotas = self.cache.list(QUOTA_PREFIX + namespace + "/")
        if not quotas:
            return
        after, before = q.object_usage(group, plural, new), q.object_usage(group, plural, old)
        pending: list[_Reservation] | None = None
        for co in quotas:
            quota = co.obj
            if not q.quota_sees(quota, group, plural, new):
                continue
            seen_before = q.quota_sees(quota, group, plural, old)
            delta = {n: a - (before.get(n, Decimal(0)) if seen_before else Decimal(0)) for n, a in after.items()}
            if not any(v > 0 for v in delta.values()):
                continue
            t = self.usage.totals(co.key, quota)
            names = [n for n in t.scoped if q.tracks(group, plural, n)]
            if pending is None:
                pending = self._pending(namespace, group, plural)
            used = {n: t.used.get(n, Decimal(0)) for n in names}
            for other in pending:
                if q.quota_sees(quota, group, plural, other.obj):
                    for n in names:
                        used[n] += other.usage.get(n, Decimal(0))
            over = q.exceeded(quota, used, delta, t.hard, t.scoped)
            if over:
                qname = (quota.get("metadata") or {}).get("name", "")
                raise self._forbidden(info, meta, (
                    f"exceeded quota: {qname}, requested: {_quantities([(n, r) for n, r, _, _ in over])}, "
                    f"used: {_quantities([(n, u) for n, _, u, _ in over])}, "
                    f"limited: {_quantities([(n, h) for n, _, _, h in over])}"))

    @staticmethod
    def _forbidden(info: ResourceInfo, meta: Obj, why: str) -> ApiError:
        name = meta.get("name") or ""
        return ApiError(403, "Forbidden", f'{info.qualified_plural} "{name}" is forbidden: {why}',
                        {"name": name, "group": info.group, "kind": info.plural})


def desired_status(quota: Obj, used: dict[str, str]) -> Obj:
    hard = dict(((quota.get("spec") or {}).get("hard")) or {})
    return {"hard": hard, "used": used}


def _amounts(values: Any) -> dict[str, Decimal | None]:
    return {k: parse_quantity(v) for k, v in (values or {}).items()} if isinstance(values, dict) else {}


def _same_status(current: Any, want: Obj) -> bool:
    """Equal amounts, however written: the server may spell a quantity its own way."""
    if not isinstance(current, dict):
        return False
    return all(_amounts(current.get(k)) == _amounts(want[k]) for k in ("hard", "used"))


class QuotaStatus:
    """Keeps every ResourceQuota's `status` equal to its namespace's recount."""

    def __init__(self, registry: Registry, cache: WatchCache, service: ResourceService) -> None:
        self.registry = registry
        self.cache = cache
        self.service = service
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for co in self.cache.list(QUOTA_PREFIX):
            ns = _namespace_of(co.key)
            if ns:
                self._dirty.add(ns)
        self.cache.add_listener(self._on_event)
        self._task = asyncio.create_task(self._run(), name="resourcequota-status")
        if self._dirty:
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    def _on_event(self, ev: CacheEvent) -> None:
        ns = _namespace_of(ev.key)
        if ns is None:
            return
        if not ev.key.startswith(QUOTA_PREFIX) and self.cache.count(QUOTA_PREFIX + ns + "/") == 0:
            return
        self._dirty.add(ns)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_SECONDS)
            self._wake.clear()
            batch, self._dirty = self._dirty, set()
            for ns in sorted(batch):
                try:
                    await self.sync(ns)
                except asyncio.CancelledError:
                    raise
                except ApiError as e:
                    if e.code == 409:  # written meanwhile: count again
                        self._dirty.add(ns)
                        self._wake.set()
                    elif e.code != 404:
                        log.warning("resource quota status in %s: %s", ns, e)
                except Exception:  # noqa: BLE001 - the next change retries; the server must not stop
                    log.exception("resource quota status in %s failed", ns)

    async def sync(self, namespace: str) -> None:
        info = self.registry.get("", "v1", "resourcequotas")
        if info is None:
            return
        cached = self.cache.list(QUOTA_PREFIX + namespace + "/")
        usage = usage_for(self.cache)
        for co in cached:
            quota = co.obj
            if (quota.get("metadata") or {}).get("deletionTimestamp"):
                continue
            used = usage.used(co.key, quota)
            status = desired_status(quota, {n: q.format_quantity(n, used.get(n, Decimal(0)))
                                            for n in q.scoped_names(quota, q.hard_of(quota))})
            if _same_status(quota.get("status"), status):
                continue
            new = {**quota, "status": status}
            await self.service.update_object(info, co, new, WriteContext(field_manager=MANAGER), "status",
                                             expected=co.rev)
