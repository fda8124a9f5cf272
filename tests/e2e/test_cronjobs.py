"""CronJobs against a real server and real kubectl: a schedule creates Jobs (one real
minute), Forbid and Replace, history limits, suspend, `kubectl create job --from=cronjob/`,
validation and the `kubectl get cronjobs` columns.

Only the last test waits for the clock, for a CronJob made when the session's e2e tests
began (tests/e2e/conftest.py), so it rarely waits at all. The others move a CronJob's `lastScheduleTime`
back through the /status subresource, which leaves a start time unmet at once (as after
a controller outage), and finish Jobs by writing their status themselves, so they pass
whether or not a Job controller runs. Job templates are suspended: no pods are needed."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def ns(kubectl) -> Iterator[str]:
    name = "cron-" + uuid.uuid4().hex[:6]
    kubectl.ok("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _cronjob(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "* * * * *",
                     "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                     "spec": {"suspend": True, "template": {"spec": {
                                         "restartPolicy": "Never",
                                         "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}},
                     **spec}}


def _create(kubectl, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(kubectl.ok("create", "-n", ns, "-o", "json", "-f", "-", stdin=json.dumps(obj)))


def _get(kubectl, ns: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "-n", ns, kind, name, "-o", "json"))


def _jobs_of(kubectl, ns: str, cronjob: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl.ok("get", "-n", ns, "jobs", "-l", f"cron={cronjob}", "-o", "json"))["items"]
    return sorted(items, key=lambda j: j["metadata"]["name"])


def _wait(what: str, probe: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def _patch_status(kubectl, ns: str, kind: str, name: str, status: dict[str, Any]) -> None:
    kubectl.ok("patch", "-n", ns, kind, name, "--subresource=status", "--type=merge",
               "-p", json.dumps({"status": status}))


def _events(kubectl, ns: str, name: str) -> list[str]:
    items = json.loads(kubectl.ok("get", "-n", ns, "events", "-o", "json",
                                  "--field-selector", f"involvedObject.name={name}"))["items"]
    return [e["reason"] for e in items]


def _make_due(kubectl, ns: str, name: str, **status: Any) -> None:
    """Leave the start times of the last few minutes unmet: the latest is due now."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    _patch_status(kubectl, ns, "cronjob", name, {"lastScheduleTime": _stamp(past), **status})


def _own_job(kubectl, ns: str, cronjob: dict[str, Any], job_name: str) -> dict[str, Any]:
    """A Job of the CronJob made by hand (as one left from an earlier start)."""
    meta = cronjob["metadata"]
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": job_name, "labels": {"cron": meta["name"]},
                        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                                             "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]},
           "spec": cronjob["spec"]["jobTemplate"]["spec"]}
    return _create(kubectl, ns, job)


def _finish(kubectl, ns: str, job: str, condition: str, started: dt.datetime) -> None:
    now = _stamp(dt.datetime.now(dt.UTC))
    if condition == "Complete":
        status = {"startTime": _stamp(started), "completionTime": now, "succeeded": 1,
                  "conditions": [{"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                                  "message": "Reached expected number of succeeded pods",
                                  "lastTransitionTime": now, "lastProbeTime": now},
                                 {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                                  "message": "Reached expected number of succeeded pods",
                                  "lastTransitionTime": now, "lastProbeTime": now}]}
    else:
        status = {"startTime": _stamp(started), "failed": 1,
                  "conditions": [{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                                  "message": "Job has reached the specified backoff limit",
                                  "lastTransitionTime": now, "lastProbeTime": now},
                                 {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                  "message": "Job has reached the specified backoff limit",
                                  "lastTransitionTime": now, "lastProbeTime": now}]}
    _patch_status(kubectl, ns, "job", job, status)


def _active_names(kubectl, ns: str, name: str) -> list[str]:
    return sorted(ref["name"] for ref in _get(kubectl, ns, "cronjob", name).get("status", {}).get("active") or [])


