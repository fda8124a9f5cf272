"""The garbage collector: deletes objects whose owners are gone, and carries out the
Foreground and Orphan deletion policies.

It keeps a graph of ownerReferences over every resource the server serves
(found through discovery, refreshed periodically so custom resources join), fed
by informers. Three decisions are made on that graph by pure functions:

* an object all of whose owners are absent is deleted (Background unless its own
  finalizers ask otherwise); owners that are absent are confirmed with a live GET
  first, as Kubernetes does, so a lagging informer never causes a deletion;
* an owner being deleted with the `foregroundDeletion` finalizer has its
  dependents deleted, and loses the finalizer once no dependent with
  `blockOwnerDeletion` is left;
* an owner being deleted with the `orphan` finalizer has its ownerReference
  removed from every dependent, then loses the finalizer.

Owner references never cross namespaces: a namespaced owner is looked up in its
dependent's namespace, a cluster-scoped one without a namespace, and a
cluster-scoped dependent naming a namespaced owner is unresolvable and kept.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.client import ApiError, Client, Informers, Resource, SharedInformer, WorkQueue
from kybernetes.client.reconcile import Result, SyncFn
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.apidiscovery import ServedResource, discover

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
COMPONENT = "garbage-collector-controller"
# Events are high-churn and never own anything worth collecting; Kubernetes skips them too.
IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})

SOLID = "solid"          # the owner exists and is not waiting for its dependents
DANGLING = "dangling"    # the owner does not exist (or a different object has its name)
WAITING = "waiting"      # the owner is being deleted in the foreground


# -- the graph (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class OwnerRef:
    api_version: str
    kind: str
    name: str
    uid: str
    block: bool = False
    controller: bool = False

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""


@dataclass(frozen=True)
class Node:
    """What the collector needs to know about one object."""

    uid: str
    api_version: str
    kind: str
    namespace: str  # "" for cluster-scoped objects
    name: str
    owners: tuple[OwnerRef, ...] = ()
    deleting: bool = False
    finalizers: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN in self.finalizers

    def ref_to(self, owner_uid: str) -> OwnerRef | None:
        return next((r for r in self.owners if r.uid == owner_uid), None)

    def as_object(self) -> dict[str, Any]:
        """A skeleton of the object, enough to name it in an Event."""
        meta: dict[str, Any] = {"name": self.name, "uid": self.uid}
        if self.namespace:
            meta["namespace"] = self.namespace
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta}


def node_from(obj: dict[str, Any], api_version: str, kind: str) -> Node | None:
    """The graph node of an informer object; `api_version`/`kind` come from the informer's
    resource because list items need not carry them."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    if not uid:
        return None
    owners = tuple(
        OwnerRef(str(r.get("apiVersion") or ""), str(r.get("kind") or ""), str(r.get("name") or ""),
                 str(r["uid"]), bool(r.get("blockOwnerDeletion")), bool(r.get("controller")))
        for r in meta.get("ownerReferences") or [] if isinstance(r, dict) and r.get("uid"))
    return Node(uid, api_version, kind, meta.get("namespace") or "", meta.get("name") or "", owners,
                bool(meta.get("deletionTimestamp")), tuple(meta.get("finalizers") or ()))


@dataclass
class GraphChange:
    """Work that a graph update calls for: objects to re-check, owners to orphan from."""

    attempt: list[str] = field(default_factory=list)
    orphan: list[str] = field(default_factory=list)


