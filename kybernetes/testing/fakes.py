"""In-memory stand-ins for the client library, for unit tests of the components.

- `FakeClient` keeps the `Client` Protocol over a dict of objects: it assigns names,
  uids and resourceVersions, checks preconditions and resourceVersion conflicts, applies
  merge, strategic and JSON patches, honours finalizers and graceful deletion, serves
  watches, and records every call. `react()` lets a test answer or fail a call instead.
- `FakeInformer` and `FakeInformers` keep the `SharedInformer` and `Informers`
  Protocols: caches the test fills (`upsert`, `delete`), calling the component's
  handlers synchronously as a real informer does. A client given the informers mirrors
  its writes into them, as the watch would; without, the cache lags until the test says.
- `pod()` and `node()` build the objects tests need most; `drain()` empties a work queue.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.patch import json_merge_patch, json_patch, strategic_merge_patch
from kybernetes.api.selectors import parse_label_selector
from kybernetes.client.informer import namespace_index, object_key, owner_index
from kybernetes.client.protocols import IndexFunc
from kybernetes.client.resources import Resource
from kybernetes.client.workqueue import WorkQueue

Obj = dict[str, Any]
DELETION_TIMESTAMP = "2026-01-01T00:00:00Z"


# -- the client -------------------------------------------------------------------------

@dataclass
class Call:
    """One call made on a FakeClient. `body` is what was sent (object, patch, binding);
    `options` the other arguments that were given (patch_type, preconditions, …)."""

    verb: str  # get list create update patch delete deletecollection create_subresource watch get_raw event
    resource: str  # plural ("events" for event, the path for get_raw)
    namespace: str | None = None
    name: str = ""
    body: Any = None
    subresource: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedEvent:
    type: str
    reason: str
    message: str
    kind: str = ""
    name: str = ""
    component: str = ""


# Answers a call instead of the store: return a result, raise, or return None to let
# the store answer. It may be a coroutine function (to add latency, say).
Reactor = Callable[[Call], Any]


def _named(obj: Obj, field_selector: str) -> bool:
    """Whether `obj` passes a field selector; of fields, only `metadata.name=` (one object's
    watch) is understood, and any other selector passes everything."""
    if not field_selector.startswith("metadata.name=") or "," in field_selector:
        return True
    return (obj.get("metadata") or {}).get("name") == field_selector.split("=")[-1]


class FakeClient:
    def __init__(self, informers: FakeInformers | None = None, *, resource_version: int = 10,
                 graceful: Iterable[str] = (), lag: Iterable[str] = ()) -> None:
        """`informers` receive every write, as a watch would deliver it. Changes to the
        resources (plurals) in `lag` reach watches and informers only when the test calls
        `deliver`, like a watch that has fallen behind. Objects of the resources in
        `graceful` get a deletionTimestamp on delete and stay until a delete with grace
        period 0, like pods waiting for their node agent."""
        self.informers = informers
        if informers is not None:
            informers.source = self
        self.lag = set(lag)
        self._undelivered: list[tuple[int, str, str, Obj]] = []
        self.objects: dict[tuple[str, str | None, str], Obj] = {}
        self.calls: list[Call] = []
        self.events: list[RecordedEvent] = []
        self.rv = resource_version
        self.graceful = set(graceful)
        self._reactors: list[tuple[str, str, Reactor]] = []
        self._generated = itertools.count()
        self._log: list[tuple[int, str, str, Obj]] = []  # (rv, type, plural, object) for watches
        self._changed = asyncio.Condition()

    # -- for tests -----------------------------------------------------------------------

    def add(self, res: Resource, *objs: Obj) -> list[Obj]:
        """Store objects as if they had been written earlier by someone else: a new object
        keeps a given resourceVersion and uid, one replacing a stored object gets the next
        resourceVersion. Not recorded as calls; seen by watches and the informers."""
        out = []
        for obj in objs:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", f"uid-{meta['name']}")
            key = _key(res, meta.get("namespace"), meta["name"])
            existed = key in self.objects
            if existed or not meta.get("resourceVersion"):
                meta["resourceVersion"] = self._next_rv()
            self.objects[key] = obj
            self._changed_to(res, "MODIFIED" if existed else "ADDED", obj)
            out.append(copy.deepcopy(obj))
        return out

    def remove(self, res: Resource, namespace: str | None, name: str) -> None:
        """The object goes away as when its finalizers or its node agent are done with it.
        Not recorded as a call; seen by watches and the informers."""
        obj = self.objects.pop(_key(res, namespace, name))
        self._next_rv()
        self._changed_to(res, "DELETED", obj)

    def deliver(self, res: Resource | None = None) -> None:
        """Let watches and informers see the changes held back by `lag` (of `res`, or all)."""
        keep = []
        for entry in self._undelivered:
            if res is None or entry[2] == res.plural:
                self._publish(entry)
            else:
                keep.append(entry)
        self._undelivered = keep

    def stored(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get(_key(res, namespace, name))

    def all(self, res: Resource, namespace: str | None = None) -> list[Obj]:
        return [o for (plural, ns, _), o in self.objects.items()
                if plural == res.plural and (namespace is None or ns == namespace)]

    def react(self, verb: str, resource: str, reactor: Reactor) -> None:
        """Answer calls of `verb` on `resource` (a plural; "*" for any) with `reactor`
        first. The last reactor added is asked first."""
        self._reactors.insert(0, (verb, resource, reactor))

    def fail(self, verb: str, resource: str, error: ApiError, times: int = 1,
             name: str | None = None) -> None:
        """The next `times` calls of `verb` on `resource` (and `name`, if given) raise `error`."""
        left = [times]

        def reactor(call: Call) -> None:
            if left[0] > 0 and (name is None or call.name == name):
                left[0] -= 1
                raise error

        self.react(verb, resource, reactor)

    def calls_of(self, verb: str | None = None, resource: str | None = None) -> list[Call]:
        return [c for c in self.calls if (verb is None or c.verb == verb)
                and (resource is None or c.resource == resource)]

    # -- the Client protocol -------------------------------------------------------------

    async def get(self, res: Resource, namespace: str | None, name: str, subresource: str = "") -> Obj:
        call = self._record("get", res, namespace, name, subresource=subresource)
        return await self._answer(call, lambda: copy.deepcopy(self._existing(res, namespace, name)))

    async def list(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> Obj:
        call = self._record("list", res, namespace, options=_given(label_selector=label_selector,
                                                                    field_selector=field_selector))

        def items() -> Obj:
            sel = parse_label_selector(label_selector)
            found = [copy.deepcopy(o) for o in self.all(res, namespace)
                     if sel.matches((o.get("metadata") or {}).get("labels") or {})
                     and _named(o, field_selector)]
            return {"apiVersion": res.api_version, "kind": res.kind + "List",
                    "metadata": {"resourceVersion": str(self.rv)}, "items": found}

        return await self._answer(call, items)

    async def create(self, res: Resource, namespace: str | None, obj: Obj,
                     field_manager: str | None = None, dry_run: bool = False) -> Obj:
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        call = self._record("create", res, namespace, (obj.get("metadata") or {}).get("name") or "", obj,
                            options=_given(field_manager=field_manager, dry_run=dry_run))
        return await self._answer(call, lambda: self._create(res, namespace, obj, dry_run))

    async def update(self, res: Resource, namespace: str | None, name: str, obj: Obj,
                     subresource: str = "", field_manager: str | None = None) -> Obj:
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        call = self._record("update", res, namespace, name, obj, subresource,
                            _given(field_manager=field_manager))

        def update() -> Obj:
            current = self._existing(res, namespace, name)
            self._check_rv(res, name, current, (obj.get("metadata") or {}).get("resourceVersion"))
            return self._write(res, current, copy.deepcopy(obj), subresource)

        return await self._answer(call, update)

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", field_manager: str | None = None, force: bool = False) -> Obj:
        call = self._record("patch", res, namespace, name, body, subresource,
                            _given(patch_type=patch_type, field_manager=field_manager, force=force))

        def patch() -> Obj:
            current = self._existing(res, namespace, name)
            if isinstance(body, dict):
                self._check_rv(res, name, current, (body.get("metadata") or {}).get("resourceVersion"))
            return self._write(res, current, _apply_patch(res, current, body, patch_type), subresource)

        return await self._answer(call, patch)

    async def delete(self, res: Resource, namespace: str | None, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        call = self._record("delete", res, namespace, name, options=_given(
            propagation_policy=propagation_policy, grace_period_seconds=grace_period_seconds,
            preconditions=preconditions))
        return await self._answer(call, lambda: self._delete(res, namespace, name, grace_period_seconds, preconditions))

    async def delete_collection(self, res: Resource, namespace: str | None, label_selector: str = "",
                                propagation_policy: str | None = None) -> Obj:
        call = self._record("deletecollection", res, namespace, options=_given(
            label_selector=label_selector, propagation_policy=propagation_policy))

        def delete_all() -> Obj:
            sel = parse_label_selector(label_selector)
            for o in self.all(res, namespace):
                meta = o["metadata"]
                if sel.matches(meta.get("labels") or {}):
                    self._delete(res, meta.get("namespace"), meta["name"], None, None)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success"}

        return await self._answer(call, delete_all)

    async def create_subresource(self, res: Resource, namespace: str | None, name: str, subresource: str,
                                 body: Obj) -> Obj:
        call = self._record("create_subresource", res, namespace, name, body, subresource)

        def create() -> Obj:
            current = self._existing(res, namespace, name)
            if res.plural == "pods" and subresource == "binding":
                if (current.get("spec") or {}).get("nodeName"):
                    raise ApiError.conflict(res.group, res.plural, name, "pod is already assigned to a node")
                bound = copy.deepcopy(current)
                bound.setdefault("spec", {})["nodeName"] = (body.get("target") or {}).get("name", "")
                self._write(res, current, bound, "")
            elif res.plural == "pods" and subresource == "eviction":
                self._delete(res, namespace, name, None, None)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}

        return await self._answer(call, create)

    async def watch(self, res: Resource, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, Obj]]:
        """Every change after `resource_version` to objects of `res`, as it happens."""
        self._record("watch", res, namespace, options=_given(resource_version=resource_version))
        sel = parse_label_selector(label_selector)
        since = int(resource_version or self.rv)
        scanned = 0
        while True:
            while scanned < len(self._log):
                rv, type_, plural, obj = self._log[scanned]
                scanned += 1
                meta = obj.get("metadata") or {}
                if rv > since and plural == res.plural and (namespace is None or meta.get("namespace") == namespace) \
                        and sel.matches(meta.get("labels") or {}) and _named(obj, field_selector):
                    yield type_, copy.deepcopy(obj)
            async with self._changed:
                await self._changed.wait_for(lambda n=scanned: len(self._log) > n)

    async def get_raw(self, path: str) -> Any:
        call = Call("get_raw", path)
        self.calls.append(call)
        return await self._answer(call, lambda: _raise(ApiError.path_not_found()))

    async def event(self, involved: Obj, type_: str, reason: str, message: str, component: str) -> None:
        meta = involved.get("metadata") or {}
        self.calls.append(Call("event", "events", meta.get("namespace"), meta.get("name") or "",
                               {"type": type_, "reason": reason, "message": message, "kind": involved.get("kind"),
                                "component": component}))
        self.events.append(RecordedEvent(type_, reason, message, involved.get("kind") or "",
                                         meta.get("name") or "", component))

    async def close(self) -> None:
        return None

    # -- the store -----------------------------------------------------------------------

    def _record(self, verb: str, res: Resource, namespace: str | None, name: str = "", body: Any = None,
                subresource: str = "", options: dict[str, Any] | None = None) -> Call:
        call = Call(verb, res.plural, namespace, name, copy.deepcopy(body), subresource, options or {})
        self.calls.append(call)
        return call

    async def _answer(self, call: Call, default: Callable[[], Any]) -> Any:
        for verb, resource, reactor in list(self._reactors):
            if verb in ("*", call.verb) and resource in ("*", call.resource):
                result = reactor(call)
                if inspect.isawaitable(result):
                    result = await result
                if result is not None:
                    return result
        return default()

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _existing(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(_key(res, namespace, name))
        if obj is None:
            raise ApiError.not_found(res.group, res.plural, name)
        return obj

    @staticmethod
    def _check_rv(res: Resource, name: str, current: Obj, wanted: str | None) -> None:
        if wanted and wanted != current["metadata"].get("resourceVersion"):
            raise ApiError.conflict(res.group, res.plural, name,
                                    "the object has been modified; please apply your changes to the latest "
                                    "version and try again")

    def _create(self, res: Resource, namespace: str | None, obj: Obj, dry_run: bool) -> Obj:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError.bad_request("name or generateName is required")
            meta["name"] = f"{meta['generateName']}{next(self._generated)}"
        if res.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        key = _key(res, meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError.already_exists(res.group, res.plural, meta["name"])
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta.setdefault("generation", 1)
        if dry_run:
            return obj
        meta["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self._changed_to(res, "ADDED", obj)
        return copy.deepcopy(obj)

    def _write(self, res: Resource, current: Obj, new: Obj, subresource: str) -> Obj:
        """Store `new` in place of `current`: a status write changes only the status, any
        other write anything but the status, as for kinds with a status subresource."""
        if subresource == "status":
            merged = copy.deepcopy(current)
            merged["status"] = new.get("status")
        else:
            merged = new
            if "status" in current:
                merged["status"] = copy.deepcopy(current["status"])
            else:
                merged.pop("status", None)
            old_meta = current["metadata"]
            meta = merged.setdefault("metadata", {})
            for k in ("uid", "namespace", "name", "creationTimestamp", "deletionTimestamp", "generation"):
                if k in old_meta:
                    meta[k] = old_meta[k]
            if merged.get("spec") != current.get("spec"):
                meta["generation"] = int(old_meta.get("generation") or 1) + 1
        merged["metadata"]["resourceVersion"] = self._next_rv()
        meta = merged["metadata"]
        key = _key(res, meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and res.plural not in self.graceful:
            del self.objects[key]
            self._changed_to(res, "DELETED", merged)
        else:
            self.objects[key] = merged
            self._changed_to(res, "MODIFIED", merged)
        return copy.deepcopy(merged)

    def _delete(self, res: Resource, namespace: str | None, name: str, grace: int | None,
                preconditions: Mapping[str, str] | None) -> Obj:
        current = self._existing(res, namespace, name)
        meta = current["metadata"]
        for k, want in (preconditions or {}).items():
            if want and meta.get(k) != want:
                raise ApiError.conflict(res.group, res.plural, name, f"Precondition failed: {k}: {want}")
        if meta.get("finalizers") or (res.plural in self.graceful and grace != 0):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(current)
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = DELETION_TIMESTAMP
            marked["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[_key(res, namespace, name)] = marked
            self._changed_to(res, "MODIFIED", marked)
            return copy.deepcopy(marked)
        del self.objects[_key(res, namespace, name)]
        self._next_rv()
        self._changed_to(res, "DELETED", current)
        return copy.deepcopy(current)

    def _changed_to(self, res: Resource, type_: str, obj: Obj) -> None:
        entry = (self.rv, type_, res.plural, copy.deepcopy(obj))
        if res.plural in self.lag:
            self._undelivered.append(entry)
        else:
            self._publish(entry)

    def _publish(self, entry: tuple[int, str, str, Obj]) -> None:
        self._log.append(entry)
        _, type_, plural, obj = entry
        inf = self.informers.informers.get(plural) if self.informers is not None else None
        if inf is not None:
            if type_ == "DELETED":
                inf.delete(copy.deepcopy(obj))
            else:
                inf.upsert(copy.deepcopy(obj))
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        try:
            asyncio.get_running_loop().create_task(notify())
        except RuntimeError:
            pass  # no loop: nobody can be watching


def _key(res: Resource, namespace: str | None, name: str) -> tuple[str, str | None, str]:
    return res.plural, namespace if res.namespaced else None, name


def _given(**options: Any) -> dict[str, Any]:
    """The options a caller gave: those not left at None, "" or False (0 counts)."""
    return {k: v for k, v in options.items() if not (v is None or v is False or v == "")}


def _raise(error: Exception) -> Any:
    raise error


def _apply_patch(res: Resource, current: Obj, body: Any, patch_type: str) -> Obj:
    if patch_type == "json":
        return json_patch(current, body)
    if patch_type == "strategic":
        name = schemas.definition_name_for(res.group, res.version, res.kind)
        return strategic_merge_patch(current, body, schemas.root(name) if name else None)
    # "merge", and "apply" taken as a merge: enough for a component's own fields.
    return json_merge_patch(current, body)


# -- informers --------------------------------------------------------------------------

class FakeInformer:
    """A synced cache of one resource. `upsert` and `delete` change it and call the
    handlers at once; reads and indexes behave as the real informer's."""

    def __init__(self, res: Resource | None = None, indexers: dict[str, IndexFunc] | None = None) -> None:
        self.res = res
        self.store: dict[str, Obj] = {}
        self.indexers: dict[str, IndexFunc] = {"namespace": namespace_index, "owner": owner_index,
                                               **(indexers or {})}
        self.handlers: list[tuple[Any, Any, Any]] = []
        self.synced = asyncio.Event()
        self.synced.set()

    # -- driving it
    def upsert(self, *objs: Obj) -> None:
        for obj in objs:
            key = object_key(obj)
            old = self.store.get(key)
            self.store[key] = obj
            for on_add, on_update, _ in list(self.handlers):
                if old is None:
                    if on_add is not None:
                        on_add(obj)
                elif on_update is not None:
                    on_update(old, obj)

    def delete(self, obj: Obj) -> None:
        self.store.pop(object_key(obj), None)
        for _, _, on_delete in list(self.handlers):
            if on_delete is not None:
                on_delete(obj)

    # -- the SharedInformer protocol
    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.store.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return list(self.store.values())

    def by_index(self, index: str, value: str) -> list[Obj]:
        fn = self.indexers[index]
        return [o for o in self.store.values() if value in fn(o)]

    def keys_by_index(self, index: str, value: str) -> set[str]:
        fn = self.indexers[index]
        return {k for k, o in self.store.items() if value in fn(o)}

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        for name, fn in indexers.items():
            self.indexers.setdefault(name, fn)

    def add_handler(self, on_add: Callable[[Obj], None] | None = None,
                    on_update: Callable[[Obj, Obj], None] | None = None,
                    on_delete: Callable[[Obj], None] | None = None) -> None:
        self.handlers.append((on_add, on_update, on_delete))
        if on_add is not None:
            for obj in list(self.store.values()):
                on_add(obj)

    def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class FakeInformers:
    """One FakeInformer per resource, whatever namespace or selectors are asked for: the
    test decides what each cache holds. An informer made after a FakeClient was given
    these starts with the client's objects, as a real one lists them."""

    def __init__(self) -> None:
        self.informers: dict[str, FakeInformer] = {}
        self.source: FakeClient | None = None

    def __getitem__(self, res: Resource) -> FakeInformer:
        return self.informer(res)

    def informer(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                 field_selector: str = "", indexers: dict[str, IndexFunc] | None = None) -> FakeInformer:
        inf = self.informers.get(res.plural)
        if inf is None:
            inf = self.informers[res.plural] = FakeInformer(res, indexers)
            if self.source is not None:
                inf.upsert(*(copy.deepcopy(o) for o in self.source.all(res)))
        elif indexers:
            inf.add_indexers(indexers)
        return inf

    async def start(self) -> None:
        return None

    async def wait_synced(self, timeout: float = 60.0) -> None:
        return None

    async def stop(self) -> None:
        return None


