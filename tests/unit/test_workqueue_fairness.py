"""The shared work queue is fair: a key that keeps coming back backs off, the queue as a
whole is rate-limited, and one controller's worker cannot keep the event loop from the rest."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import pytest

from kybernetes.client.reconcile import Result
from kybernetes.client.workqueue import (
    ItemExponentialBackoff,
    MaxOf,
    TokenBucket,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the rate limiters ----------------------------------------------------------------------------


def test_backoff_doubles_per_key_up_to_the_cap_and_forget_resets_it():
    b = ItemExponentialBackoff(0.005, 1000.0)
    assert [b.when("a") for _ in range(4)] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    # Another key has its own count.
    assert b.when("b") == pytest.approx(0.005)
    assert b.requeues("a") == 4 and b.requeues("b") == 1
    for _ in range(30):
        b.when("a")
    assert b.when("a") == 1000.0
    b.forget("a")
    assert b.requeues("a") == 0
    assert b.when("a") == pytest.approx(0.005)


def test_token_bucket_allows_a_burst_then_the_steady_rate():
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=100, clock=clock)
    assert [bucket.when(f"k{i}") for i in range(100)] == [0.0] * 100
    # The 101st waits for the next token, the 102nd for the one after.
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    # Tokens come back with time, never beyond the burst.
    clock.now += 60
    assert [bucket.when(f"z{i}") for i in range(100)] == [0.0] * 100
    assert bucket.when("over") > 0


def test_default_limiter_is_the_larger_of_per_key_and_overall():
    clock = FakeClock()
    limiter = MaxOf(ItemExponentialBackoff(0.005, 1000.0), TokenBucket(10, 100, clock=clock))
    for i in range(100):
        assert limiter.when(f"k{i}") == pytest.approx(0.005)
    # The bucket is empty: a fresh key waits for the overall rate, not its own 5 ms.
    assert limiter.when("fresh") == pytest.approx(0.1)
    # A key deep in its back-off waits for its own back-off.
    for _ in range(12):
        limiter.when("hot")
    assert limiter.when("hot") == pytest.approx(0.005 * 2 ** 12)
    assert limiter.requeues("hot") == 13
    limiter.forget("hot")
    assert limiter.requeues("hot") == 0
    assert isinstance(default_controller_rate_limiter(), MaxOf)


# -- the queue --------------------------------------------------------------------------------------


class FixedDelays:
    """A rate limiter with known answers, to test what the queue does with them."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.asked: list[str] = []
        self.forgotten: list[str] = []

    def when(self, key: str) -> float:
        self.asked.append(key)
        return self.delay

    def forget(self, key: str) -> None:
        self.forgotten.append(key)

    def requeues(self, key: str) -> int:
        return self.asked.count(key)


