"""Objects the API server keeps in the store itself, as kube-apiserver's post-start
controllers do:

* the API Priority and Fairness bootstrap configuration: the mandatory `exempt` and
  `catch-all` FlowSchemas and PriorityLevelConfigurations and the suggested ones,
  created when missing (also after a delete); a mandatory one always gets its spec
  back, a suggested one unless its `apf.kubernetes.io/autoupdate-spec` annotation is
  "false" (or, without it, once someone changed it); every
  FlowSchema's `Dangling` condition says whether its priority level exists;
* one local APIService per served group-version (custom resources' included), with
  an Available=True condition, and the automanaged ones of group-versions no longer
  served removed;
* the system PriorityClasses `system-cluster-critical` and `system-node-critical`;
* the default ServiceCIDR `kubernetes` for the service range, and a Ready condition
  on every ServiceCIDR;
* an IPAddress for every Service cluster IP (a mirror of the allocator's records, made
  just after the Service; the allocator itself does not consult them);
* the default `local-path` StorageClass, once at start when absent;
* kube-public/cluster-info (the cluster's address and CA for token-holding joiners, which
  the controller manager's bootstrap signer signs), once at start when absent.

The decisions are the kind modules' (`kinds/flowcontrol.py`, `kinds/apiregistration.py`,
`kinds/servicecidr.py`); this is the shell that reads the watch cache and writes
through the same verbs as any client: a round runs every few seconds, and also just after
a write to a kind the rounds read (a Service, a CRD, an APIService, ...), so that a new
Service's IPAddress or a new CRD's APIService follows within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from kybernetes.api import priority, storage
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import apiregistration, flowcontrol, servicecidr
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.watchcache import WatchCache
from kybernetes.storage.interface import StorageFullError

log = logging.getLogger("kybernetes.apiserver.bootstrapobjects")

Obj = dict[str, Any]

MANAGER = "kybernetes-server"
SYNC_SECONDS = 5.0
# After a write to a kind the rounds read, the round waits this long for the writes that
# come with it (a CRD and its status, a Service and its Endpoints).
SETTLE_SECONDS = 0.1
# The kinds the rounds read (group, plural): a write to one of them wakes a round.
_WATCHED = (("", "services"), ("apiextensions.k8s.io", "customresourcedefinitions"),
            (apiregistration.GROUP, "apiservices"), (flowcontrol.GROUP, "flowschemas"),
            (flowcontrol.GROUP, "prioritylevelconfigurations"), (priority.GROUP, "priorityclasses"),
            (servicecidr.GROUP, "servicecidrs"), (servicecidr.GROUP, "ipaddresses"))


class BootstrapObjects:
    """Creates the bootstrap objects at start and keeps them while the server runs."""

    def __init__(self, registry: Registry, cache: WatchCache, service: ResourceService,
                 service_cidrs: list[str]) -> None:
        self.registry = registry
        self.cache = cache
        self.service = service
        self.service_cidrs = service_cidrs
        self.sync_seconds = SYNC_SECONDS
        self._task: asyncio.Task[None] | None = None
        self._synced_revision = -1
        self._round_failed = False
        self._storage_class_done = False
        # kube-public/cluster-info to create once at start when absent (set by the server,
        # which knows its advertised address and CA); None: none.
        self.cluster_info: Obj | None = None
        self._wake = asyncio.Event()
        self._watched: tuple[str, ...] = ()

    async def start(self) -> None:
        """Begin keeping the objects; the first round runs at once, without holding up
        the server's start (about seventy writes on a fresh store)."""
        self._watched = tuple(info.storage_prefix() for info in
                              (self.registry.get(g, "v1", p) for g, p in _WATCHED) if info is not None)
        self.cache.add_listener(self._on_event)
        self._task = asyncio.create_task(self._run())

    def _on_event(self, ev: Any) -> None:
        if ev.key.startswith(self._watched):
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before the round: its own writes wake the next one (a created object's
            # status follows), which finds nothing more to do, and the writes stop.
            self._wake.clear()
            began = loop.time()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except StorageFullError as e:
                log.error("bootstrap objects not written: %s", e)
            except Exception:  # noqa: BLE001 - tried again next round; the server must not stop
                log.exception("keeping the bootstrap objects failed")
            took = loop.time() - began
            try:
                await asyncio.wait_for(self._wake.wait(), self.sync_seconds)
            except TimeoutError:
                continue
            # A round lists every Service: under a stream of Service writes, rounds take at
            # most a fifth of the event loop.
            await asyncio.sleep(max(SETTLE_SECONDS, 4 * took))

    async def sync(self) -> None:
        # Nothing can have drifted if nothing was written since the last round (the round's
        # own writes make the next one look again, once).
        revision = self.cache.revision
        if revision == self._synced_revision:
            return
        self._round_failed = False
        await self.sync_flowcontrol()
        await self.sync_priority_classes()
        await self.sync_api_services()
        await self.sync_service_cidrs()
        await self.sync_ip_addresses()
        await self.sync_storage_classes()
        await self.sync_cluster_info()
        if not self._round_failed:
            self._synced_revision = revision

    # -- helpers -------------------------------------------------------------------------

    def _info(self, group: str, plural: str) -> ResourceInfo:
        info = self.registry.get(group, "v1", plural)
        assert info is not None
        return info

    def _objects(self, info: ResourceInfo) -> dict[str, Obj]:
        return {str((co.obj.get("metadata") or {}).get("name")): co.obj
                for co in self.cache.list(info.storage_prefix())}

    async def _write(self, what: str, write: Any) -> None:
        try:
            await write
        except ApiError as e:
            self._round_failed = True
            # A conflict is another API server (or a client) writing at the same time: the
            # next round looks again.
            if e.code not in (404, 409):
                log.warning("could not write %s: %s", what, e.message)

    async def _create(self, info: ResourceInfo, obj: Obj) -> Obj | None:
        """Create `obj`; its status (dropped by a create) is written after it."""
        status = obj.get("status")
        try:
            res = await self.service.create(info, None, copy.deepcopy(obj), WriteContext(field_manager=MANAGER))
        except ApiError as e:
            self._round_failed = True
            if e.code != 409:
                log.warning("could not create %s %s: %s", info.kind, obj["metadata"]["name"], e.message)
            return None
        if status is not None and "status" in info.subresources:
            await self._set_status(info, res.obj, status)
        return res.obj

    async def _set_status(self, info: ResourceInfo, current: Obj, status: Obj) -> None:
        new = copy.deepcopy(current)
        new["status"] = status
        name = new["metadata"]["name"]
        await self._write(f"{info.kind} {name} status",
                          self.service.update(info, None, name, new, WriteContext(field_manager=MANAGER), "status"))

    async def _set_spec(self, info: ResourceInfo, current: Obj, spec: Obj) -> None:
        new = copy.deepcopy(current)
        new["spec"] = copy.deepcopy(spec)
        name = new["metadata"]["name"]
        await self._write(f"{info.kind} {name}",
                          self.service.update(info, None, name, new, WriteContext(field_manager=MANAGER)))

    # -- API Priority and Fairness -------------------------------------------------------

    async def sync_flowcontrol(self) -> None:
        levels = self._info(flowcontrol.GROUP, "prioritylevelconfigurations")
        schemas = self._info(flowcontrol.GROUP, "flowschemas")
        for info, mandatory, suggested in (
                (levels, flowcontrol.mandatory_priority_levels(), flowcontrol.suggested_priority_levels()),
                (schemas, flowcontrol.mandatory_flow_schemas(), flowcontrol.suggested_flow_schemas())):
            existing = self._objects(info)
            for obj, is_mandatory in [(o, True) for o in mandatory] + [(o, False) for o in suggested]:
                name = obj["metadata"]["name"]
                current = existing.get(name)
                if current is None:
                    await self._create(info, obj)
                    continue
                revised = flowcontrol.bootstrap_revision(current, _defaulted(self.service, info, obj), is_mandatory)
                if revised is not None:
                    await self._write(f"{info.kind} {name}", self.service.update(
                        info, None, name, revised, WriteContext(field_manager=MANAGER)))
        level_names = set(self._objects(levels))
        now = om.now_rfc3339()
        for fs in self._objects(schemas).values():
            level = str(((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") or "")
            wanted = flowcontrol.dangling_condition(fs, level in level_names, now)
            conditions = [c for c in (fs.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
            old = next((c for c in conditions if c.get("type") == "Dangling"), None)
            if old is not None and all(old.get(k) == wanted[k] for k in ("status", "reason", "message")):
                continue
            rest = [c for c in conditions if c.get("type") != "Dangling"]
            await self._set_status(schemas, fs, {**(fs.get("status") or {}), "conditions": rest + [wanted]})

    # -- system PriorityClasses (they cannot be deleted or changed, only be missing) ----------

    async def sync_priority_classes(self) -> None:
        info = self._info(priority.GROUP, "priorityclasses")
        existing = self._objects(info)
        for obj in priority.system_priority_classes():
            if obj["metadata"]["name"] not in existing:
                await self._create(info, obj)

    # -- the default StorageClass ------------------------------------------------------------

    async def sync_storage_classes(self) -> None:
        # Only once per start, as k3s deploys its local-path class: a cluster admin who removed
        # it (or replaced the default) is not overruled while the server runs.
        if self._storage_class_done:
            return
        info = self.registry.get("storage.k8s.io", "v1", "storageclasses")
        if info is None:
            self._storage_class_done = True
            return
        wanted = storage.local_path_storage_class()
        if wanted["metadata"]["name"] in self._objects(info) or await self._create(info, wanted) is not None:
            self._storage_class_done = True

    async def sync_cluster_info(self) -> None:
        # Once per start, as kubeadm writes it once: an admin's edit (another address) stays.
        if self.cluster_info is None:
            return
        info = self._info("", "configmaps")
        meta = self.cluster_info["metadata"]
        if self.cache.get(info.key(meta["namespace"], meta["name"])) is None:
            try:
                await self.service.create(info, meta["namespace"], copy.deepcopy(self.cluster_info),
                                          WriteContext(field_manager=MANAGER))
            except ApiError as e:
                if e.code != 409:
                    self._round_failed = True
                    log.warning("could not create %s/%s: %s", meta["namespace"], meta["name"], e.message)
                    return
        self.cluster_info = None

    # -- APIServices -----------------------------------------------------------------------

    def desired_api_services(self, now: str) -> dict[str, Obj]:
        out: dict[str, Obj] = {}
        for group, versions in self.registry.group_versions().items():
            for version in versions:
                custom = any(i.is_custom for i in self.registry.in_group_version(group, version))
                svc = apiregistration.local_api_service(group, version, now, custom=custom)
                out[svc["metadata"]["name"]] = svc
        return out

    async def sync_api_services(self) -> None:
        info = self._info(apiregistration.GROUP, "apiservices")
        now = om.now_rfc3339()
        desired = self.desired_api_services(now)
        existing = self._objects(info)
        for name, obj in desired.items():
            current = existing.get(name)
            if current is None:
                await self._create(info, obj)
                continue
            if apiregistration.needs_spec_update(current, obj):
                await self._set_spec(info, current, obj["spec"])
                continue  # the status follows on the next round, from the stored object
            if apiregistration.needs_status_update(current):
                await self._set_status(info, current, obj["status"])
        for name, current in existing.items():
            if name in desired:
                continue
            svc = (current.get("spec") or {}).get("service")
            if isinstance(svc, dict):
                key = self._info("", "services").key(svc.get("namespace") or "", svc.get("name") or "")
                wanted = apiregistration.remote_available_condition(current, self.cache.get(key) is not None, now)
                if apiregistration.condition_differs(current, wanted):
                    others = [c for c in (current.get("status") or {}).get("conditions") or []
                              if isinstance(c, dict) and c.get("type") != "Available"]
                    await self._set_status(info, current, {"conditions": [*others, wanted]})
                continue
            labels = (current.get("metadata") or {}).get("labels") or {}
            if labels.get(apiregistration.AUTOMANAGED_LABEL):
                await self._write(f"APIService {name}", self.service.delete(info, None, name, {},
                                                                           WriteContext(field_manager=MANAGER)))

    # -- ServiceCIDRs ----------------------------------------------------------------------

    async def sync_service_cidrs(self) -> None:
        info = self._info(servicecidr.GROUP, "servicecidrs")
        now = om.now_rfc3339()
        existing = self._objects(info)
        if servicecidr.DEFAULT_SERVICE_CIDR_NAME not in existing:
            created = await self._create(info, servicecidr.default_service_cidr(self.service_cidrs, now))
            if created is not None:
                return
        for name, obj in existing.items():
            conditions = (obj.get("status") or {}).get("conditions") or []
            if any(isinstance(c, dict) and c.get("type") == "Ready" for c in conditions):
                continue
            ready = servicecidr.ready_condition(now, name == servicecidr.DEFAULT_SERVICE_CIDR_NAME)
            await self._set_status(info, obj, {**(obj.get("status") or {}), "conditions": [*conditions, ready]})

    # -- IPAddresses of Service cluster IPs ----------------------------------------------

    async def sync_ip_addresses(self) -> None:
        info = self._info(servicecidr.GROUP, "ipaddresses")
        services = [co.obj for co in self.cache.list(self._service_prefix())]
        desired = servicecidr.service_ip_addresses(services)
        existing = self._objects(info)
        for name in servicecidr.stale_ip_addresses(existing, desired):
            await self._write(f"IPAddress {name}", self.service.delete(info, None, name, {},
                                                                      WriteContext(field_manager=MANAGER)))
            existing.pop(name, None)
        for name, obj in desired.items():
            if name not in existing:
                await self._create(info, obj)

    def _service_prefix(self) -> str:
        info = self.registry.get("", "v1", "services")
        assert info is not None
        return info.storage_prefix()


def _defaulted(service: ResourceService, info: ResourceInfo, obj: Obj) -> Obj:
    """`obj` as storing it would default it, so a stored bootstrap object compares equal."""
    out = copy.deepcopy(obj)
    service.apply_defaults(info, out)
    return out