def test_forbid_waits_for_the_running_job(kubectl, ns) -> None:
    cj = _create(kubectl, ns, _cronjob("forbid", concurrencyPolicy="Forbid", suspend=True))
    running = _own_job(kubectl, ns, cj, "forbid-manual")
    ref = {"kind": "Job", "namespace": ns, "name": "forbid-manual", "uid": running["metadata"]["uid"],
           "apiVersion": "batch/v1"}
    _make_due(kubectl, ns, "forbid", active=[ref])
    kubectl.ok("patch", "-n", ns, "cronjob", "forbid", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    _wait("JobAlreadyActive", lambda: "JobAlreadyActive" in _events(kubectl, ns, "forbid"))
    assert [j["metadata"]["name"] for j in _jobs_of(kubectl, ns, "forbid")] == ["forbid-manual"]
    # Once it finished, the due start happens.
    _finish(kubectl, ns, "forbid-manual", "Complete", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    jobs = _wait("the next Job", lambda: len(j := _jobs_of(kubectl, ns, "forbid")) == 2 and j)
    new = [j["metadata"]["name"] for j in jobs if j["metadata"]["name"] != "forbid-manual"][0]
    assert _wait("the active list", lambda: _active_names(kubectl, ns, "forbid") == [new])
    status = _get(kubectl, ns, "cronjob", "forbid")["status"]
    assert status.get("lastSuccessfulTime")
    assert "SawCompletedJob" in _events(kubectl, ns, "forbid")


def test_replace_deletes_the_running_job(kubectl, ns) -> None:
    cj = _create(kubectl, ns, _cronjob("replace", concurrencyPolicy="Replace", suspend=True))
    running = _own_job(kubectl, ns, cj, "replace-manual")
    ref = {"kind": "Job", "namespace": ns, "name": "replace-manual", "uid": running["metadata"]["uid"],
           "apiVersion": "batch/v1"}
    _make_due(kubectl, ns, "replace", active=[ref])
    kubectl.ok("patch", "-n", ns, "cronjob", "replace", "--type=merge", "-p", '{"spec":{"suspend":false}}')

    def replaced() -> list[str]:
        names = [j["metadata"]["name"] for j in _jobs_of(kubectl, ns, "replace")
                 if not j["metadata"].get("deletionTimestamp")]
        return names if len(names) == 1 and names[0] != "replace-manual" else []

    new = _wait("the replacement", replaced)
    assert _wait("the active list", lambda: _active_names(kubectl, ns, "replace") == new)
    events = _events(kubectl, ns, "replace")
    assert "SuccessfulDelete" in events and "SuccessfulCreate" in events


def test_history_limits_prune_the_oldest_finished_jobs(kubectl, ns) -> None:
    cj = _create(kubectl, ns, _cronjob("history", suspend=True, successfulJobsHistoryLimit=1,
                                       failedJobsHistoryLimit=1))
    now = dt.datetime.now(dt.UTC)
    for i in range(3):
        _own_job(kubectl, ns, cj, f"history-ok-{i}")
    for i in range(2):
        _own_job(kubectl, ns, cj, f"history-bad-{i}")
    for i in range(3):
        _finish(kubectl, ns, f"history-ok-{i}", "Complete", now - dt.timedelta(minutes=10 - i))
    for i in range(2):
        _finish(kubectl, ns, f"history-bad-{i}", "Failed", now - dt.timedelta(minutes=10 - i))

    def kept() -> list[str]:
        names = [j["metadata"]["name"] for j in _jobs_of(kubectl, ns, "history")
                 if not j["metadata"].get("deletionTimestamp")]
        return names if len(names) == 2 else []

    assert _wait("pruning", kept) == ["history-bad-1", "history-ok-2"]
    # (No event count here: the UnexpectedJob events of the hand-made Jobs use up the
    # recorder's per-object burst, as client-go's spam filter would.)


def test_suspend_stops_scheduling(kubectl, ns) -> None:
    _create(kubectl, ns, _cronjob("paused", suspend=True))
    _make_due(kubectl, ns, "paused")
    # A second CronJob made due afterwards shows the controller has had its turn.
    _create(kubectl, ns, _cronjob("witness", suspend=True))
    kubectl.ok("patch", "-n", ns, "cronjob", "witness", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    _make_due(kubectl, ns, "witness")
    _wait("the witness's Job", lambda: _jobs_of(kubectl, ns, "witness"))
    time.sleep(1)
    assert _jobs_of(kubectl, ns, "paused") == []
    kubectl.ok("patch", "-n", ns, "cronjob", "paused", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    assert _wait("a Job once resumed", lambda: _jobs_of(kubectl, ns, "paused"))


def test_kubectl_create_job_from_cronjob(kubectl, ns) -> None:
    kubectl.ok("create", "cronjob", "-n", ns, "manual", "--image=busybox", "--schedule=*/5 * * * *",
               "--", "true")
    kubectl.ok("patch", "-n", ns, "cronjob", "manual", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    cj = _get(kubectl, ns, "cronjob", "manual")
    assert cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    kubectl.ok("create", "job", "-n", ns, "manual-run", "--from=cronjob/manual")
    job = _get(kubectl, ns, "job", "manual-run")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"]) == ("CronJob", "manual", cj["metadata"]["uid"])
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"


def test_bad_schedules_and_time_zones_are_refused(kubectl, ns) -> None:
    bad = kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(_cronjob("bad", schedule="0 0 * * 7")))
    assert bad.returncode != 0
    assert 'spec.schedule: Invalid value: "0 0 * * 7": end of range (7) above maximum (6): 7' in bad.stderr
    bad = kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(_cronjob("bad", timeZone="Mars/Olympus")))
    assert bad.returncode != 0 and "unknown time zone Mars/Olympus" in bad.stderr
    bad = kubectl("create", "-n", ns, "-f", "-", stdin=json.dumps(_cronjob("bad", schedule="TZ=UTC 0 0 * * *")))
    assert bad.returncode != 0 and "cannot use TZ or CRON_TZ in schedule, use timeZone field instead" in bad.stderr
    good = _create(kubectl, ns, _cronjob("tokyo", schedule="@daily", timeZone="Asia/Tokyo", suspend=True))
    assert good["spec"]["timeZone"] == "Asia/Tokyo"
    row = kubectl.ok("get", "-n", ns, "cronjobs", "tokyo", "--no-headers").split()
    assert row[:4] == ["tokyo", "@daily", "Asia/Tokyo", "True"]


def test_every_minute_creates_a_job_within_a_minute(kubectl, k8s_client, minutely_cronjob) -> None:
    # The only test that waits for the wall clock: the next whole minute plus slack, from
    # when the CronJob was made at the start of the session's e2e tests.
    ns = minutely_cronjob
    jobs = _wait("the first Job", lambda: _jobs_of(kubectl, ns, "minutely"), timeout=90)
    job = jobs[0]
    name = job["metadata"]["name"]
    scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minutes = int(dt.datetime.fromisoformat(scheduled.replace("Z", "+00:00")).timestamp()) // 60
    assert name == f"minutely-{minutes}"
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
        "CronJob", "minutely", True, True)
    cj = _wait("the status", lambda: (c := _get(kubectl, ns, "cronjob", "minutely")).get("status", {}).get(
        "active") and c)
    assert [a["name"] for a in cj["status"]["active"]] == [name]
    assert cj["status"]["active"][0]["kind"] == "Job"
    assert cj["status"]["lastScheduleTime"] == dt.datetime.fromisoformat(
        scheduled.replace("Z", "+00:00")).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "SuccessfulCreate" in _events(kubectl, ns, "minutely")
    table = kubectl.ok("get", "-n", ns, "cronjobs", "minutely")
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert row.split()[:9] == ["minutely", "*", "*", "*", "*", "*", "<none>", "False", "1"]
    described = kubectl.ok("describe", "-n", ns, "cronjob", "minutely")
    assert any(line.startswith("Active Jobs:") and name in line for line in described.splitlines())
    assert "SuccessfulCreate" in described
    typed = k8s.BatchV1Api(k8s_client).read_namespaced_cron_job("minutely", ns)
    assert typed.status.active[0].name == name and typed.status.last_schedule_time is not None
    kubectl.ok("patch", "-n", ns, "cronjob", "minutely", "--type=merge", "-p", '{"spec":{"suspend":true}}')