async def test_queued_keys_are_deduplicated_and_len_counts_them():
    q = WorkQueue()
    for key in ("a", "b", "a", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_rate_limited_add_waits_for_the_limiter():
    q = WorkQueue(rate_limiter=FixedDelays(0.3))
    q.add_rate_limited("slow")
    assert len(q) == 0 and q.pending("slow")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    assert await asyncio.wait_for(q.get(), 5.0) == "slow"


async def test_add_after_delays_and_an_earlier_add_stands():
    q = WorkQueue()
    q.add_after("k", 0.2)
    q.add_after("k", 30.0)  # later than the pending one: ignored
    assert len(q) == 0 and q.pending("k")
    assert await asyncio.wait_for(q.get(), 5.0) == "k"
    q.done("k")
    # A plain add does not wait for a pending delayed one.
    q.add_after("j", 30.0)
    q.add("j")
    assert await asyncio.wait_for(q.get(), 1.0) == "j"
    q.shutdown()
    assert not q.pending("k")


async def _serve(q: WorkQueue, sync: Callable[[str], Awaitable[Result | None]], until: Callable[[], bool],
                 workers: int = 4, limit: float = 10.0) -> None:
    task = asyncio.create_task(run_workers(q, sync, workers, "test"))
    try:
        async with asyncio.timeout(limit):
            while not until():
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_key_is_never_synced_by_two_workers_at_once():
    q = WorkQueue()
    running: dict[str, int] = {}
    most: dict[str, int] = {}
    synced: list[str] = []

    async def sync(key: str) -> Result:
        running[key] = running.get(key, 0) + 1
        most[key] = max(most.get(key, 0), running[key])
        q.add(key)  # an event for the same key while it is being processed
        await asyncio.sleep(0.01)
        running[key] -= 1
        synced.append(key)
        return Result.done()

    for key in ("a", "b"):
        q.add(key)
    await _serve(q, sync, lambda: synced.count("a") >= 3 and synced.count("b") >= 3, workers=4)
    assert most == {"a": 1, "b": 1}


async def test_results_drive_the_queue_like_controller_runtime():
    limiter = FixedDelays(0.001)
    q = WorkQueue(rate_limiter=limiter)
    answers = {"done": Result.done(), "again": Result.rate_limited(), "later": Result.after(30.0),
               "legacy": None}
    seen: list[str] = []

    async def sync(key: str) -> Result | None:
        seen.append(key)
        return answers[key]

    for key in answers:
        q.add(key)
    await _serve(q, sync, lambda: seen.count("again") >= 3)
    # Done (and a bare None) resets the key's back-off; a rate-limited requeue grows it.
    assert {"done", "legacy"} <= set(limiter.forgotten)
    assert "again" not in limiter.forgotten and limiter.asked.count("again") >= 3
    # requeue-after resets the back-off and brings the key back only when due.
    assert "later" in limiter.forgotten and "later" not in limiter.asked
    assert seen.count("later") == 1 and q.pending("later") is False  # shut down with the workers
    assert seen.count("done") == 1


def test_after_zero_is_a_rate_limited_requeue():
    assert Result.after(0) == Result.rate_limited()
    assert Result.after(-3) == Result.rate_limited()
    assert Result.after_or_done(None) == Result.done()
    assert Result.after(2).requeue_after == 2.0 and not Result.after(2).is_done


async def test_a_key_asking_to_come_back_at_once_backs_off():
    """The shape of the Deployment hot loop: a sync with nothing to do that keeps asking to
    be looked at again now. It backs off exponentially instead of spinning."""
    q = WorkQueue()
    syncs = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def sync(key: str) -> Result:
        nonlocal syncs
        syncs += 1
        await asyncio.sleep(0)
        return Result.rate_limited()

    q.add("stuck")
    await _serve(q, sync, lambda: loop.time() - t0 > 0.5)
    # 5 ms doubling: about 7 passes fit in half a second (the old queue made thousands).
    assert 3 <= syncs <= 12
    assert q.failures("stuck") == syncs


async def test_a_busy_queue_gives_the_event_loop_back_between_keys():
    """A sync that never awaits (all from caches, nothing to write) over a long queue must
    not keep other controllers, informers and lease renewals off the event loop."""
    q = WorkQueue()
    done = 0
    ticks_while_busy = 0

    async def sync(key: str) -> Result:
        nonlocal done
        done += 1
        return Result.done()

    async def other_controller() -> None:
        nonlocal ticks_while_busy
        while done < 1000:
            ticks_while_busy += 1
            await asyncio.sleep(0)

    for i in range(1000):
        q.add(f"k{i}")
    other = asyncio.create_task(other_controller())
    await _serve(q, sync, lambda: done == 1000, workers=1)
    await other
    # The other task ran between the keys, not only after the queue drained.
    assert ticks_while_busy >= 500


async def test_one_controller_stuck_requeueing_does_not_delay_another():
    stuck_q, other_q = WorkQueue("stuck"), WorkQueue("other")
    got: list[str] = []

    async def stuck(key: str) -> Result:
        return Result.rate_limited()

    async def other(key: str) -> Result:
        got.append(key)
        return Result.done()

    stuck_q.add("webhook/sample-webhook-deployment")
    tasks = [asyncio.create_task(run_workers(stuck_q, stuck, 4, "stuck")),
             asyncio.create_task(run_workers(other_q, other, 4, "other"))]
    try:
        await asyncio.sleep(0.05)
        other_q.add("new-namespace")
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.005)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert got == ["new-namespace"]


async def test_a_sync_that_holds_the_loop_is_measured_and_reported(caplog):
    q = WorkQueue("hog")
    synced: list[str] = []

    async def sync(key: str) -> Result:
        await asyncio.sleep(0)
        if key == "hog":
            time.sleep(0.15)  # pure Python work between two awaits, as a huge plan would be
        await asyncio.sleep(0)
        synced.append(key)
        return Result.done()

    q.add("light")
    await _serve(q, sync, lambda: synced == ["light"], workers=1)
    assert q.longest_hold < 0.15
    q2 = WorkQueue("hog")
    q2.add("hog")
    synced.clear()
    with caplog.at_level("WARNING", logger="kybernetes.client.workqueue"):
        await _serve(q2, sync, lambda: synced == ["hog"], workers=1)
    assert q2.longest_hold >= 0.15
    assert any("held the event loop" in r.getMessage() and "hog" in r.getMessage() for r in caplog.records)


async def test_cancelling_the_workers_mid_sync_reaches_the_sync():
    q = WorkQueue()
    started = asyncio.Event()
    outcome: list[str] = []

    async def sync(key: str) -> Result:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        return Result.done()

    q.add("k")
    task = asyncio.create_task(run_workers(q, sync, 1, "test"))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert outcome == ["cancelled"]
    assert task.done()


# -- the controller manager: one worker pool per controller --------------------------------------


async def test_each_controller_runs_its_own_workers_as_configured():
    from kybernetes.controllers.manager import ControllerOptions, Managed, run_built

    got: dict[str, int] = {}

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        async def run(self, workers: int) -> None:
            got[self.name] = workers
            await asyncio.Event().wait()

    options = ControllerOptions(workers=3, concurrent_syncs={"namespace": 8, "deployment": 0})
    managed = [Managed(n, Recorder(n)) for n in ("namespace", "deployment", "replicaset")]
    task = asyncio.create_task(run_built(managed, options))
    async with asyncio.timeout(5):
        while len(got) < 3:
            await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert got == {"namespace": 8, "deployment": 1, "replicaset": 3}


def test_unknown_controller_in_concurrent_syncs_is_refused():
    from kybernetes.controllers.manager import ControllerOptions, build_controllers

    class NoFactory:
        def informer(self, *_: object, **__: object) -> object:
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="deployments"):
        build_controllers(object(), NoFactory(), ControllerOptions(concurrent_syncs={"deployments": 2}))  # type: ignore[arg-type]
