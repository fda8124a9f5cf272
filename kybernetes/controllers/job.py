"""The Job controller (batch/v1): runs a Job's pods to completion and reports them in
its status, as upstream's pkg/controller/job.

The decisions are job_plan.py's; this shell feeds it informer snapshots, adopts and
releases pods, creates and deletes them in slow-start batches, writes the status
before and after taking the `batch.kubernetes.io/job-tracking` finalizer off
finished pods, and takes that finalizer off pods whose Job is gone. The clock is
injected so that back-off and deadlines need no waiting in tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.api.pods import pod_is_terminating
from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import JOBS, PODS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import EventRecorder, is_namespace_terminating
from kybernetes.controllers.job_plan import (
    TRACKING_FINALIZER,
    BackoffRecord,
    JobPlan,
    compact_status,
    finish_status,
    finished_event,
    has_tracking_finalizer,
    is_finished,
    new_pod,
    normalized_status,
    plan_job,
    remove_finalizer_patch,
    uid_of,
)
from kybernetes.controllers.podutil import (
    adopt_patch,
    compile_selector,
    controller_ref,
    live_owner,
    orphan_index,
    release_patch,
    selecting,
)
from kybernetes.controllers.replicaset import Expectations, slow_start_batch

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "job-controller"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
ORPHAN = "orphan:"
# A Job whose cached copy predates our own last status write is looked at again soon
# instead of being decided on stale counters.
STALE_RETRY = 0.2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _ns(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("namespace") or ""


def _rv(obj: Mapping[str, Any]) -> int:
    rv = (obj.get("metadata") or {}).get("resourceVersion") or ""
    return int(rv) if rv.isdigit() else 0


class JobController:
    NAME = "job"

    def __init__(self, client: Client, factory: Informers, *, clock: Callable[[], dt.datetime] = _now,
                 burst: int = 500) -> None:
        self.client = client
        self.clock = clock
        self.burst = burst
        self.queue = WorkQueue(self.NAME)
        self.expectations = Expectations()
        # uids whose finalizer removal was sent but not yet seen, per Job key.
        self.finalizer_expectations: dict[str, set[str]] = {}
        self.backoff: dict[str, BackoffRecord] = {}
        self._written_rv: dict[str, int] = {}
        self._record = EventRecorder(client, COMPONENT)
        self.job_informer = factory.informer(JOBS)
        self.pod_informer = factory.informer(PODS, indexers={"orphan": orphan_index})
        self.job_informer.add_handler(on_add=self._job_added, on_update=self._job_updated,
                                      on_delete=self._job_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)

    # -- handlers (enqueue only) ---------------------------------------------------------

    def _job_added(self, job: Obj) -> None:
        self.queue.add(object_key(job))

    def _job_updated(self, old: Obj, new: Obj) -> None:
        self.queue.add(object_key(new))

    def _job_deleted(self, job: Obj) -> None:
        key = object_key(job)
        self.expectations.forget(key)
        self.queue.add(key)
        # Its pods keep their tracking finalizer until someone takes it off.
        for pod in self.pod_informer.by_index("owner", uid_of(job)):
            if has_tracking_finalizer(pod):
                self.queue.add(ORPHAN + object_key(pod))

    def _job_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job" or not str(ref.get("apiVersion", "")).startswith("batch/"):
            return None
        return live_owner(self.job_informer, pod, ref)

    def _enqueue_selecting(self, pod: Obj) -> None:
        for job in selecting(self.job_informer, pod):
            self.queue.add(object_key(job))

    def _finalizer_observed(self, job: Obj, pod: Obj) -> None:
        if not has_tracking_finalizer(pod):
            pending = self.finalizer_expectations.get(object_key(job))
            if pending is not None:
                pending.discard(uid_of(pod))

    def _pod_added(self, pod: Obj) -> None:
        if pod_is_terminating(pod):
            self._pod_gone(pod, final=False)
            return
        job = self._job_of(pod)
        if job is not None:
            self.expectations.creation_observed(object_key(job))
            self.queue.add(object_key(job))
            return
        if has_tracking_finalizer(pod):
            self.queue.add(ORPHAN + object_key(pod))
        if controller_ref(pod) is None:
            self._enqueue_selecting(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if pod_is_terminating(new):
            self._pod_gone(new, final=False)
            return
        old_job = self._job_of(old)
        job = self._job_of(new)
        if old_job is not None and (job is None or uid_of(job) != uid_of(old_job)):
            self._finalizer_observed(old_job, new)
            self.queue.add(object_key(old_job))
        if job is not None:
            self._finalizer_observed(job, new)
            self.queue.add(object_key(job))
            return
        if has_tracking_finalizer(new):
            self.queue.add(ORPHAN + object_key(new))
        if controller_ref(new) is None:
            self._enqueue_selecting(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self._pod_gone(pod, final=True)

    def _pod_gone(self, pod: Obj, final: bool) -> None:
        job = self._job_of(pod)
        if job is None:
            if has_tracking_finalizer(pod) and not final:
                self.queue.add(ORPHAN + object_key(pod))
            return
        key = object_key(job)
        self.expectations.deletion_observed(key, object_key(pod))
        if final:
            pending = self.finalizer_expectations.get(key)
            if pending is not None:
                pending.discard(uid_of(pod))
        self.queue.add(key)

    # -- workers -------------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409, 422), logger=log)

    async def sync(self, key: str) -> Result:
        if key.startswith(ORPHAN):
            await self._sync_orphan(key[len(ORPHAN):])
            return Result.done()
        ns, _, name = key.rpartition("/")
        job = self.job_informer.get(ns, name)
        if job is None:
            self.expectations.forget(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            self._written_rv.pop(key, None)
            return Result.done()
        managed_by = (job.get("spec") or {}).get("managedBy")
        if managed_by and managed_by != JOB_CONTROLLER_NAME:
            return Result.done()
        if is_finished(job):
            self.backoff.pop(key, None)
            return Result.done()
        if _rv(job) < self._written_rv.get(key, 0):
            return Result.after(STALE_RETRY)
        job = {**job, "apiVersion": "batch/v1", "kind": "Job"}
        satisfied = self.expectations.satisfied(key)
        pods = await self._claim(job)
        now = self.clock()
        plan = plan_job(job, pods, now, expectations_satisfied=satisfied,
                        expected_removals=set(self.finalizer_expectations.get(key) or ()),
                        backoff=self.backoff.get(key), burst=self.burst)
        if plan.done:
            return Result.done()
        status = plan.status
        error: BaseException | None = None
        if plan.delete:
            failed, error = await self._delete(job, key, plan)
            if failed:
                status["active"] = int(status.get("active") or 0) + failed
                status["terminating"] = max(0, int(status.get("terminating") or 0) - failed)
                # Pods that did not go keep the Job from finishing in this sync.
                plan.final_condition = None
        if plan.create:
            failed, create_error = await self._create(job, key, plan)
            error = error or create_error
            status["active"] = max(0, int(status.get("active") or 0) - failed)
        compact_status(status)
        written = job
        if plan.flush or normalized_status(status) != normalized_status(job.get("status")):
            written = await self._write_status(key, job, status)
            self.backoff[key] = plan.backoff
        still = set(plan.with_finalizer)
        removal_error = await self._remove_finalizers(key, plan, still)
        error = error or removal_error
        final, finished = finish_status(plan, written.get("status") or {}, still, self.clock())
        if normalized_status(final) != normalized_status(written.get("status")):
            written = await self._write_status(key, written, final)
        for type_, reason, message in plan.events:
            self._record(job, type_, reason, message)
        if finished and plan.final_condition is not None:
            for type_, reason, message in finished_event(written, plan.final_condition):
                self._record(job, type_, reason, message)
        if error is not None:
            if plan.requeue_after is not None:
                self.queue.add_after(key, plan.requeue_after)
            raise error
        return Result.after_or_done(plan.requeue_after)

    # -- pods ----------------------------------------------------------------------------

    async def _claim(self, job: Obj) -> list[Obj]:
        """The pods the Job controls: its own (releasing those it no longer selects) and
        matching orphans, adopted with the tracking finalizer."""
        ns = _ns(job)
        selector = compile_selector((job.get("spec") or {}).get("selector"))
        deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
        owned: list[Obj] = []
        adopt: list[Obj] = []
        release: list[Obj] = []
        for pod in self.pod_informer.by_index("owner", uid_of(job)):
            if selector.matches((pod.get("metadata") or {}).get("labels") or {}) or deleting:
                owned.append(pod)
            else:
                release.append(pod)
        if not deleting:
            for pod in self.pod_informer.by_index("orphan", ns):
                if not pod_is_terminating(pod) and selector.matches((pod.get("metadata") or {}).get("labels") or {}):
                    adopt.append(pod)
        if adopt:
            fresh = await self.client.get(JOBS, ns, _name(job))
            if uid_of(fresh) != uid_of(job) or (fresh.get("metadata") or {}).get("deletionTimestamp"):
                adopt = []
        for pod in adopt:
            ops = adopt_patch(job, pod)
            finalizers = (pod.get("metadata") or {}).get("finalizers")
            if finalizers is None:
                ops.append({"op": "add", "path": "/metadata/finalizers", "value": [TRACKING_FINALIZER]})
            elif TRACKING_FINALIZER not in finalizers:
                ops.append({"op": "add", "path": "/metadata/finalizers/-", "value": TRACKING_FINALIZER})
            try:
                owned.append(await self.client.patch(PODS, ns, _name(pod), ops, patch_type="json",
                                                     field_manager=COMPONENT))
            except ApiError as e:
                if e.code not in (404, 409, 422):
                    raise
        for pod in release:
            try:
                await self.client.patch(PODS, ns, _name(pod), release_patch(job, pod), patch_type="json",
                                        field_manager=COMPONENT)
            except ApiError as e:
                if e.code not in (404, 409, 422):
                    raise
        return owned

    async def _create(self, job: Obj, key: str, plan: JobPlan) -> tuple[int, BaseException | None]:
        """Create the planned pods; returns how many were not created and the first error."""
        ns = _ns(job)
        count = len(plan.create)
        self.expectations.expect(key, creates=count)
        ignored = 0

        async def create_one(i: int) -> None:
            nonlocal ignored
            index = plan.create[i]
            body = new_pod(job, index, plan.replaces.get(index) if index is not None else None)
            try:
                pod = await self.client.create(PODS, ns, body, field_manager=COMPONENT)
            except ApiError as e:
                if is_namespace_terminating(e):
                    ignored += 1
                    return
                self._record(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self._record(job, "Normal", "SuccessfulCreate", f"Created pod: {_name(pod)}")

        successes, err = await slow_start_batch(count, create_one)
        self.expectations.creation_observed(key, count - successes + ignored)
        return count - successes - ignored, err

    async def _delete(self, job: Obj, key: str, plan: JobPlan) -> tuple[int, BaseException | None]:
        """Delete the planned pods (taking the finalizer off first unless they still
        have to be counted); returns how many could not be deleted and the first error."""
        ns = _ns(job)
        pods = plan.delete
        if not plan.keep_finalizers:
            self.expectations.expect(key, deletes=[object_key(p) for p in pods])
        failures = 0
        first: BaseException | None = None

        async def delete_one(pod: Obj) -> None:
            nonlocal failures, first
            try:
                if not plan.keep_finalizers and has_tracking_finalizer(pod):
                    await self.client.patch(PODS, ns, _name(pod), remove_finalizer_patch(), patch_type="strategic",
                                            field_manager=COMPONENT)
                await self.client.delete(PODS, ns, _name(pod), preconditions={"uid": uid_of(pod)})
            except ApiError as e:
                self.expectations.deletion_observed(key, object_key(pod))
                if e.code == 404:
                    return
                failures += 1
                first = first or e
                self._record(job, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                return
            self._record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {_name(pod)}")

        await asyncio.gather(*(delete_one(p) for p in pods))
        return failures, first

    async def _remove_finalizers(self, key: str, plan: JobPlan, still: set[str]) -> BaseException | None:
        """Take the tracking finalizer off counted pods; a pod whose patch failed stays in
        `still` (its uid stays uncounted until a later sync)."""
        if not plan.remove_finalizers:
            return None
        pending = self.finalizer_expectations.setdefault(key, set())
        first: BaseException | None = None

        async def remove(pod: Obj) -> None:
            nonlocal first
            uid = uid_of(pod)
            pending.add(uid)
            try:
                await self.client.patch(PODS, _ns(pod), _name(pod), remove_finalizer_patch(), patch_type="strategic",
                                        field_manager=COMPONENT)
            except ApiError as e:
                pending.discard(uid)
                if e.code != 404:
                    still.add(uid)
                    first = first or e

        await asyncio.gather(*(remove(p) for p in plan.remove_finalizers))
        return first

    async def _sync_orphan(self, pod_key: str) -> None:
        """A pod with the tracking finalizer and no live Job: the finalizer comes off so
        that the pod can go."""
        ns, _, name = pod_key.rpartition("/")
        pod = self.pod_informer.get(ns, name)
        if pod is None or not has_tracking_finalizer(pod):
            return
        job = self._job_of(pod)
        if job is not None:
            self.queue.add(object_key(job))
            return
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") == "Job":
            # The cache may not have the Job yet: ask the server before letting go.
            try:
                fresh = await self.client.get(JOBS, ns, ref.get("name") or "")
                if uid_of(fresh) == ref.get("uid"):
                    return
            except ApiError as e:
                if e.code != 404:
                    raise
        try:
            await self.client.patch(PODS, ns, name, remove_finalizer_patch(), patch_type="strategic",
                                    field_manager=COMPONENT)
        except ApiError as e:
            if e.code != 404:
                raise

    # -- status and events ---------------------------------------------------------------

    async def _write_status(self, key: str, job: Obj, status: Obj) -> Obj:
        # The Job's resourceVersion goes with it: a status decided on a stale copy must fail.
        written = await self.client.update(JOBS, _ns(job), _name(job), {**job, "status": status},
                                           subresource="status", field_manager=COMPONENT)
        self._written_rv[key] = _rv(written)
        return {**written, "apiVersion": "batch/v1", "kind": "Job"}
