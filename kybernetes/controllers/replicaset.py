"""The ReplicaSet controller: keeps `spec.replicas` pods that match a ReplicaSet's
selector, created from its template, and reports their state in its status.

The decisions live in pure functions (`plan_replicaset` and the deletion ranking);
`ReplicaSetController` is the shell that feeds them informer snapshots and carries
out the plan through the API: adopting and releasing pods, creating and deleting in
slow-start batches, recording events and writing the status subresource.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api.pods import (
    pod_is_active,
    pod_is_ready,
    pod_is_terminal,
    pod_is_terminating,
    pod_ready_since,
)
from kybernetes.api.selectors import selector_from_set
from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import PODS, REPLICASETS, REPLICATIONCONTROLLERS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import EventRecorder, PodOwnerShell, write_status
from kybernetes.controllers.podutil import (
    adopt_patch,
    compile_selector,
    controller_ref,
    format_time,
    live_owner,
    next_available_in,
    orphan_index,
    parse_time,
    pod_is_available,
    reference_to,
    release_patch,
    selecting,
)

log = logging.getLogger(__name__)

Obj = dict[str, Any]

COMPONENT = "replicaset-controller"
# Kubernetes' cap on creations or deletions in one sync, so one huge ReplicaSet cannot
# monopolise the API server; the rest happen in the following syncs.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
# Unobserved expectations stop blocking a ReplicaSet after this long, in case a watch
# event was lost for good.
EXPECTATIONS_TTL = 300.0
REPLICA_FAILURE = "ReplicaFailure"


# -- pure core ----------------------------------------------------------------------------


@dataclass
class Plan:
    """What one sync of a ReplicaSet should do, decided from a snapshot."""

    create: int = 0
    delete: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    # Active pods the ReplicaSet controls once adoption and release succeed.
    claimed: list[Obj] = field(default_factory=list)
    terminating: list[Obj] = field(default_factory=list)
    # Seconds until a ready pod becomes available and the status must be recomputed.
    requeue_after: float | None = None


def _uid(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def desired_replicas(rs: Mapping[str, Any]) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def min_ready_seconds(rs: Mapping[str, Any]) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def max_restarts(pod: Mapping[str, Any]) -> int:
    return max((int(cs.get("restartCount") or 0)
                for cs in (pod.get("status") or {}).get("containerStatuses") or ()), default=0)


def pods_on_same_node(pods: Iterable[Mapping[str, Any]], related: Iterable[Mapping[str, Any]]) -> list[int]:
    """For each pod, how many related pods share its node: doubled-up pods go first on scale
    down, which spreads the survivors."""
    per_node: dict[str, int] = {}
    seen: set[str] = set()
    for pod in related:
        uid = _uid(pod)
        if uid and uid in seen:
            continue
        seen.add(uid)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        per_node[node] = per_node.get(node, 0) + 1
    return [per_node.get((pod.get("spec") or {}).get("nodeName") or "", 0) for pod in pods]


def deletion_cost_key(pod: Mapping[str, Any], rank: int = 0) -> tuple[Any, ...]:
    """Sort key: pods that sort first are the cheapest to delete. The order is Kubernetes'
    ActivePods ranking: unscheduled before scheduled; Pending before Unknown before
    Running; not ready before ready; more doubled-up on a node first; ready for a shorter
    time first; more container restarts first; newer first (unknown times count as newest)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    ready = pod_is_ready(pod)
    if ready:
        since = pod_ready_since(pod)
        ready_key: tuple[int, float] = (0, 0.0) if since is None else (1, -since.timestamp())
    else:
        ready_key = (0, 0.0)
    created = parse_time(meta.get("creationTimestamp"))
    created_key = (0, 0.0) if created is None else (1, -created.timestamp())
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDER.get(status.get("phase") or "", 0),
        1 if ready else 0,
        -rank,
        ready_key,
        -max_restarts(pod),
        created_key,
        meta.get("name") or "",
    )


def rank_pods_for_deletion(pods: list[Obj], related: Iterable[Mapping[str, Any]] | None = None) -> list[Obj]:
    """`pods` ordered from the first to delete to the last. `related` are all pods of the
    ReplicaSets that share this one's controller (its own pods when None)."""
    ranks = pods_on_same_node(pods, pods if related is None else related)
    order = sorted(range(len(pods)), key=lambda i: deletion_cost_key(pods[i], ranks[i]))
    return [pods[i] for i in order]


