"""The CronJob controller (upstream's v2): creates a Job from a CronJob's template at each
start time of its schedule, keeps `status.active` / `lastScheduleTime` /
`lastSuccessfulTime`, applies the concurrency policy and the starting deadline, and
prunes finished Jobs beyond the history limits.

Decisions are `cronjob_plan`'s; this shell reads the informers, calls the API in
upstream's order (prune, reconcile the active list, replace, create, write the status
once) and requeues each CronJob for its next start time. The clock is injected, so
tests move time instead of waiting for it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import CRONJOBS, JOBS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.controller_shell import EventRecorder, is_namespace_terminating
from kybernetes.controllers.cronjob_plan import (
    Decision,
    after_create,
    decide_schedule,
    history_to_prune,
    job_from_template,
    job_ref,
    local_zone,
    reconcile_children,
    remove_active,
    requeue_after,
    schedule_of,
)
from kybernetes.controllers.cronjob_plan import ScheduleError as ScheduleError
from kybernetes.controllers.podutil import controller_ref

log = logging.getLogger(__name__)

Obj = dict[str, Any]
COMPONENT = "cronjob-controller"
Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class CronJobController:
    NAME = "cronjob"

    def __init__(self, client: Client, factory: Informers, *, clock: Clock = _utcnow,
                 default_zone: dt.tzinfo | None = None) -> None:
        self.client = client
        self.clock = clock
        self.default_zone = default_zone if default_zone is not None else local_zone()
        self.queue = WorkQueue(self.NAME)
        self.cronjobs = factory.informer(CRONJOBS)
        self.jobs = factory.informer(JOBS)
        self._record = EventRecorder(client, COMPONENT)
        self.cronjobs.add_handler(on_add=self._cronjob_added, on_update=self._cronjob_updated,
                                  on_delete=self._cronjob_added)
        self.jobs.add_handler(on_add=self._job_changed, on_update=self._job_updated, on_delete=self._job_changed)

    # -- informer handlers (enqueue only) ----------------------------------------------

    def _cronjob_added(self, cronjob: Obj) -> None:
        self.queue.add(object_key(cronjob))

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        if (old_spec.get("schedule"), old_spec.get("timeZone")) == (new_spec.get("schedule"), new_spec.get("timeZone")):
            self.queue.add(object_key(new))
            return
        # A new schedule: wake at its next start time (an earlier wake-up already queued is harmless).
        try:
            wait = requeue_after(new, self.clock(), schedule_of(new, self.default_zone))
        except ScheduleError as e:
            self._record(new, "Warning", "UnParseableCronJobSchedule",
                         f"unparseable schedule for cronjob: {new_spec.get('schedule')}")
            log.debug("cronjob %s: %s", object_key(new), e)
            return
        self.queue.add_after(object_key(new), wait)

    def _owner_key(self, job: Mapping[str, Any]) -> str | None:
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return None
        ns = _meta(job).get("namespace")
        cronjob = self.cronjobs.get(ns, str(ref.get("name") or ""))
        if cronjob is None or _meta(cronjob).get("uid") != ref.get("uid"):
            return None
        return object_key(cronjob)

    def _job_changed(self, job: Obj) -> None:
        key = self._owner_key(job)
        if key is not None:
            self.queue.add(key)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        if controller_ref(old) != controller_ref(new):
            self._job_changed(old)
        self._job_changed(new)

    # -- workers -----------------------------------------------------------------------

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log)

    def owned_jobs(self, cronjob: Mapping[str, Any]) -> list[Obj]:
        uid = _meta(cronjob).get("uid") or ""
        return [job for job in self.jobs.by_index("owner", uid)
                if (ref := controller_ref(job)) is not None and ref.get("uid") == uid]

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        cached = self.cronjobs.get(ns or None, name)
        if cached is None:
            return Result.done()
        cronjob: Obj = {**cached, "apiVersion": "batch/v1", "kind": "CronJob"}
        jobs = self.owned_jobs(cronjob)
        now = self.clock()
        status: Obj = dict(cronjob.get("status") or {})
        # Pruned Jobs stay in `jobs`, as upstream: finished, they only count for lastSuccessfulTime.
        changed = await self._prune_history(cronjob, jobs, status)
        decision: Decision | None = None
        error: BaseException | None = None
        try:
            cronjob, status, children_changed = await self._reconcile_children(cronjob, jobs, status)
            changed = changed or children_changed
            decision = decide_schedule(cronjob, status, now, self.default_zone)
            for type_, reason, message in decision.events:
                self._record(cronjob, type_, reason, message)
            if decision.action == "create" and decision.scheduled is not None:
                if decision.replace:
                    changed = await self._replace_active(cronjob, status) or changed
                changed = await self._create_job(cronjob, status, decision.scheduled) or changed
                decision.requeue_after = after_create(cronjob, status, decision.scheduled, now, self.default_zone)
        except (ApiError, RuntimeError) as e:
            error = e
        if changed:
            await self._write_status(cronjob, status)
        if decision is not None and decision.requeue_after is not None:
            return Result.after(decision.requeue_after)
        if error is not None:
            raise error
        return Result.done()

    async def _prune_history(self, cronjob: Obj, jobs: list[Obj], status: Obj) -> bool:
        changed = False
        for job in history_to_prune(cronjob, jobs):
            if await self._delete_job(cronjob, job, status):
                changed = True
        return changed

    async def _delete_job(self, cronjob: Obj, job: Mapping[str, Any], status: Obj) -> bool:
        meta = _meta(job)
        try:
            await self.client.delete(JOBS, meta.get("namespace"), str(meta.get("name") or ""),
                                     propagation_policy="Background")
        except ApiError as e:
            self._record(cronjob, "Warning", "FailedDelete", f"Deleted job: {e.message}")
            return False
        remove_active(status, str(meta.get("uid") or ""))
        self._record(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta.get('name')}")
        return True

    async def _reconcile_children(self, cronjob: Obj, jobs: list[Obj], status: Obj) -> tuple[Obj, Obj, bool]:
        children = reconcile_children({**cronjob, "status": status}, jobs)
        status, changed = children.status, children.changed
        for type_, reason, message in children.events:
            self._record(cronjob, type_, reason, message)
        if children.unexpected:
            # Our status write may simply not have reached the informer yet: ask the API.
            ns, name = _meta(cronjob).get("namespace"), str(_meta(cronjob).get("name") or "")
            fresh = await self.client.get(CRONJOBS, ns, name)
            fresh_uids = {ref.get("uid") for ref in (fresh.get("status") or {}).get("active") or []}
            if _meta(fresh).get("uid") == _meta(cronjob).get("uid") and \
                    any(_meta(j).get("uid") in fresh_uids for j in children.unexpected):
                # Start over from the fresher CronJob, keeping what this sync changed.
                cronjob = {**fresh, "apiVersion": "batch/v1", "kind": "CronJob"}
                again = reconcile_children(cronjob, jobs)
                status, changed = again.status, changed or again.changed
                children = again
            for job in children.unexpected:
                if _meta(job).get("uid") not in fresh_uids:
                    self._record(cronjob, "Warning", "UnexpectedJob",
                                 f"Saw a job that the controller did not create or forgot: {_meta(job).get('name')}")
        for ref in children.unseen:
            try:
                await self.client.get(JOBS, ref.get("namespace") or _meta(cronjob).get("namespace"),
                                      str(ref.get("name") or ""))
            except ApiError as e:
                if e.code != 404:
                    raise
                self._record(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                remove_active(status, str(ref.get("uid") or ""))
                changed = True
        return cronjob, status, changed

    async def _replace_active(self, cronjob: Obj, status: Obj) -> bool:
        changed = False
        for ref in list(status.get("active") or []):
            ns = ref.get("namespace") or _meta(cronjob).get("namespace")
            try:
                job = await self.client.get(JOBS, ns, str(ref.get("name") or ""))
            except ApiError as e:
                self._record(cronjob, "Warning", "FailedGet", f"Get job: {e.message}")
                raise
            if not await self._delete_job(cronjob, job, status):
                raise RuntimeError(f"could not replace job {ns}/{ref.get('name')}")
            changed = True
        return changed

    async def _create_job(self, cronjob: Obj, status: Obj, scheduled: dt.datetime) -> bool:
        ns = _meta(cronjob).get("namespace")
        zone = schedule_of(cronjob, self.default_zone).zone
        body = job_from_template(cronjob, scheduled, zone)
        try:
            job = await self.client.create(JOBS, ns, body, field_manager=COMPONENT)
        except ApiError as e:
            if is_namespace_terminating(e):
                raise
            if e.code != 409:
                self._record(cronjob, "Warning", "FailedCreate", f"Error creating job: {e.message}")
                raise
            job = await self.client.get(JOBS, ns, body["metadata"]["name"])
            ref = controller_ref(job)
            # Someone else's Job of that name: theirs to account for.
            if ref is None or ref.get("uid") != _meta(cronjob).get("uid"):
                return False
            if any(a.get("uid") == _meta(job).get("uid") for a in status.get("active") or []):
                return False
        else:
            self._record(cronjob, "Normal", "SuccessfulCreate", f"Created job {_meta(job).get('name')}")
        status["active"] = [*(status.get("active") or []), job_ref(job)]
        status["lastScheduleTime"] = scheduled.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return True

    async def _write_status(self, cronjob: Obj, status: Obj) -> None:
        ns, name = _meta(cronjob).get("namespace"), str(_meta(cronjob).get("name") or "")
        await self.client.update(CRONJOBS, ns, name, {**cronjob, "status": status}, subresource="status")