class Graph:
    """ownerReferences as an index: uid → node, and owner uid → dependent uids. An owner
    that was never observed (or is gone) still has its dependents listed, which plays the
    part of Kubernetes' "virtual" nodes."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def dependents_of(self, uid: str) -> list[Node]:
        return [self.nodes[d] for d in self._dependents.get(uid, ()) if d in self.nodes]

    def upsert(self, node: Node) -> GraphChange:
        change = GraphChange()
        old = self.nodes.get(node.uid)
        self.nodes[node.uid] = node
        old_refs = {r.uid: r for r in old.owners} if old is not None else {}
        new_refs = {r.uid: r for r in node.owners}
        for uid, ref in old_refs.items():
            new_ref = new_refs.get(uid)
            if new_ref is None:
                self._unlink(uid, node.uid)
            # A foreground owner may have been waiting on exactly this reference.
            if (new_ref is None or (ref.block and not new_ref.block)) and self._is_deleting_dependents(uid):
                change.attempt.append(uid)
        for uid in new_refs:
            if uid in old_refs:
                continue
            self._dependents.setdefault(uid, set()).add(node.uid)
            owner = self.nodes.get(uid)
            # An owner never seen may not exist at all; a foreground owner wants this one gone.
            if owner is None or owner.deleting_dependents:
                change.attempt.append(node.uid)
        if node.orphaning and (old is None or not old.orphaning):
            change.orphan.append(node.uid)
        if node.deleting_dependents and (old is None or not old.deleting_dependents):
            change.attempt.extend(d.uid for d in self.dependents_of(node.uid))
            change.attempt.append(node.uid)
        return _dedup(change)

    def remove(self, uid: str) -> GraphChange:
        change = GraphChange()
        node = self.nodes.pop(uid, None)
        if node is None:
            return change
        # Dependents keep their reference to this uid: their next check finds it absent.
        change.attempt.extend(d.uid for d in self.dependents_of(uid))
        for ref in node.owners:
            self._unlink(ref.uid, uid)
            if self._is_deleting_dependents(ref.uid):
                change.attempt.append(ref.uid)
        if not self._dependents.get(uid):
            self._dependents.pop(uid, None)
        return _dedup(change)

    def _unlink(self, owner_uid: str, dependent_uid: str) -> None:
        deps = self._dependents.get(owner_uid)
        if deps is None:
            return
        deps.discard(dependent_uid)
        if not deps and owner_uid not in self.nodes:
            del self._dependents[owner_uid]

    def _is_deleting_dependents(self, uid: str) -> bool:
        owner = self.nodes.get(uid)
        return owner is not None and owner.deleting_dependents


def _dedup(change: GraphChange) -> GraphChange:
    change.attempt = list(dict.fromkeys(change.attempt))
    change.orphan = list(dict.fromkeys(change.orphan))
    return change


# -- decisions (pure) ----------------------------------------------------------------------


def owner_verdict(ref: OwnerRef, owner: dict[str, Any] | None) -> str:
    """SOLID, DANGLING or WAITING for one reference, from the owner's live object (None: 404)."""
    if owner is None:
        return DANGLING
    meta = owner.get("metadata") or {}
    if meta.get("uid") != ref.uid:
        return DANGLING
    if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
        return WAITING
    return SOLID


def lookup_namespace(dependent: Node, owner_namespaced: bool) -> tuple[bool, str | None]:
    """Where to look for an owner: (valid, namespace). A cluster-scoped dependent cannot be
    owned by a namespaced object, so such a reference is invalid and never resolves."""
    if not owner_namespaced:
        return True, None
    if not dependent.namespace:
        return False, None
    return True, dependent.namespace


@dataclass(frozen=True)
class ItemPlan:
    """What to do with one object after its owners were checked."""

    action: str  # "none", "remove_refs" or "delete"
    remove_uids: tuple[str, ...] = ()
    unblock: bool = False  # clear blockOwnerDeletion on the object's own refs before deleting
    policy: str = ""


NOTHING = ItemPlan("none")


def deletion_policy(node: Node, waiting_for_owner: bool) -> str:
    """The propagation policy to delete `node` with: its own finalizers decide first; a
    dependent of a foreground owner goes in the foreground so the chain blocks all the way."""
    if ORPHAN in node.finalizers:
        return "Orphan"
    if FOREGROUND in node.finalizers or waiting_for_owner:
        return "Foreground"
    return "Background"


def plan_item(node: Node, verdicts: dict[str, str], dependents: Iterable[Node]) -> ItemPlan:
    """Decide about an object from the verdicts on its owners (keyed by owner uid)."""
    if node.deleting or not node.owners:
        return NOTHING
    solid = [r.uid for r in node.owners if verdicts.get(r.uid) == SOLID]
    dangling = [r.uid for r in node.owners if verdicts.get(r.uid) == DANGLING]
    waiting = [r.uid for r in node.owners if verdicts.get(r.uid) == WAITING]
    if solid:
        # Still owned: only drop the references that no longer hold it (an owner being
        # deleted in the foreground must not take a shared dependent along).
        if dangling or waiting:
            return ItemPlan("remove_refs", tuple(dangling + waiting))
        return NOTHING
    if len(solid) + len(dangling) + len(waiting) < len(node.owners):
        return NOTHING  # some owner could not be checked: never delete on partial knowledge
    deps = list(dependents)
    if waiting and deps:
        # A dependent that is also waiting on us would deadlock the foreground chain.
        cycle = any(d.deleting_dependents for d in deps)
        return ItemPlan("delete", unblock=cycle, policy="Foreground")
    return ItemPlan("delete", policy=deletion_policy(node, bool(waiting)))


