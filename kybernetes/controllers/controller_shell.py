"""The API-side steps the workload controllers' shells share (ReplicaSet, DaemonSet,
StatefulSet, Job, ...): best-effort events, the informer handlers that turn an owned pod's
events into syncs of its owner under expectations, creating and deleting pods with their
events, checking that a cached owner is still the live one before adopting for it,
adopting and releasing pods or revisions, adopting orphan ControllerRevisions, bumping
collisionCount on a revision name collision and writing a status that keeps a
collisionCount bumped meanwhile. The decisions stay in each controller's pure planner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from kybernetes.api.pods import pod_is_terminating
from kybernetes.client import ApiError, Client, WorkQueue, object_key
from kybernetes.client.protocols import Cache
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CONTROLLERREVISIONS, PODS, Resource
from kybernetes.controllers.podutil import (
    adopt_patch,
    compile_selector,
    controller_ref,
    live_owner,
    release_patch,
    selecting,
)

if TYPE_CHECKING:
    from kybernetes.controllers.replicaset import Expectations

Obj = dict[str, Any]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


class EventRecorder:
    """Records Events about objects in the background: events are best effort and must not
    slow a burst of creates down. Called as `record(obj, type_, reason, message)`."""

    def __init__(self, client: Client, component: str) -> None:
        self.client = client
        self.component = component
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self.client.event(dict(obj), type_=type_, reason=reason, message=message, component=self.component))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def is_namespace_terminating(err: ApiError) -> bool:
    """Whether a create was refused because its namespace is being deleted: nothing to retry."""
    causes = (err.details or {}).get("causes") or []
    return any(c.get("reason") == "NamespaceTerminating" for c in causes)


class PodOwnerShell:
    """The parts of a pod-owning controller's shell that do not depend on the kind: informer
    handlers that sync a pod's owner (counting the pods it expects to see created or
    deleted) and the creation and deletion of one pod with its event.

    A subclass sets `queue`, `expectations`, `client`, `component`, `_record`, `owners` (the
    informer of its kind) and `owner_kind`, or overrides `_owner_of` (the live owner of its
    kind controlling an object) and `_enqueue_selecting` (sync the owners that could adopt
    an orphan) where its kind needs more."""

    queue: WorkQueue
    expectations: Expectations
    client: Client
    component: str
    _record: Callable[[Obj, str, str, str], None]
    owners: Cache
    owner_kind: str

    def _owner_of(self, obj: Obj) -> Obj | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != self.owner_kind:
            return None
        return live_owner(self.owners, obj, ref)

    def _enqueue_selecting(self, pod: Obj) -> None:
        for owner in selecting(self.owners, pod):
            self._enqueue(owner)

    def _finish(self, key: str, error: BaseException | None, requeue_after: float | None) -> Result:
        """The end of a sync: raise its error (the queue backs off), but a check due sooner
        (minReadySeconds, say) must not wait for that back-off."""
        if error is not None:
            if requeue_after is not None:
                self.queue.add_after(key, requeue_after)
            raise error
        return Result.after_or_done(requeue_after)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _enqueue(self, owner: Obj) -> None:
        self.queue.add(object_key(owner))

    def _owner_deleted(self, owner: Obj) -> None:
        key = object_key(owner)
        self.expectations.forget(key)
        self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        if pod_is_terminating(pod):
            # Restarted with a pod already on its way out: it must not count as a creation.
            self._pod_deleted(pod)
            return
        owner = self._owner_of(pod)
        if owner is not None:
            key = object_key(owner)
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod) is None:
            self._enqueue_selecting(pod)

    def _owned_changed(self, obj: Obj) -> None:
        """Sync the owner of something it controls (a ControllerRevision, say)."""
        owner = self._owner_of(obj)
        if owner is not None:
            self._enqueue(owner)

    def _pod_moved(self, old: Obj, new: Obj) -> None:
        """A live pod changed: its former controller syncs if the pod left it, and its
        controller, or for an orphan the owners that could adopt it, syncs."""
        old_ref = controller_ref(old)
        if old_ref is not None and old_ref != controller_ref(new):
            old_owner = self._owner_of(old)
            if old_owner is not None:
                self._enqueue(old_owner)
        owner = self._owner_of(new)
        if owner is not None:
            self._enqueue(owner)
        elif controller_ref(new) is None:
            self._enqueue_selecting(new)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_of(pod)
        if owner is None:
            return
        key = object_key(owner)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- pods --------------------------------------------------------------------------

    async def _create_pod(self, owner: Obj, pod: Obj) -> bool:
        """Create `pod` for `owner` with a SuccessfulCreate or FailedCreate event; False when
        its namespace is being deleted (it will never be observed), raises on other errors."""
        try:
            created = await self.client.create(PODS, _meta(owner).get("namespace"), pod,
                                               field_manager=self.component)
        except ApiError as e:
            if is_namespace_terminating(e):
                return False
            self._record(owner, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self._record(owner, "Normal", "SuccessfulCreate", f"Created pod: {_name(created)}")
        return True

    def _deleted_message(self, owner: Obj, pod: Obj) -> str:
        return f"Deleted pod: {_name(pod)}"

    def _delete_failed_message(self, owner: Obj, pod: Obj, error: str) -> str:
        return f"Error deleting: {error}"

    async def _delete_pod(self, owner: Obj, key: str, pod: Obj) -> None:
        """Delete `pod` (this very one: uid precondition) with its event; gone already or
        replaced counts as done. On an error its deletion is no longer waited for."""
        try:
            await self.client.delete(PODS, _meta(owner).get("namespace"), _name(pod),
                                     preconditions={"uid": _uid(pod)})
        except ApiError as e:
            # Its deletion event may never come: do not wait for it.
            self.expectations.deletion_observed(key, object_key(pod))
            if e.code in (404, 409):
                return
            self._record(owner, "Warning", "FailedDelete", self._delete_failed_message(owner, pod, e.message))
            raise
        self._record(owner, "Normal", "SuccessfulDelete", self._deleted_message(owner, pod))


async def first_error(*steps: Awaitable[Any]) -> BaseException | None:
    """Run `steps` together to the end; the first error among them (cancellation is re-raised)."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for r in results:
        if isinstance(r, asyncio.CancelledError):
            raise r
    errors = [r for r in results if isinstance(r, BaseException)]
    return errors[0] if errors else None