def replicaset_status(rs: Mapping[str, Any], claimed: list[Obj], terminating: list[Obj], now: dt.datetime,
                      failure: tuple[str, str] | None = None) -> Obj:
    """The status a ReplicaSet should have. `failure` is (reason, message) when this sync's
    creates or deletes failed; zero counters are left out as the real API does."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    template_sel = selector_from_set(template_labels)
    min_ready = min_ready_seconds(rs)
    fully_labeled = ready = available = 0
    for pod in claimed:
        if template_sel.matches(_labels(pod)):
            fully_labeled += 1
        if pod_is_ready(pod):
            ready += 1
            if pod_is_available(pod, min_ready, now):
                available += 1
    status: Obj = {"replicas": len(claimed)}
    for key, value in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                       ("availableReplicas", available), ("terminatingReplicas", len(terminating)),
                       ("observedGeneration", int((rs.get("metadata") or {}).get("generation") or 0))):
        if value:
            status[key] = value
    old_conditions = list((rs.get("status") or {}).get("conditions") or [])
    has_failure = any(c.get("type") == REPLICA_FAILURE for c in old_conditions)
    if failure is None:
        conditions = [c for c in old_conditions if c.get("type") != REPLICA_FAILURE]
    elif has_failure:
        # The first failure's time and words stay until a sync succeeds, as in Kubernetes.
        conditions = old_conditions
    else:
        reason, message = failure
        conditions = old_conditions + [{"type": REPLICA_FAILURE, "status": "True",
                                        "lastTransitionTime": format_time(now), "reason": reason,
                                        "message": message}]
    if conditions:
        status["conditions"] = conditions
    return status


_STATUS_COUNTERS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                    "terminatingReplicas", "observedGeneration")


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change anything (a missing counter equals zero)."""
    old = old or {}
    for key in _STATUS_COUNTERS:
        if int(old.get(key) or 0) != int(new.get(key) or 0):
            return True
    return list(old.get("conditions") or []) != list(new.get("conditions") or [])


def plan_replicaset(rs: Mapping[str, Any], pods: Iterable[Obj], now: dt.datetime, *,
                    expectations_satisfied: bool = True, related_pods: Iterable[Mapping[str, Any]] | None = None,
                    burst: int = BURST_REPLICAS) -> Plan:
    """Decide one sync of `rs` from the pods of its namespace.

    Pods controlled by `rs` that no longer match its selector are released; matching
    orphans are adopted (neither while `rs` is being deleted). Only active pods count.
    Creates and deletes are planned only when the previous sync's are all observed
    (`expectations_satisfied`) and `rs` is not being deleted, at most `burst` at a time."""
    meta = rs.get("metadata") or {}
    namespace = meta.get("namespace")
    uid = meta.get("uid") or ""
    selector = compile_selector((rs.get("spec") or {}).get("selector"))
    rs_deleting = bool(meta.get("deletionTimestamp"))
    plan = Plan()
    owned: list[Obj] = []
    for pod in pods:
        pod_meta = pod.get("metadata") or {}
        if namespace is not None and pod_meta.get("namespace") != namespace:
            continue
        ref = controller_ref(pod)
        if ref is not None and ref.get("uid") != uid:
            continue
        matches = selector.matches(pod_meta.get("labels") or {})
        if not pod_is_active(pod):
            if ref is not None and matches and pod_is_terminating(pod) and not pod_is_terminal(pod):
                plan.terminating.append(pod)
            continue
        if ref is not None:
            if matches:
                owned.append(pod)
            elif not rs_deleting:
                plan.release.append(pod)
        elif matches and not rs_deleting:
            plan.adopt.append(pod)
    plan.claimed = owned + plan.adopt
    plan.status = replicaset_status(rs, plan.claimed, plan.terminating, now)
    plan.requeue_after = next_available_in(plan.claimed, min_ready_seconds(rs), now)
    if not expectations_satisfied or rs_deleting:
        return plan
    diff = len(plan.claimed) - desired_replicas(rs)
    if diff < 0:
        plan.create = min(-diff, burst)
    elif diff > 0:
        plan.delete = rank_pods_for_deletion(plan.claimed, related_pods)[:min(diff, burst)]
    return plan


def new_pod(rs: Mapping[str, Any]) -> Obj:
    """The pod `rs` creates: template labels, annotations, finalizers and spec, a name
    generated from `<rs name>-`, and the controller reference back to `rs`."""
    meta = rs.get("metadata") or {}
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    # A JSON round trip is the cheapest deep copy of plain API data.
    spec = orjson.loads(orjson.dumps(template.get("spec") or {}))
    pod_meta: Obj = {"generateName": f"{meta.get('name', '')}-", "namespace": meta.get("namespace", ""),
                     "ownerReferences": [reference_to(rs)]}
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            pod_meta[key] = dict(tmeta[key])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> list[int]:
    """Batch sizes for `count` calls: 1, 2, 4, ... so a failing call (quota, admission)
    costs a handful of requests instead of `count`."""
    sizes: list[int] = []
    size = min(count, max(initial, 1))
    remaining = count
    while remaining > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


