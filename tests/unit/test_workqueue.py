"""WorkQueue semantics controllers rely on."""

from __future__ import annotations

import asyncio

from kybernetes.client.leaderelection import lease_is_free
from kybernetes.client.workqueue import WorkQueue


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