async def ensure_live(client: Client, resource: Resource, owner: Mapping[str, Any]) -> None:
    """Raise unless the stored `owner` is still the cached one and not being deleted: the
    cache may be stale, and adopting for an owner deleted or replaced meanwhile would have
    the adopted objects garbage collected with it."""
    ns = _meta(owner).get("namespace")
    fresh = await client.get(resource, ns, _name(owner))
    if _uid(fresh) != _uid(owner) or _meta(fresh).get("deletionTimestamp"):
        raise RuntimeError(f"{resource.kind} {ns}/{_name(owner)} is gone or being deleted")


async def adopt_and_release(client: Client, resource: Resource, owner: Mapping[str, Any], adopt: Iterable[Obj],
                            release: Iterable[Obj], component: str) -> None:
    """Make `owner` the controller of `adopt` and drop it from `release` (objects of
    `resource`); ones gone or changed meanwhile (404, a failed test: 422) are skipped."""
    ns = _meta(owner).get("namespace")
    for objs, patch_for in ((adopt, adopt_patch), (release, release_patch)):
        for obj in objs:
            try:
                await client.patch(resource, ns, _name(obj), patch_for(owner, obj), patch_type="json",
                                   field_manager=component)
            except ApiError as e:
                if e.code not in (404, 422):
                    raise