async def slow_start_batch(count: int, fn: Callable[[int], Awaitable[None]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, BaseException | None]:
    """Run `fn(i)` for i in range(count), batch by batch in parallel, stopping after the
    first batch with a failure. Returns the number of successes and the first error."""
    done = 0
    successes = 0
    for size in slow_start_batches(count, initial):
        results = await asyncio.gather(*(fn(done + i) for i in range(size)), return_exceptions=True)
        done += size
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += size - len(errors)
        for err in errors:
            if isinstance(err, asyncio.CancelledError):
                raise err
        if errors:
            return successes, errors[0]
    return successes, None


class Expectations:
    """Creates and deletes a controller has made but its informer has not shown yet.

    Without them a sync that runs before the watch delivers its own new pods would
    count too few and create again. Deletions are tracked per pod key, because a pod is
    seen going away twice (deletionTimestamp set, then gone) and must count once."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._creates: dict[str, int] = {}
        self._deletes: dict[str, set[str]] = {}
        self._stamp: dict[str, float] = {}

    def expect(self, key: str, creates: int = 0, deletes: Iterable[str] = ()) -> None:
        self._creates[key] = creates
        self._deletes[key] = set(deletes)
        self._stamp[key] = self.clock()

    def creation_observed(self, key: str, count: int = 1) -> None:
        if key in self._creates:
            self._creates[key] = max(self._creates[key] - count, 0)

    def deletion_observed(self, key: str, pod_key: str) -> None:
        pending = self._deletes.get(key)
        if pending is not None:
            pending.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        if key not in self._stamp:
            return True
        if self._creates.get(key, 0) <= 0 and not self._deletes.get(key):
            return True
        return self.clock() - self._stamp[key] > self.ttl

    def pending(self, key: str) -> tuple[int, int]:
        return self._creates.get(key, 0), len(self._deletes.get(key) or ())

    def forget(self, key: str) -> None:
        self._creates.pop(key, None)
        self._deletes.pop(key, None)
        self._stamp.pop(key, None)


# -- async shell --------------------------------------------------------------------------


def _api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


class ReplicaSetController(PodOwnerShell):
    # The kind this controller keeps; ReplicationManager keeps ReplicationControllers with it.
    RESOURCE = REPLICASETS
    API_VERSION = "apps/v1"
    KIND = "ReplicaSet"
    NAME = "replicaset"
    # Events' source and the field manager of its writes.
    COMPONENT = COMPONENT
    # Status counters the kind's API does not have.
    STATUS_OMITS: tuple[str, ...] = ()

    def __init__(self, client: Client, factory: Informers, *, burst: int = BURST_REPLICAS,
                 expectations_ttl: float = EXPECTATIONS_TTL) -> None:
        self.client = client
        self.component = self.COMPONENT
        self.burst = burst
        self.queue = WorkQueue(self.NAME)
        self.expectations = Expectations(expectations_ttl)
        self.rs_informer = factory.informer(self.RESOURCE)
        self.pod_informer = factory.informer(PODS, indexers={"orphan": orphan_index})
        self._record = EventRecorder(client, self.COMPONENT)
        self.rs_informer.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                     on_delete=self._owner_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def view(self, rs: Obj) -> Obj:
        """The object as the planning code reads it (a ReplicaSet's own shape)."""
        return rs

    def _ref_name(self, ref: Mapping[str, Any] | None) -> str | None:
        if ref is None or ref.get("kind") != self.KIND or \
                _api_group(str(ref.get("apiVersion", ""))) != _api_group(self.API_VERSION):
            return None
        return ref.get("name")

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if self._ref_name(ref) is None:
            return None
        return live_owner(self.rs_informer, pod, ref)

    def _enqueue_selecting(self, pod: Obj) -> None:
        for rs in selecting(self.rs_informer, pod, self.view):
            self.queue.add(object_key(rs))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        labels_changed = _labels(old) != _labels(new)
        if pod_is_terminating(new):
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_ref(old), controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            old_rs = self._owner_of(old)
            if old_rs is not None:
                self.queue.add(object_key(old_rs))
        rs = self._owner_of(new)
        if rs is not None:
            self.queue.add(object_key(rs))
        elif new_ref is None and (labels_changed or old_ref is not None):
            self._enqueue_selecting(new)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409, 422), logger=log)

    def _related_pods(self, rs: Obj) -> list[Obj] | None:
        ref = controller_ref(rs)
        if ref is None or not ref.get("uid"):
            return None
        related: list[Obj] = []
        for sibling in self.rs_informer.by_index("owner", ref["uid"]):
            related.extend(self.pod_informer.by_index("owner", _uid(sibling)))
        return related

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        rs = self.rs_informer.get(ns or None, name)
        if rs is None:
            self.expectations.forget(key)
            return Result.done()
        rs = {**rs, "apiVersion": self.API_VERSION, "kind": self.KIND}
        view = self.view(rs)
        now = dt.datetime.now(dt.UTC)
        # The pods it controls and the orphans it may adopt: plan_replicaset ignores
        # pods of other controllers anyway.
        candidates = [*self.pod_informer.by_index("owner", _uid(rs)), *self.pod_informer.by_index("orphan", ns)]
        plan = plan_replicaset(view, candidates, now,
                               expectations_satisfied=self.expectations.satisfied(key),
                               related_pods=self._related_pods(rs), burst=self.burst)
        await self._claim(rs, plan)
        failure: tuple[str, str] | None = None
        error: BaseException | None = None
        if plan.create:
            failure, error = await self._create(rs, key, plan.create)
        elif plan.delete:
            failure, error = await self._delete(rs, key, plan.delete)
        # The plan's status is this one unless a create or delete failed (a sync walks
        # every pod of the ReplicaSet: once is enough).
        status = dict(plan.status) if failure is None else replicaset_status(view, plan.claimed, plan.terminating,
                                                                            now, failure)
        for omitted in self.STATUS_OMITS:
            status.pop(omitted, None)
        if status_changed(rs.get("status"), status):
            await write_status(self.client, self.RESOURCE, rs, status)
        return self._finish(key, error, plan.requeue_after)

    async def _claim(self, rs: Obj, plan: Plan) -> None:
        ns = (rs.get("metadata") or {}).get("namespace")
        if plan.adopt:
            # The cached ReplicaSet may be stale: never adopt for one that was deleted or
            # replaced meanwhile, or the pods would be garbage collected with it.
            fresh = await self.client.get(self.RESOURCE, ns, _name(rs))
            if _uid(fresh) != _uid(rs):
                raise RuntimeError(f"original ReplicaSet {ns}/{_name(rs)} is gone: got uid {_uid(fresh)}, "
                                   f"wanted {_uid(rs)}")
            if (fresh.get("metadata") or {}).get("deletionTimestamp"):
                raise RuntimeError(f"{ns}/{_name(rs)} has just been deleted")
        errors: list[ApiError] = []
        for pods, patch_for in ((plan.adopt, adopt_patch), (plan.release, release_patch)):
            for pod in pods:
                try:
                    await self.client.patch(PODS, ns, _name(pod), patch_for(rs, pod), patch_type="json",
                                            field_manager=self.COMPONENT)
                except ApiError as e:
                    if e.code != 404:
                        errors.append(e)
        if errors:
            raise errors[0]

    async def _create(self, rs: Obj, key: str, count: int) -> tuple[tuple[str, str] | None, BaseException | None]:
        self.expectations.expect(key, creates=count)
        ignored = 0

        async def create_one(_: int) -> None:
            nonlocal ignored
            if not await self._create_pod(rs, new_pod(rs)):
                ignored += 1

        successes, err = await slow_start_batch(count, create_one)
        # Pods that were never created will never be observed.
        self.expectations.creation_observed(key, count - successes + ignored)
        if err is None:
            return None, None
        message = err.message if isinstance(err, ApiError) else str(err)
        return ("FailedCreate", message), err

    async def _delete(self, rs: Obj, key: str, pods: list[Obj]) -> tuple[tuple[str, str] | None, BaseException | None]:
        self.expectations.expect(key, deletes=[object_key(p) for p in pods])
        attempted: set[int] = set()

        async def delete_one(i: int) -> None:
            attempted.add(i)
            await self._delete_pod(rs, key, pods[i])

        _, err = await slow_start_batch(len(pods), delete_one)
        for i, pod in enumerate(pods):
            if i not in attempted:
                self.expectations.deletion_observed(key, object_key(pod))
        if err is None:
            return None, None
        message = err.message if isinstance(err, ApiError) else str(err)
        return ("FailedDelete", message), err


def rc_view(rc: Obj) -> Obj:
    """A ReplicationController in a ReplicaSet's shape: its selector is a plain label map
    (defaulted from the template's labels when empty, as the API server does)."""
    spec = rc.get("spec") or {}
    selector = spec.get("selector") or ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    return {**rc, "spec": {**spec, "selector": {"matchLabels": dict(selector)}}}


class ReplicationManager(ReplicaSetController):
    """ReplicationControllers, kept by the ReplicaSet code as upstream's replication manager is."""

    RESOURCE = REPLICATIONCONTROLLERS
    API_VERSION = "v1"
    KIND = "ReplicationController"
    NAME = "replicationmanager"
    COMPONENT = "replication-controller"
    # core/v1 ReplicationControllerStatus has no terminatingReplicas.
    STATUS_OMITS = ("terminatingReplicas",)

    def view(self, rs: Obj) -> Obj:
        return rc_view(rs)
