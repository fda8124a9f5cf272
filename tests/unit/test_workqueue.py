"""WorkQueue semantics controllers rely on."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from kybernetes.api.errors import ApiError
from kybernetes.client.leaderelection import lease_is_free
from kybernetes.client.workqueue import WorkQueue, failure_log_level, run_workers


async def test_dedup_and_processing_exclusion():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await q.get()
    assert k == "a"
    q.add("a")  # re-added while processing: not handed out twice
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")  # now it comes back
    assert await q.get() == "a"


async def test_backoff_grows_and_forget_resets():
    q = WorkQueue()
    q.add_rate_limited("x")
    q.add_rate_limited("x")
    assert q.failures("x") == 2
    got = await asyncio.wait_for(q.get(), 1.0)
    assert got == "x"
    q.forget("x")
    assert q.failures("x") == 0


async def test_add_after_delays():
    q = WorkQueue()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    q.add_after("k", 0.1)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1.0) == "k"
    assert loop.time() - t0 >= 0.09


def test_lease_is_free_rules():
    import datetime as dt

    now = dt.datetime(2026, 1, 1, 0, 0, 30, tzinfo=dt.UTC)
    held = {"spec": {"holderIdentity": "a", "renewTime": "2026-01-01T00:00:25.000000Z", "leaseDurationSeconds": 15}}
    assert lease_is_free(held, "a", now)
    assert not lease_is_free(held, "b", now)
    stale = {"spec": {"holderIdentity": "a", "renewTime": "2026-01-01T00:00:00.000000Z", "leaseDurationSeconds": 15}}
    assert lease_is_free(stale, "b", now)
    assert lease_is_free({"spec": {}}, "b", now)


# -- run_workers ---------------------------------------------------------------------------


async def _run_until(queue: WorkQueue, sync, cond, workers: int = 2, **kw) -> None:
    task = asyncio.create_task(run_workers(queue, sync, workers, "test", **kw))
    try:
        for _ in range(400):
            if cond():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("condition not reached")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_run_workers_forgets_on_success():
    q = WorkQueue()
    synced: list[str] = []

    async def sync(key: str) -> None:
        synced.append(key)

    q.add_rate_limited("a")  # an earlier failure that success must reset
    await _run_until(q, sync, lambda: synced == ["a"])
    assert q.failures("a") == 0


async def test_run_workers_requeues_failures_with_backoff_and_survives():
    q = WorkQueue()
    calls: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def sync(key: str) -> None:
        calls.append((key, loop.time()))
        if key == "bad" and len([c for c in calls if c[0] == "bad"]) < 3:
            raise RuntimeError("boom")

    q.add("bad")
    q.add("good")
    # One worker: if a raising sync killed it, "good" and the retries would never run.
    await _run_until(q, sync, lambda: len(calls) == 4 and q.failures("bad") == 0, workers=1)
    assert any(k == "good" for k, _ in calls)
    bad = [t for k, t in calls if k == "bad"]
    assert len(bad) == 3
    # 5 ms then 10 ms of backoff between the attempts.
    assert bad[1] - bad[0] >= 0.004 and bad[2] - bad[1] >= 0.009


async def test_run_workers_logs_quiet_codes_at_debug(caplog):
    q = WorkQueue()
    errors = {"gone": ApiError.not_found("", "pods", "gone"), "odd": ApiError(500, "InternalError", "odd"),
              "bug": ValueError("bug")}
    seen: set[str] = set()

    async def sync(key: str) -> None:
        seen.add(key)
        raise errors[key]

    for k in errors:
        q.add(k)
    with caplog.at_level(logging.DEBUG, logger="kybernetes.client.workqueue"):
        await _run_until(q, sync, lambda: seen == set(errors))
    levels = {r.getMessage().split(":")[0]: (r.levelno, bool(r.exc_info)) for r in caplog.records}
    assert levels["test gone"] == (logging.DEBUG, False)
    assert levels["test odd"] == (logging.WARNING, False)
    assert levels["test bug"] == (logging.WARNING, True)
    assert all(q.failures(k) >= 1 for k in errors)


async def test_run_workers_shuts_the_queue_down_on_cancel():
    q = WorkQueue()

    async def sync(key: str) -> None:
        pass

    task = asyncio.create_task(run_workers(q, sync, 3, "test"))
    await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    q.add("late")
    assert len(q) == 0


def test_failure_log_level_rules():
    conflict = ApiError(409, "Conflict", "c")
    assert failure_log_level(conflict) == (logging.DEBUG, False)
    assert failure_log_level(conflict, quiet_codes=()) == (logging.WARNING, False)
    assert failure_log_level(conflict, quiet_codes=(), level=logging.INFO) == (logging.INFO, False)
    assert failure_log_level(KeyError("k"), quiet=(KeyError,)) == (logging.DEBUG, False)
    assert failure_log_level(KeyError("k"), expected=(KeyError,), level=logging.INFO) == (logging.INFO, False)
    assert failure_log_level(KeyError("k")) == (logging.WARNING, True)
