"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished`
seconds after its Complete or Failed condition appeared, in the foreground so that its
pods go first (upstream pkg/controller/ttlafterfinished).

`ttl_remaining` decides; the controller re-reads the Job from the server before
deleting it, so a Job whose TTL was raised or that was restarted meanwhile stays, and
deletes with the resourceVersion it checked as a precondition. The clock is injected.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.client import ApiError, Client, Informers, WorkQueue, object_key
from kybernetes.client.reconcile import Result
from kybernetes.client.resources import JOBS
from kybernetes.client.workqueue import run_workers
from kybernetes.controllers.job_plan import finished_at

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def needs_cleanup(job: Mapping[str, Any]) -> bool:
    """A finished Job with a TTL that is not already being deleted."""
    meta = job.get("metadata") or {}
    return ((job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None
            and not meta.get("deletionTimestamp") and finished_at(job) is not None)


def ttl_remaining(job: Mapping[str, Any], now: dt.datetime) -> float | None:
    """Seconds until the Job expires (0 or less: it has), None if it never does."""
    if not needs_cleanup(job):
        return None
    done = finished_at(job)
    assert done is not None
    ttl = int((job.get("spec") or {}).get("ttlSecondsAfterFinished") or 0)
    return ttl - (now - done).total_seconds()


class TTLAfterFinishedController:
    NAME = "ttlafterfinished"

    def __init__(self, client: Client, factory: Informers, *,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.client = client
        self.clock = clock
        self.queue = WorkQueue(self.NAME)
        self.job_informer = factory.informer(JOBS)
        self.job_informer.add_handler(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, job: Obj) -> None:
        if needs_cleanup(job):
            self.queue.add(object_key(job))

    async def run(self, workers: int = 2) -> None:
        await run_workers(self.queue, self.sync, workers, self.NAME, (404, 409), logger=log)

    async def sync(self, key: str) -> Result:
        ns, _, name = key.rpartition("/")
        job = self.job_informer.get(ns or None, name)
        if job is None:
            return Result.done()
        left = ttl_remaining(job, self.clock())
        if left is None:
            return Result.done()
        if left > 0:
            return Result.after(left)
        # The cache may be behind (the TTL changed, the Job was rerun): decide on the server's copy.
        try:
            fresh = await self.client.get(JOBS, ns, name)
        except ApiError as e:
            if e.code == 404:
                return Result.done()
            raise
        left = ttl_remaining(fresh, self.clock())
        if left is None:
            return Result.done()
        if left > 0:
            return Result.after(left)
        log.info("ttl-after-finished: deleting Job %s", key)
        meta = fresh.get("metadata") or {}
        try:
            await self.client.delete(JOBS, ns, name, propagation_policy="Foreground",
                                     preconditions={"resourceVersion": meta.get("resourceVersion", ""),
                                                    "uid": meta.get("uid", "")})
        except ApiError as e:
            if e.code != 404:
                raise
        return Result.done()