async def apply_claim(client: Client, resource: Resource, owner: Mapping[str, Any], adopt: list[Obj],
                     release: list[Obj], component: str) -> None:
    """Adopt the orphan pods `adopt` and release `release` for `owner`, a `resource` object
    checked live before anything is adopted for it."""
    if adopt:
        await ensure_live(client, resource, owner)
    await adopt_and_release(client, PODS, owner, adopt, release, component)


async def claim_revisions(client: Client, resource: Resource, owner: Mapping[str, Any], revisions: Cache,
                          component: str) -> list[Obj]:
    """The ControllerRevisions `owner` controls, the orphans its selector matches adopted
    first (left by an owner deleted with --cascade=orphan and created again, say);
    `revisions` is an informer with the "orphan" index."""
    ns = _meta(owner).get("namespace")
    owned = [r for r in revisions.by_index("owner", _uid(owner))
             if (controller_ref(r) or {}).get("uid") == _uid(owner)]
    selector = compile_selector((owner.get("spec") or {}).get("selector"))
    orphans = [r for r in revisions.by_index("orphan", ns or "")
               if selector.matches(_meta(r).get("labels") or {})]
    if not orphans or _meta(owner).get("deletionTimestamp"):
        return owned
    await ensure_live(client, resource, owner)
    for rev in orphans:
        try:
            owned.append(await client.patch(CONTROLLERREVISIONS, ns, _name(rev), adopt_patch(owner, rev),
                                            patch_type="json", field_manager=component))
        except ApiError as e:
            if e.code not in (404, 422):
                raise
    return owned


def _with_kind(resource: Resource, obj: Obj) -> Obj:
    return {**obj, "apiVersion": resource.api_version, "kind": resource.kind}


async def bump_collision_count(client: Client, resource: Resource, owner: Mapping[str, Any],
                               revision: Mapping[str, Any]) -> NoReturn:
    """Another template (or owner) holds the name of `revision`: a hash collision. Bump the
    owner's collisionCount (unless our copy is stale) so the next pass hashes differently;
    raises either way, the sync is retried."""
    ns = _meta(owner).get("namespace")
    fresh = _with_kind(resource, await client.get(resource, ns, _name(owner)))
    old_count = (owner.get("status") or {}).get("collisionCount")
    fresh_count = (fresh.get("status") or {}).get("collisionCount")
    if fresh_count != old_count:
        raise RuntimeError(f"stale collisionCount ({old_count}, now {fresh_count}) of {resource.kind} "
                           f"{ns}/{_name(owner)}; retrying")
    status = dict(fresh.get("status") or {})
    status["collisionCount"] = int(fresh_count or 0) + 1
    await client.update(resource, ns, _name(owner), {**fresh, "status": status}, subresource="status")
    raise RuntimeError(f"ControllerRevision {ns}/{_name(revision)} collides; collisionCount now "
                       f"{status['collisionCount']}")


async def write_status(client: Client, resource: Resource, owner: Mapping[str, Any], status: Obj) -> None:
    """Write `status` on `owner`'s status subresource. Written since our snapshot (409): the
    counts are still ours to report, but a collisionCount bumped meanwhile must survive."""
    ns = _meta(owner).get("namespace")
    try:
        await client.update(resource, ns, _name(owner), {**owner, "status": status}, subresource="status")
    except ApiError as e:
        if e.code != 409:
            raise
        fresh = _with_kind(resource, await client.get(resource, ns, _name(owner)))
        merged = dict(status)
        fresh_count = (fresh.get("status") or {}).get("collisionCount")
        if fresh_count is not None and fresh_count > merged.get("collisionCount", -1):
            merged["collisionCount"] = fresh_count
        await client.update(resource, ns, _name(owner), {**fresh, "status": merged}, subresource="status")


async def delete_quietly(client: Client, resource: Resource, ns: str | None, obj: Mapping[str, Any]) -> None:
    """Delete this very `obj` (uid precondition); gone already or replaced counts as done."""
    try:
        await client.delete(resource, ns, _name(obj), preconditions={"uid": _uid(obj)})
    except ApiError as e:
        if e.code not in (404, 409):
            raise