@dataclass(frozen=True)
class ForegroundPlan:
    remove_finalizer: bool
    enqueue: tuple[str, ...] = ()


def plan_foreground(owner: Node, dependents: Iterable[Node]) -> ForegroundPlan:
    """An owner deleting in the foreground keeps its finalizer while dependents with
    blockOwnerDeletion remain; those not yet being deleted are (re)checked."""
    blocking = [d for d in dependents if (r := d.ref_to(owner.uid)) is not None and r.block]
    if not blocking:
        return ForegroundPlan(True)
    return ForegroundPlan(False, tuple(d.uid for d in blocking if not d.deleting))


def plan_orphan(owner: Node, dependents: Iterable[Node]) -> list[Node]:
    """Dependents whose reference to an orphaning owner must be removed."""
    return [d for d in dependents if d.ref_to(owner.uid) is not None]


def remove_refs_patch(node: Node, uids: Iterable[str]) -> list[dict[str, Any]]:
    """A JSON patch dropping the references to `uids`. Each removal is guarded by a test
    of the uid at that index, so a stale snapshot fails instead of removing the wrong one."""
    drop = set(uids)
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": node.uid}]
    indexes = [i for i, r in enumerate(node.owners) if r.uid in drop]
    for i in indexes:
        ops.append({"op": "test", "path": f"/metadata/ownerReferences/{i}/uid", "value": node.owners[i].uid})
    if len(indexes) == len(node.owners):
        ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
    else:
        ops += [{"op": "remove", "path": f"/metadata/ownerReferences/{i}"} for i in reversed(indexes)]
    return ops


def unblock_patch(node: Node) -> list[dict[str, Any]]:
    """A JSON patch setting blockOwnerDeletion=false on every reference that has it."""
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": node.uid}]
    for i, r in enumerate(node.owners):
        if r.block:
            ops.append({"op": "test", "path": f"/metadata/ownerReferences/{i}/uid", "value": r.uid})
            ops.append({"op": "replace", "path": f"/metadata/ownerReferences/{i}/blockOwnerDeletion",
                        "value": False})
    return ops


def remove_finalizer_patch(node: Node, finalizer: str) -> list[dict[str, Any]]:
    """A JSON patch removing one finalizer, guarded like `remove_refs_patch`."""
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": node.uid}]
    indexes = [i for i, f in enumerate(node.finalizers) if f == finalizer]
    for i in indexes:
        ops.append({"op": "test", "path": f"/metadata/finalizers/{i}", "value": finalizer})
    ops += [{"op": "remove", "path": f"/metadata/finalizers/{i}"} for i in reversed(indexes)]
    return ops


# -- the controller (thin async shell) --------------------------------------------------------


class _RetryLater(Exception):
    """The object cannot be decided now (an owner's kind is not served yet, ...)."""