# -- object builders --------------------------------------------------------------------

def pod(name: str = "p", namespace: str = "default", *, labels: Mapping[str, str] | None = None,
        node: str | None = None, phase: str | None = None, ready: bool | None = None,
        ready_since: str | None = None, ip: str | Sequence[str] | None = None, deleting: bool = False,
        owner: Mapping[str, Any] | None = None, uid: str | None = None, created: str | None = None,
        requests: Mapping[str, str] | None = None, image: str = "nginx", ports: list[Obj] | None = None,
        containers: list[Obj] | None = None,
        conditions: list[Obj] | None = None, status: Mapping[str, Any] | None = None, **spec: Any) -> Obj:
    """A pod as the API would return it. `requests`, `image` and `ports` make its one
    container "c" unless `containers` are given; `ip` may be one address or several
    (dual-stack); `ready` sets the Ready condition (transition
    time `ready_since`); `owner` is a controller ownerReference; other keyword arguments
    are spec fields (nodeSelector=…, tolerations=…, schedulerName=…); `status` adds
    status fields."""
    meta: Obj = {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}", "resourceVersion": "1"}
    if labels:
        meta["labels"] = dict(labels)
    if created:
        meta["creationTimestamp"] = created
    if deleting:
        meta["deletionTimestamp"] = DELETION_TIMESTAMP
    if owner:
        meta["ownerReferences"] = [{"controller": True, "blockOwnerDeletion": True, **owner}]
    if containers is None:
        container: Obj = {"name": "c", "image": image}
        if requests:
            container["resources"] = {"requests": dict(requests)}
        if ports:
            container["ports"] = ports
        containers = [container]
    body: Obj = {"containers": containers, **spec}
    if node:
        body["nodeName"] = node
    st: Obj = dict(status or {})
    if phase:
        st["phase"] = phase
    ips = [ip] if isinstance(ip, str) else list(ip or ())
    if ips:
        st["podIP"] = ips[0]
        st["podIPs"] = [{"ip": a} for a in ips]
    conds = list(conditions or [])
    if ready is not None:
        cond: Obj = {"type": "Ready", "status": "True" if ready else "False"}
        if ready_since:
            cond["lastTransitionTime"] = ready_since
        conds.append(cond)
    if conds:
        st["conditions"] = conds
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body, "status": st}


