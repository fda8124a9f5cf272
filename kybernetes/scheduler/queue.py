"""The scheduling queue: pending pods ordered by priority, then age; pods that failed wait
out a per-pod exponential backoff, and pods no node could take rest in an unschedulable
set until the cluster changes (or a timeout passes). The clock is injected, so the queue
is tested without sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any

from kybernetes.api.pods import pod_key

Obj = dict[str, Any]

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE = 60.0

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "in-flight"


def backoff_duration(attempts: int, initial: float = INITIAL_BACKOFF, maximum: float = MAX_BACKOFF) -> float:
    """1 s after the first failure, doubling per attempt, capped at 10 s."""
    if attempts <= 0:
        return 0.0
    return min(initial * (2 ** (attempts - 1)), maximum)


def _changed_for_scheduling(old: Obj, new: Obj) -> bool:
    """Status, resourceVersion and managedFields changes cannot make a pod schedulable."""
    if old.get("spec") != new.get("spec"):
        return True
    o, n = old.get("metadata") or {}, new.get("metadata") or {}
    return any(o.get(f) != n.get(f) for f in ("labels", "annotations", "deletionTimestamp", "uid"))


def _sort_key(pod: Obj) -> tuple[int, str]:
    spec = pod.get("spec") or {}
    return -int(spec.get("priority") or 0), (pod.get("metadata") or {}).get("creationTimestamp") or ""


class SchedulingQueue:
    """Each pod key lives in exactly one place: active (a heap), backoff (until a
    deadline), unschedulable (until a move) or in flight (being scheduled)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_unschedulable: float = MAX_UNSCHEDULABLE,
                 initial_backoff: float = INITIAL_BACKOFF, max_backoff: float = MAX_BACKOFF) -> None:
        self.clock = clock
        self.max_unschedulable = max_unschedulable
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._heap: list[tuple[int, str, int, str]] = []
        self._seq = itertools.count()
        self._active_seq: dict[str, int] = {}
        self.where: dict[str, str] = {}
        self.pods: dict[str, Obj] = {}
        self.attempts: dict[str, int] = {}
        self._backoff_until: dict[str, float] = {}
        self._unschedulable_since: dict[str, float] = {}
        self._affinity_waiting: set[str] = set()
        # Unschedulable pods with claims: volume events retry them.
        self._volume_waiting: set[str] = set()
        self._last_failure: dict[str, float] = {}
        self.cycle = 0
        self._move_cycle = -1
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.where)

    def active_count(self) -> int:
        return len(self._active_seq)

    # -- arrivals ----------------------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A new or changed pending pod. A pod already in flight only gets its object
        refreshed; one waiting in backoff or unschedulable is reconsidered."""
        key = pod_key(pod)
        before = self.pods.get(key)
        self.pods[key] = pod
        place = self.where.get(key)
        if place in (BACKOFF, UNSCHEDULABLE) and before is not None and not _changed_for_scheduling(before, pod):
            return  # e.g. our own PodScheduled condition coming back: no reason to retry
        if place == ACTIVE:
            self._push(key)  # its priority may have changed; the old heap entry goes stale
        elif place == IN_FLIGHT:
            return
        elif place in (BACKOFF, UNSCHEDULABLE):
            self._requeue(key)
        else:
            self._push(key)

    def delete(self, key: str) -> None:
        self.where.pop(key, None)
        self.pods.pop(key, None)
        self._active_seq.pop(key, None)
        self._backoff_until.pop(key, None)
        self._unschedulable_since.pop(key, None)
        self._affinity_waiting.discard(key)
        self._volume_waiting.discard(key)
        self._last_failure.pop(key, None)
        self.attempts.pop(key, None)

    def _push(self, key: str) -> None:
        prio, created = _sort_key(self.pods[key])
        seq = next(self._seq)
        self._active_seq[key] = seq
        self.where[key] = ACTIVE
        self._backoff_until.pop(key, None)
        self._unschedulable_since.pop(key, None)
        self._affinity_waiting.discard(key)
        self._volume_waiting.discard(key)
        heapq.heappush(self._heap, (prio, created, seq, key))
        self._wake.set()

    def _requeue(self, key: str) -> None:
        """Back to active, or to backoff while its backoff has not run out."""
        self._unschedulable_since.pop(key, None)
        self._affinity_waiting.discard(key)
        self._volume_waiting.discard(key)
        until = self._last_failure.get(key, -1e18) + backoff_duration(
            self.attempts.get(key, 0), self.initial_backoff, self.max_backoff)
        if until > self.clock():
            self.where[key] = BACKOFF
            self._backoff_until[key] = until
        else:
            self._push(key)

    # -- the scheduling loop ------------------------------------------------------------

    def pop_nowait(self) -> tuple[Obj, int] | None:
        """The highest-priority, oldest active pod (marked in flight) and how many times it
        was tried before; None when nothing is active."""
        while self._heap:
            _, _, seq, key = heapq.heappop(self._heap)
            if self._active_seq.get(key) != seq:
                continue
            del self._active_seq[key]
            self.where[key] = IN_FLIGHT
            self.cycle += 1
            return self.pods[key], self.attempts.get(key, 0)
        return None

    async def pop(self) -> tuple[Obj, int]:
        while True:
            item = self.pop_nowait()
            if item is not None:
                return item
            self._wake.clear()
            await self._wake.wait()

    def done(self, key: str) -> None:
        """The pod was scheduled (or is gone): forget it."""
        if self.where.get(key) == IN_FLIGHT:
            self.delete(key)

    def unschedulable(self, pod: Obj, cycle: int | None = None, volumes: bool = False) -> None:
        """No node fits. If the cluster changed while the pod was being scheduled, that
        change may already help, so it only waits out its backoff. `volumes`: the pod has
        claims, so claim and volume events concern it too."""
        key = pod_key(pod)
        if key not in self.where:
            return  # deleted or bound meanwhile
        self.pods[key] = pod
        self._fail(key)
        if cycle is not None and self._move_cycle >= cycle:
            self.where[key] = BACKOFF
            self._backoff_until[key] = self._last_failure[key] + backoff_duration(
                self.attempts[key], self.initial_backoff, self.max_backoff)
        else:
            self.where[key] = UNSCHEDULABLE
            self._unschedulable_since[key] = self.clock()
            spec = pod.get("spec") or {}
            # A pod that wants to be near others, or spread against them, may fit once
            # another pod lands (PodTopologySpread also registers for pod additions).
            if (spec.get("affinity") or {}).get("podAffinity") or spec.get("topologySpreadConstraints"):
                self._affinity_waiting.add(key)
            if volumes:
                self._volume_waiting.add(key)

    def backoff(self, pod: Obj) -> None:
        """A transient error (e.g. binding failed): retry after the backoff."""
        key = pod_key(pod)
        if key not in self.where:
            return  # deleted meanwhile
        self.pods[key] = pod
        self._fail(key)
        self.where[key] = BACKOFF
        self._backoff_until[key] = self._last_failure[key] + backoff_duration(
            self.attempts[key], self.initial_backoff, self.max_backoff)

    def _fail(self, key: str) -> None:
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self._last_failure[key] = self.clock()
        self._active_seq.pop(key, None)

    # -- cluster changes and time -------------------------------------------------------

    def move_all(self, only_pod_affinity: bool = False) -> int:
        """The cluster changed in a way that may help: unschedulable pods (with
        `only_pod_affinity`, just those that want to be near other pods or spread against
        them) go back to active,
        or to backoff while still backing off."""
        self._move_cycle = self.cycle
        pool = self._affinity_waiting if only_pod_affinity else self._unschedulable_since
        keys = list(pool)
        for key in keys:
            self._requeue(key)
        return len(keys)

    def move_volume_waiting(self, match: Callable[[Obj], bool] | None = None) -> int:
        """A claim, volume or class changed: unschedulable pods with claims (with `match`,
        those it accepts) go back as in `move_all`."""
        if not self._volume_waiting:
            return 0
        self._move_cycle = self.cycle
        keys = [k for k in self._volume_waiting if match is None or match(self.pods[k])]
        for key in keys:
            self._requeue(key)
        return len(keys)

    def flush(self) -> None:
        """Move pods whose backoff ran out to active, and pods unschedulable for too long
        back for another try (some changes do not produce an event that moves them)."""
        now = self.clock()
        for key in [k for k, until in self._backoff_until.items() if until <= now]:
            self._push(key)
        for key in [k for k, since in self._unschedulable_since.items() if now - since >= self.max_unschedulable]:
            self._requeue(key)

    def next_deadline(self) -> float | None:
        deadlines = list(self._backoff_until.values())
        deadlines += [s + self.max_unschedulable for s in self._unschedulable_since.values()]
        return min(deadlines) if deadlines else None