class GarbageCollectorController:
    """Owns the ownerReferences graph and the two queues of the collector.

    `run()` discovers the served resources, attaches to their shared informers, waits
    for them to sync (deleting before the graph is complete would be guesswork) and then
    works both queues; discovery is repeated every `rediscover_seconds`.
    """

    def __init__(self, client: Client, factory: Informers, rediscover_seconds: float = 30.0,
                 absent_cache_size: int = 4096, sync_timeout: float = 60.0,
                 ignored_resources: frozenset[tuple[str, str]] = IGNORED_RESOURCES) -> None:
        self.client = client
        self.factory = factory
        self.rediscover_seconds = rediscover_seconds
        self.sync_timeout = sync_timeout
        self.ignored = ignored_resources
        self.graph = Graph()
        self.attempt_queue = WorkQueue("garbagecollector-attempt-to-delete")
        self.orphan_queue = WorkQueue("garbagecollector-attempt-to-orphan")
        self._monitors: dict[Resource, SharedInformer] = {}
        self._stopped: set[Resource] = set()
        self._kinds: dict[tuple[str, str], Resource] = {}
        # uids confirmed absent by a live GET; uids are never reused, so this cannot go stale.
        self._absent: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._absent_size = absent_cache_size
        self.synced = asyncio.Event()

    # -- monitors -------------------------------------------------------------------------

    def monitorable(self, served: ServedResource) -> bool:
        res = served.resource
        return (served.supports("list", "watch", "delete")
                and (res.group, res.plural) not in self.ignored)

    async def refresh_monitors(self) -> list[SharedInformer]:
        """Discover, attach to the informers of new resources, stop those no longer served.
        Returns the informers added by this call."""
        found = await discover(self.client)
        for gv, why in found.failures.items():
            log.warning("garbage collector: discovery of %s failed: %s", gv, why)
        kinds = found.by_group_kind()
        # Keep kinds of group-versions that failed this round: their objects still exist.
        failed_groups = {gv.rsplit("/", 1)[0] if "/" in gv else "" for gv in found.failures}
        for key, res in self._kinds.items():
            if key not in kinds and res.group in failed_groups:
                kinds[key] = res
        self._kinds = kinds
        wanted = {s.resource for s in found.resources if self.monitorable(s)}
        added = []
        for res in wanted:
            if res in self._monitors and res not in self._stopped:
                continue
            added.append(self._monitor(res))
        for res, inf in list(self._monitors.items()):
            if res not in wanted and res not in self._stopped and res.group not in failed_groups:
                # A custom resource whose definition went away: its objects are gone too.
                await inf.stop()
                self._stopped.add(res)
        return added

    def _monitor(self, res: Resource) -> SharedInformer:
        inf = self.factory.informer(res)
        if res in self._stopped:
            self._stopped.discard(res)
            inf.start()
            return inf
        self._monitors[res] = inf

        def on_add(obj: dict[str, Any]) -> None:
            self.observe(res, obj)

        def on_update(_old: dict[str, Any], new: dict[str, Any]) -> None:
            self.observe(res, new)

        def on_delete(obj: dict[str, Any]) -> None:
            self.forget(obj)

        inf.add_handler(on_add, on_update, on_delete)
        return inf

    def observe(self, res: Resource, obj: dict[str, Any]) -> None:
        node = node_from(obj, res.api_version, res.kind)
        if node is not None:
            self._enqueue(self.graph.upsert(node))

    def forget(self, obj: dict[str, Any]) -> None:
        uid = (obj.get("metadata") or {}).get("uid")
        if not uid:
            return
        if self.graph.dependents_of(uid):
            self._mark_absent(uid)
        self._enqueue(self.graph.remove(uid))

    def _enqueue(self, change: GraphChange) -> None:
        for uid in change.attempt:
            self.attempt_queue.add(uid)
        for uid in change.orphan:
            self.orphan_queue.add(uid)

    def _mark_absent(self, uid: str) -> None:
        self._absent[uid] = None
        self._absent.move_to_end(uid)
        while len(self._absent) > self._absent_size:
            self._absent.popitem(last=False)

    def resource_of(self, api_version: str, kind: str) -> Resource | None:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return self._kinds.get((group, kind))

    # -- running --------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        while True:
            try:
                added = await self.refresh_monitors()
                break
            except (ApiError, OSError, TimeoutError) as e:
                log.warning("garbage collector: initial discovery failed: %s", e)
                await asyncio.sleep(2.0)
        try:
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in added)), self.sync_timeout)
        except TimeoutError:
            log.warning("garbage collector: not all informers synced after %.0fs; starting anyway",
                        self.sync_timeout)
        self.synced.set()

        def serve(queue: WorkQueue, sync: SyncFn, n: int) -> Coroutine[Any, Any, None]:
            return run_workers(queue, sync, n, "garbage collector:", (), expected=(_RetryLater,),
                               level=logging.INFO, logger=log)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(serve(self.attempt_queue, self.attempt_to_delete, workers))
            tg.create_task(serve(self.orphan_queue, self.attempt_to_orphan, workers // 2))
            tg.create_task(self._rediscover_loop())

    async def _rediscover_loop(self) -> None:
        while True:
            await asyncio.sleep(self.rediscover_seconds)
            try:
                await self.refresh_monitors()
            except Exception as e:  # noqa: BLE001 - the next round tries again
                log.warning("garbage collector: rediscovery failed: %s", e)

    # -- attempt to delete ----------------------------------------------------------------

    async def attempt_to_delete(self, uid: str) -> Result:
        node = self.graph.nodes.get(uid)
        if node is None:
            return Result.done()
        if node.deleting_dependents:
            await self._process_foreground(node)
            return Result.done()
        if node.deleting or not node.owners:
            return Result.done()
        verdicts = {ref.uid: await self._check_owner(node, ref) for ref in node.owners}
        plan = plan_item(node, verdicts, self.graph.dependents_of(uid))
        if plan.action == "none":
            return Result.done()
        res = self._resource_for(node)
        ns = node.namespace or None
        try:
            if plan.action == "remove_refs":
                log.info("garbage collector: removing dangling owner references %s from %s %s/%s",
                         list(plan.remove_uids), node.kind, node.namespace, node.name)
                await self.client.patch(res, ns, node.name, remove_refs_patch(node, plan.remove_uids), "json")
                return Result.done()
            if plan.unblock:
                await self.client.patch(res, ns, node.name, unblock_patch(node), "json")
            log.info("garbage collector: deleting %s %s/%s (policy %s)", node.kind, node.namespace, node.name,
                     plan.policy)
            await self.client.delete(res, ns, node.name, propagation_policy=plan.policy,
                                     preconditions={"uid": node.uid})
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            if e.code == 409 and "Precondition failed: UID" in (e.message or ""):
                return Result.done()  # a new object took the name; ours is already gone
            raise
        return Result.done()

    async def _check_owner(self, node: Node, ref: OwnerRef) -> str:
        if ref.uid in self._absent:
            return DANGLING
        res = self.resource_of(ref.api_version, ref.kind)
        if res is None:
            raise _RetryLater(f"owner kind {ref.api_version} {ref.kind} is not served")
        valid, ns = lookup_namespace(node, res.namespaced)
        if not valid:
            await self.client.event(node.as_object(), "Warning", "OwnerRefInvalidNamespace",
                                    f"ownerRef [{ref.api_version}/{ref.kind}, namespace: , name: {ref.name}, "
                                    f"uid: {ref.uid}] does not exist in namespace \"\"", COMPONENT)
            return SOLID  # unresolvable: Kubernetes never collects such an object
        cached = self.graph.nodes.get(ref.uid)
        if cached is not None and cached.namespace == (ns or "") and cached.name == ref.name:
            # Seen alive: a stale "present" only delays, its DELETE event requeues us.
            return WAITING if cached.deleting_dependents else SOLID
        if cached is not None and (ns or "") != cached.namespace:
            await self.client.event(node.as_object(), "Warning", "OwnerRefInvalidNamespace",
                                    f"ownerRef [{ref.api_version}/{ref.kind}, namespace: {node.namespace}, "
                                    f"name: {ref.name}, uid: {ref.uid}] does not exist in namespace "
                                    f"\"{node.namespace}\"", COMPONENT)
        try:
            live = await self.client.get(res, ns, ref.name)
        except ApiError as e:
            if e.code != 404:
                raise
            live = None
        verdict = owner_verdict(ref, live)
        if verdict == DANGLING:
            self._mark_absent(ref.uid)
        return verdict

    def _resource_for(self, node: Node) -> Resource:
        res = self.resource_of(node.api_version, node.kind)
        if res is None:
            raise _RetryLater(f"{node.api_version} {node.kind} is not served")
        return res

    async def _process_foreground(self, node: Node) -> None:
        plan = plan_foreground(node, self.graph.dependents_of(node.uid))
        if not plan.remove_finalizer:
            for uid in plan.enqueue:
                self.attempt_queue.add(uid)
            return
        log.info("garbage collector: dependents of %s %s/%s are gone, removing %s", node.kind, node.namespace,
                 node.name, FOREGROUND)
        await self._remove_finalizer(node, FOREGROUND)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        try:
            await self.client.patch(self._resource_for(node), node.namespace or None, node.name,
                                    remove_finalizer_patch(node, finalizer), "json")
        except ApiError as e:
            if e.code != 404:
                raise

    # -- attempt to orphan ----------------------------------------------------------------

    async def attempt_to_orphan(self, uid: str) -> Result:
        owner = self.graph.nodes.get(uid)
        if owner is None or not owner.orphaning:
            return Result.done()
        for dep in plan_orphan(owner, self.graph.dependents_of(uid)):
            try:
                await self.client.patch(self._resource_for(dep), dep.namespace or None, dep.name,
                                        remove_refs_patch(dep, [uid]), "json")
            except ApiError as e:
                if e.code != 404:
                    raise
        log.info("garbage collector: orphaned the dependents of %s %s/%s, removing %s", owner.kind,
                 owner.namespace, owner.name, ORPHAN)
        await self._remove_finalizer(owner, ORPHAN)
        return Result.done()
