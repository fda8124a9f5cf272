"""The TTL-after-finished controller against in-memory fakes: finished Jobs with a TTL
are deleted in the foreground once it has passed, and only then."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kybernetes.client.resources import JOBS
from kybernetes.controllers.podutil import format_time
from kybernetes.controllers.ttlafterfinished import TTLAfterFinishedController, ttl_remaining
from kybernetes.testing.fakes import FakeClient, FakeInformers

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def job(ttl: int | None = 30, finished: str | None = "Complete", name: str = "j") -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    status: dict[str, Any] = {}
    if finished:
        status["conditions"] = [{"type": finished, "status": "True", "lastTransitionTime": format_time(T0)}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": spec, "status": status}


def test_remaining_time_counts_from_the_finished_condition():
    assert ttl_remaining(job(30), T0 + dt.timedelta(seconds=10)) == 20
    assert ttl_remaining(job(30, "Failed"), T0 + dt.timedelta(seconds=40)) == -10
    assert ttl_remaining(job(None), T0) is None
    assert ttl_remaining(job(30, None), T0) is None
    running = job(30)
    running["status"]["conditions"][0]["status"] = "False"
    assert ttl_remaining(running, T0) is None


async def test_a_finished_job_is_deleted_in_the_foreground_after_its_ttl():
    informers = FakeInformers()
    client = FakeClient(informers)
    now = [T0 + dt.timedelta(seconds=5)]
    ctl = TTLAfterFinishedController(client, informers, clock=lambda: now[0])
    client.add(JOBS, job(30), job(None, name="keep"), job(30, None, name="running"))
    result = await ctl.sync("default/j")
    assert result.requeue_after == 25 and client.stored(JOBS, "default", "j") is not None
    now[0] = T0 + dt.timedelta(seconds=30)
    await ctl.sync("default/j")
    [delete] = client.calls_of("delete", "jobs")
    assert delete.options["propagation_policy"] == "Foreground"
    assert delete.options["preconditions"]["resourceVersion"]
    assert client.stored(JOBS, "default", "j") is None
    for name in ("keep", "running"):
        assert (await ctl.sync(f"default/{name}")).is_done
        assert client.stored(JOBS, "default", name) is not None


async def test_a_ttl_raised_on_the_server_meanwhile_keeps_the_job():
    informers = FakeInformers()
    client = FakeClient(informers, lag=["jobs"])
    ctl = TTLAfterFinishedController(client, informers, clock=lambda: T0 + dt.timedelta(seconds=60))
    client.add(JOBS, job(30))
    client.deliver()
    longer = job(3600)
    client.add(JOBS, longer)
    result = await ctl.sync("default/j")
    assert not client.calls_of("delete") and result.requeue_after > 3000
