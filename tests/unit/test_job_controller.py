"""The Job controller against in-memory fakes: pods created and counted through the
tracking finalizer, completion modes, back-off, failure and success policies,
deadlines, suspend, pod replacement, and restarts that neither lose nor double-count."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.client.resources import JOBS, PODS
from kybernetes.controllers import job_plan
from kybernetes.controllers.job import JobController
from kybernetes.controllers.job_plan import (
    COMPLETION_INDEX,
    TRACKING_FINALIZER,
    BackoffRecord,
    backoff_remaining,
    format_indexes,
    match_pod_failure_policy,
    next_backoff_record,
    parse_indexes,
    with_indexes,
)
from kybernetes.controllers.podutil import format_time
from kybernetes.testing.fakes import FakeClient, FakeInformers

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
UID = "job-uid-1"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def make_job(name: str = "pi", uid: str = UID, **spec: Any) -> dict[str, Any]:
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    body: dict[str, Any] = {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                            "suspend": False, "podReplacementPolicy": "TerminatingOrFailed",
                            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
                            "template": {"metadata": {"labels": labels},
                                         "spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "main", "image": "busybox"}]}}}
    body.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": uid, "creationTimestamp": format_time(T0)},
            "spec": body}


class Harness:
    def __init__(self, job: dict[str, Any] | None = None) -> None:
        self.informers = FakeInformers()
        # Deleted pods stay (terminating) until their node agent reports them gone, as for real.
        self.client = FakeClient(self.informers, graceful=["pods"])
        self.clock = Clock()
        self.ctl = JobController(self.client, self.informers, clock=self.clock)
        if job is not None:
            self.client.add(JOBS, job)

    def restart(self) -> None:
        """A new controller over the same cluster, as after a controller manager restart."""
        self.ctl = JobController(self.client, self.informers, clock=self.clock)

    @property
    def job(self) -> dict[str, Any]:
        return self.client.stored(JOBS, "default", "pi") or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.job.get("status") or {}

    def pods(self) -> list[dict[str, Any]]:
        return sorted(self.client.all(PODS, "default"), key=lambda p: p["metadata"]["name"])

    def running(self) -> list[dict[str, Any]]:
        return [p for p in self.pods() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]

    async def sync(self, times: int = 1) -> Any:
        result = None
        for _ in range(times):
            result = await self.ctl.sync("default/pi")
        # Events are recorded in the background.
        await asyncio.sleep(0)
        return result

    def finish(self, pod: dict[str, Any], phase: str, exit_code: int = 0,
               conditions: list[dict[str, Any]] | None = None) -> None:
        pod = copy.deepcopy(self.client.stored(PODS, "default", pod["metadata"]["name"]))
        end = format_time(self.clock())
        pod["status"] = {"phase": phase, "conditions": conditions or [],
                         "containerStatuses": [{"name": "main", "restartCount": 0, "ready": False,
                                                "state": {"terminated": {"exitCode": exit_code,
                                                                         "finishedAt": end}}}]}
        self.client.add(PODS, pod)

    def condition(self, type_: str) -> dict[str, Any] | None:
        return next((c for c in self.status.get("conditions") or [] if c["type"] == type_), None)


# -- pure helpers ------------------------------------------------------------------------------

def test_index_intervals_round_trip_in_upstream_format():
    assert format_indexes(with_indexes([], [0, 1])) == "0,1"
    assert format_indexes(with_indexes([], [0, 1, 2, 5, 7, 8, 9])) == "0-2,5,7-9"
    assert parse_indexes("0-2,5,7-9", 8) == [(0, 2), (5, 5), (7, 7)]
    assert format_indexes(with_indexes(parse_indexes("1,3", 10), [2])) == "1-3"


def test_pod_failure_back_off_doubles_from_ten_seconds_and_is_capped_at_six_minutes():
    assert backoff_remaining(0, None, T0) == 0
    assert backoff_remaining(1, T0, T0) == 10
    assert backoff_remaining(3, T0, T0) == 40
    assert backoff_remaining(3, T0, T0 + dt.timedelta(seconds=15)) == 25
    assert backoff_remaining(30, T0, T0) == 360


def test_a_success_resets_the_back_off_and_failures_after_it_count():
    def pod(phase: str, ago: float) -> dict[str, Any]:
        end = format_time(T0 - dt.timedelta(seconds=ago))
        return {"metadata": {}, "status": {"phase": phase, "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "finishedAt": end}}}]}}

    rec = next_backoff_record(BackoffRecord(), [], [pod("Failed", 30), pod("Failed", 20)])
    assert rec.failures == 2 and rec.last_failure == T0 - dt.timedelta(seconds=20)
    rec = next_backoff_record(rec, [pod("Succeeded", 10)], [pod("Failed", 5)])
    assert rec.failures == 1 and rec.last_failure == T0 - dt.timedelta(seconds=5)
    assert next_backoff_record(rec, [pod("Succeeded", 1)], []).failures == 0


def test_pod_failure_policy_rules_match_in_order_with_upstream_messages():
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
    ]}

    def failed(code: int, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"metadata": {"name": "p", "namespace": "ns"},
                "status": {"phase": "Failed", "conditions": conditions or [],
                           "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}}

    m = match_pod_failure_policy(policy, failed(42))
    assert m.action == "FailJob" and m.count
    assert m.fail_job_message == "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
    m = match_pod_failure_policy(policy, failed(42, [{"type": "DisruptionTarget", "status": "True"}]))
    assert m.action == "Ignore" and not m.count
    assert match_pod_failure_policy(policy, failed(3)).action == "Count"
    assert match_pod_failure_policy(policy, failed(1)).action is None
    # Exit code 0 never matches, even NotIn.
    assert match_pod_failure_policy(policy, failed(0)).action is None


# -- the controller ----------------------------------------------------------------------------

async def test_completions_and_parallelism_run_to_complete_counting_each_pod_once():
    h = Harness(make_job(completions=5, parallelism=2))
    await h.sync()
    pods = h.pods()
    assert len(pods) == 2
    pod = pods[0]
    assert pod["metadata"]["generateName"] == "pi-"
    assert TRACKING_FINALIZER in pod["metadata"]["finalizers"]
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert pod["metadata"]["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                                      "uid": UID, "controller": True, "blockOwnerDeletion": True}
    assert h.status["active"] == 2 and h.status["ready"] == 0 and h.status["startTime"] == format_time(T0)
    for _ in range(10):
        for p in h.running():
            h.finish(p, "Succeeded")
        await h.sync(2)
        assert len(h.running()) <= 2
        if h.condition("Complete"):
            break
    assert h.status["succeeded"] == 5 and not h.status.get("failed")
    assert len(h.pods()) == 5
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())
    assert h.condition("SuccessCriteriaMet")["reason"] == "CompletionsReached"
    complete = h.condition("Complete")
    assert complete["status"] == "True" and complete["message"] == "Reached expected number of succeeded pods"
    assert h.status["completionTime"] == complete["lastTransitionTime"]
    assert h.status.get("uncountedTerminatedPods") == {}
    assert ("Completed", "Job completed") in [(e.reason, e.message) for e in h.client.events]
    # A finished Job is left alone.
    calls = len(h.client.calls)
    await h.sync()
    assert len(h.client.calls) == calls


async def test_indexed_job_pods_carry_their_index_and_completed_indexes_are_reported():
    h = Harness(make_job(completions=3, parallelism=3, completionMode="Indexed"))
    await h.sync()
    pods = h.pods()
    assert sorted(p["metadata"]["annotations"][COMPLETION_INDEX] for p in pods) == ["0", "1", "2"]
    for p in pods:
        ix = p["metadata"]["annotations"][COMPLETION_INDEX]
        assert p["metadata"]["labels"][COMPLETION_INDEX] == ix
        assert p["metadata"]["generateName"] == f"pi-{ix}-"
        assert p["spec"]["hostname"] == f"pi-{ix}"
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}} in p["spec"]["containers"][0]["env"]
    by_ix = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in pods}
    h.finish(by_ix["0"], "Succeeded")
    h.finish(by_ix["2"], "Succeeded")
    await h.sync(2)
    assert h.status["completedIndexes"] == "0,2" and h.status["succeeded"] == 2
    h.finish(by_ix["1"], "Failed", 1)
    await h.sync()
    h.clock.advance(11)
    await h.sync()
    replacement = [p for p in h.running()]
    assert [p["metadata"]["annotations"][COMPLETION_INDEX] for p in replacement] == ["1"]
    h.finish(replacement[0], "Succeeded")
    await h.sync(2)
    assert h.status["completedIndexes"] == "0-2" and h.condition("Complete")
    assert h.status["failed"] == 1


async def test_failures_back_off_exponentially_then_the_job_fails_with_backoff_limit_exceeded():
    h = Harness(make_job(backoffLimit=2))
    await h.sync()
    h.finish(h.running()[0], "Failed", 1)
    result = await h.sync()
    assert h.status["failed"] == 1 and not h.running()
    # The replacement waits for the 10 s back-off, and the controller comes back then.
    assert result.requeue_after == pytest.approx(10)
    h.clock.advance(9)
    await h.sync()
    assert not h.running()
    h.clock.advance(1)
    await h.sync()
    assert len(h.running()) == 1
    h.finish(h.running()[0], "Failed", 1)
    result = await h.sync()
    assert result.requeue_after == pytest.approx(20)
    h.clock.advance(20)
    await h.sync()
    h.finish(h.running()[0], "Failed", 1)
    await h.sync(2)
    assert h.status["failed"] == 3
    target, failed = h.condition("FailureTarget"), h.condition("Failed")
    assert target["reason"] == failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert "completionTime" not in h.status
    assert ("BackoffLimitExceeded", "Job has reached the specified backoff limit") in [
        (e.reason, e.message) for e in h.client.events if e.type == "Warning"]


async def test_exit_code_matching_a_fail_job_rule_fails_the_job_at_once_and_stops_the_others():
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    h = Harness(make_job(completions=3, parallelism=3, backoffLimit=6, podFailurePolicy=policy,
                         podReplacementPolicy="Failed"))
    await h.sync()
    first, *others = h.pods()
    h.finish(first, "Failed", 42)
    await h.sync()
    target = h.condition("FailureTarget")
    assert target["reason"] == "PodFailurePolicy"
    assert target["message"] == (f"Container main for pod default/{first['metadata']['name']} failed with exit "
                                 "code 42 matching FailJob rule at index 0")
    # The others are being deleted; Failed waits until they are gone.
    assert all(p["metadata"].get("deletionTimestamp") for p in h.pods() if p is not first
               and p["metadata"]["name"] != first["metadata"]["name"])
    assert h.condition("Failed") is None
    for p in others:
        h.finish(p, "Failed", 137)
    await h.sync(2)
    failed = h.condition("Failed")
    assert failed["reason"] == "PodFailurePolicy" and failed["message"] == target["message"]
    assert h.status["failed"] == 3 and h.status["terminating"] == 0


async def test_ignored_failures_do_not_count_against_the_backoff_limit():
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                        {"action": "Count", "onExitCodes": {"operator": "In", "values": [3]}}]}
    h = Harness(make_job(backoffLimit=0, podFailurePolicy=policy, podReplacementPolicy="Failed"))
    await h.sync()
    h.finish(h.running()[0], "Failed", 137, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    await h.sync()
    assert not h.status.get("failed") and h.condition("FailureTarget") is None
    h.clock.advance(11)
    await h.sync()
    assert len(h.running()) == 1
    h.finish(h.running()[0], "Failed", 3)
    await h.sync(2)
    assert h.status["failed"] == 1 and h.condition("Failed")["reason"] == "BackoffLimitExceeded"


async def test_backoff_limit_per_index_fails_indexes_and_max_failed_indexes_fails_the_job():
    policy = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}}]}
    h = Harness(make_job(completions=4, parallelism=4, completionMode="Indexed", backoffLimitPerIndex=1,
                         maxFailedIndexes=1, backoffLimit=2**31 - 1, podFailurePolicy=policy,
                         podReplacementPolicy="Failed"))
    await h.sync()
    by_ix = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in h.pods()}
    assert all(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "0"
               for p in by_ix.values())
    h.finish(by_ix["0"], "Failed", 1)
    await h.sync()
    h.clock.advance(11)
    await h.sync()
    again = [p for p in h.running() if p["metadata"]["annotations"][COMPLETION_INDEX] == "0"]
    assert len(again) == 1
    assert again[0]["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"
    h.finish(by_ix["1"], "Failed", 7)
    await h.sync()
    assert h.status["failedIndexes"] == "1" and h.condition("FailureTarget") is None
    h.finish(again[0], "Failed", 1)
    await h.sync(2)
    assert h.status["failedIndexes"] == "0,1"
    assert h.condition("FailureTarget")["reason"] == "MaxFailedIndexesExceeded"
    for p in h.pods():
        if p["metadata"].get("deletionTimestamp") and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded"):
            h.finish(p, "Failed", 137)
    await h.sync(2)
    assert h.condition("Failed")["message"] == "Job has exceeded the specified maximal number of failed indexes"


async def test_success_policy_completes_the_job_when_its_indexes_succeed():
    h = Harness(make_job(completions=3, parallelism=3, completionMode="Indexed",
                         successPolicy={"rules": [{"succeededIndexes": "0"}]}))
    await h.sync()
    by_ix = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in h.pods()}
    h.finish(by_ix["0"], "Succeeded")
    await h.sync()
    scm = h.condition("SuccessCriteriaMet")
    assert scm["reason"] == "SuccessPolicy" and scm["message"] == "Matched rules at index 0"
    assert h.condition("Complete") is None
    for ix in ("1", "2"):
        assert h.client.stored(PODS, "default", by_ix[ix]["metadata"]["name"])["metadata"]["deletionTimestamp"]
        h.finish(by_ix[ix], "Failed", 143)
    await h.sync(2)
    assert h.condition("Complete")["reason"] == "SuccessPolicy"
    assert h.status["completedIndexes"] == "0"


async def test_active_deadline_fails_the_job_with_deadline_exceeded():
    h = Harness(make_job(activeDeadlineSeconds=30))
    result = await h.sync()
    assert result.requeue_after == pytest.approx(30)
    h.clock.advance(31)
    await h.sync()
    assert h.condition("FailureTarget")["reason"] == "DeadlineExceeded"
    pod = h.pods()[0]
    assert pod["metadata"]["deletionTimestamp"]
    h.finish(pod, "Failed", 143)
    await h.sync(2)
    failed = h.condition("Failed")
    assert failed["reason"] == "DeadlineExceeded" and failed["message"] == "Job was active longer than specified deadline"


async def test_suspend_and_resume():
    h = Harness(make_job(suspend=True, completions=2, parallelism=2))
    await h.sync()
    assert not h.pods() and "startTime" not in h.status
    suspended = h.condition("Suspended")
    assert (suspended["status"], suspended["reason"], suspended["message"]) == ("True", "JobSuspended",
                                                                                "Job suspended")
    h.clock.advance(100)
    job = h.job
    job["spec"]["suspend"] = False
    h.client.add(JOBS, job)
    await h.sync()
    resumed = h.condition("Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert h.status["startTime"] == format_time(h.clock()) and len(h.running()) == 2
    # Suspending a running Job deletes its pods, which do not count as failures.
    job = h.job
    job["spec"]["suspend"] = True
    h.client.add(JOBS, job)
    await h.sync(2)
    assert not h.running() and "active" not in h.status and h.status["terminating"] == 2
    assert not h.status.get("failed")
    assert all(TRACKING_FINALIZER not in p["metadata"]["finalizers"] for p in h.pods())
    assert h.condition("Suspended")["status"] == "True"
    assert [e.reason for e in h.client.events].count("Resumed") == 1


@pytest.mark.parametrize("policy", ["TerminatingOrFailed", "Failed"])
async def test_pod_replacement_policy_decides_when_a_terminating_pod_is_replaced(policy):
    h = Harness(make_job(podReplacementPolicy=policy))
    await h.sync()
    [pod] = h.pods()
    await h.client.delete(PODS, "default", pod["metadata"]["name"])
    await h.sync()
    h.clock.advance(11)
    await h.sync()
    if policy == "TerminatingOrFailed":
        # Counted as failed at once and replaced (after the back-off) while it still terminates.
        assert h.status["failed"] == 1 and len(h.running()) == 1
        return
    assert not h.status.get("failed") and h.status["terminating"] == 1 and not h.running()
    h.finish(pod, "Failed", 143)
    await h.sync()
    assert h.status["failed"] == 1 and h.status["terminating"] == 0
    h.clock.advance(11)
    await h.sync()
    assert len(h.running()) == 1


async def test_a_restart_after_recording_uncounted_pods_counts_them_exactly_once():
    h = Harness(make_job(completions=3, parallelism=3))
    await h.sync()
    for p in h.pods()[:2]:
        h.finish(p, "Succeeded")
    # The finalizer patches fail as if the controller died right after its first status write.
    h.client.fail("patch", "pods", ApiError.internal("boom"), times=2)
    with pytest.raises(ApiError):
        await h.sync()
    assert len(h.status["uncountedTerminatedPods"]["succeeded"]) == 2
    assert not h.status.get("succeeded")
    h.restart()
    await h.sync(2)
    assert h.status["succeeded"] == 2 and h.status["uncountedTerminatedPods"] == {}
    h.restart()
    await h.sync(2)
    assert h.status["succeeded"] == 2


async def test_a_restart_after_removing_finalizers_but_before_counting_loses_nothing():
    h = Harness(make_job(completions=2, parallelism=2))
    await h.sync()
    for p in h.pods():
        h.finish(p, "Succeeded")
    writes = []

    def second_status_write_fails(call):
        if call.subresource == "status":
            writes.append(call)
            if len(writes) == 2:
                raise ApiError.internal("died")

    h.client.react("update", "jobs", second_status_write_fails)
    with pytest.raises(ApiError):
        await h.sync()
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())
    assert len(h.status["uncountedTerminatedPods"]["succeeded"]) == 2
    h.restart()
    await h.sync(2)
    assert h.status["succeeded"] == 2 and h.condition("Complete")
    assert len(h.pods()) == 2


async def test_a_stale_job_in_the_cache_is_not_acted_on():
    informers = FakeInformers()
    client = FakeClient(informers, lag=["jobs"])
    ctl = JobController(client, informers, clock=Clock())
    client.add(JOBS, make_job(completions=2, parallelism=1))
    client.deliver()
    await ctl.sync("default/pi")
    [pod] = client.all(PODS)
    client.deliver(PODS)
    stored = client.stored(PODS, "default", pod["metadata"]["name"])
    stored = copy.deepcopy(stored)
    stored["status"] = {"phase": "Succeeded"}
    client.add(PODS, stored)
    # The Job's status writes have not reached the cache: nothing is decided on it.
    calls = len(client.calls)
    result = await ctl.sync("default/pi")
    assert result.requeue_after > 0 and len(client.calls) == calls
    client.deliver()
    await ctl.sync("default/pi")
    await ctl.sync("default/pi")
    job = client.stored(JOBS, "default", "pi")
    assert job["status"]["succeeded"] == 1 and len(client.all(PODS)) == 2


async def test_pods_of_a_deleted_job_lose_their_tracking_finalizer():
    h = Harness(make_job(completions=2, parallelism=2))
    await h.sync()
    pods = h.pods()
    h.client.remove(JOBS, "default", "pi")
    for p in pods:
        await h.ctl.sync("orphan:default/" + p["metadata"]["name"])
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in h.pods())


async def test_matching_orphans_are_adopted_with_the_tracking_finalizer():
    h = Harness(make_job(completions=1))
    h.client.add(PODS, {"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "stray", "namespace": "default",
                                     "labels": {"batch.kubernetes.io/controller-uid": UID}},
                        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                        "status": {"phase": "Running"}})
    await h.sync()
    [pod] = h.pods()
    assert pod["metadata"]["ownerReferences"][0]["uid"] == UID
    assert TRACKING_FINALIZER in pod["metadata"]["finalizers"]


async def test_on_failure_restarts_count_against_the_backoff_limit():
    job = make_job(backoffLimit=2)
    job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    h = Harness(job)
    await h.sync()
    pod = copy.deepcopy(h.pods()[0])
    pod["status"] = {"phase": "Running", "containerStatuses": [{"name": "main", "restartCount": 2}]}
    h.client.add(PODS, pod)
    await h.sync()
    assert h.condition("FailureTarget")["reason"] == "BackoffLimitExceeded"


def test_plan_for_work_queue_job_without_completions():
    job = make_job(parallelism=3)
    del job["spec"]["completions"]
    plan = job_plan.plan_job(job, [], T0)
    assert plan.create == [None, None, None]


async def test_ready_counts_active_pods_with_the_ready_condition():
    h = Harness(make_job(completions=3, parallelism=3))
    await h.sync()
    pod = copy.deepcopy(h.pods()[0])
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    h.client.add(PODS, pod)
    await h.sync()
    assert h.status["ready"] == 1 and h.status["active"] == 3


async def test_creations_per_sync_are_capped_and_the_rest_follow():
    informers = FakeInformers()
    client = FakeClient(informers)
    ctl = JobController(client, informers, clock=Clock(), burst=4)
    client.add(JOBS, make_job(completions=10, parallelism=10))
    await ctl.sync("default/pi")
    assert len(client.all(PODS)) == 4
    await ctl.sync("default/pi")
    assert len(client.all(PODS)) == 8


async def test_every_index_finished_with_some_failed_fails_the_job_with_failed_indexes():
    h = Harness(make_job(completions=2, parallelism=2, completionMode="Indexed", backoffLimitPerIndex=0,
                         backoffLimit=2**31 - 1))
    await h.sync()
    by_ix = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in h.pods()}
    h.finish(by_ix["0"], "Succeeded")
    h.finish(by_ix["1"], "Failed", 1)
    await h.sync(2)
    assert h.status["failedIndexes"] == "1" and h.status["completedIndexes"] == "0"
    failed = h.condition("Failed")
    assert (failed["reason"], failed["message"]) == ("FailedIndexes", "Job has failed indexes")
    assert h.status["failed"] == 1 and h.status["succeeded"] == 1


async def test_success_policy_by_count():
    h = Harness(make_job(completions=4, parallelism=4, completionMode="Indexed",
                         successPolicy={"rules": [{"succeededCount": 2}]}))
    await h.sync()
    pods = h.pods()
    h.finish(pods[0], "Succeeded")
    await h.sync()
    assert h.condition("SuccessCriteriaMet") is None
    h.finish(pods[1], "Succeeded")
    await h.sync()
    assert h.condition("SuccessCriteriaMet")["message"] == "Matched rules at index 0"


async def test_the_uncounted_list_is_capped_and_the_rest_counted_in_later_syncs():
    h = Harness(make_job(completions=6, parallelism=6))
    await h.sync()
    for p in h.pods():
        h.finish(p, "Succeeded")
    plan = job_plan.plan_job(h.job, h.pods(), T0, max_uncounted=4)
    assert len(plan.remove_finalizers) == 4 and plan.reached_max_uncounted
    await h.sync(3)
    assert h.status["succeeded"] == 6 and h.condition("Complete")