def node(name: str = "n1", *, ready: bool | str | None = True, labels: Mapping[str, str] | None = None,
         taints: list[Obj] | None = None, unschedulable: bool = False,
         allocatable: Mapping[str, str] | None = None, conditions: list[Obj] | None = None,
         images: list[Obj] | None = None) -> Obj:
    """A node as its agent reports it; `ready` may be a condition status ("Unknown") or
    None for a node that never reported."""
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    conds = list(conditions or [])
    if ready is not None:
        status_value = ready if isinstance(ready, str) else ("True" if ready else "False")
        conds.insert(0, {"type": "Ready", "status": status_value})
    alloc = dict(allocatable or {"cpu": "4", "memory": "8Gi", "pods": "110"})
    status: Obj = {"conditions": conds, "allocatable": alloc, "capacity": dict(alloc)}
    if images:
        status["images"] = images
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": status}


async def until(cond: Callable[[], Any], timeout: float = 3.0) -> None:
    """Wait for a component running on the fakes to make `cond()` true; fail the test
    if it does not within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def settle(rounds: int = 5) -> None:
    """Let the tasks a component started on the fakes (events, handlers) run a few turns."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def drain(queue: WorkQueue) -> list[str]:
    """The keys waiting in a component's work queue, in order, taken out and marked done."""
    keys = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys
