"""The CronJob controller: schedule semantics (robfig/cron's, through croniter), validation,
the planner's rules, and the shell against fakes with an injected clock (no waiting)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kybernetes.api.kinds.batch import CronJobStrategy, cron_schedule_error
from kybernetes.api.registry import Registry
from kybernetes.client.resources import CRONJOBS, JOBS
from kybernetes.controllers.cronjob import CronJobController
from kybernetes.controllers.cronjob_plan import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    CronSchedule,
    ScheduleError,
    history_to_prune,
    job_from_template,
    job_name,
    most_recent_schedule_time,
    reconcile_children,
)
from kybernetes.testing.fakes import FakeClient, FakeInformers

UTC = dt.UTC
T0 = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)  # a Thursday


def at(minutes: float = 0, seconds: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes, seconds=seconds)


def stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def fires(schedule: str, n: int = 6, start: dt.datetime = T0, zone: dt.tzinfo = UTC) -> list[str]:
    sched = CronSchedule(schedule, zone)
    out, t = [], start
    for _ in range(n):
        nxt = sched.next(t)
        assert nxt is not None
        out.append(nxt.strftime("%a %d %H:%M"))
        t = nxt
    return out


def make_cronjob(schedule: str = "* * * * *", *, created: dt.datetime = T0, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "uid": "cj-uid", "resourceVersion": "5",
                     "creationTimestamp": stamp(created)},
        "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"labels": {"app": "nightly"}, "annotations": {"team": "ops"}},
                                 "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                                                                "containers": [{"name": "c", "image": "busybox"}]}}}},
                 **spec},
    }


def make_job(name: str, *, finished: str | None = None, started: dt.datetime | None = None,
             completed: dt.datetime | None = None, owner: str = "cj-uid") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if started is not None:
        status["startTime"] = stamp(started)
    if finished is not None:
        status["conditions"] = [{"type": finished, "status": "True"}]
    if completed is not None:
        status["completionTime"] = stamp(completed)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                                              "uid": owner, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {}, "status": status}


# -- schedule semantics ---------------------------------------------------------------------


def test_day_of_month_and_day_of_week_combine_with_or_when_both_are_restricted() -> None:
    # The 1st of the month or any Monday.
    assert fires("0 0 1 * 1") == ["Mon 05 00:00", "Mon 12 00:00", "Mon 19 00:00", "Mon 26 00:00",
                                  "Sun 01 00:00", "Mon 02 00:00"]
    # A stepped star is a restriction (robfig clears its star bit): odd days or Mondays.
    assert fires("0 0 */2 * 1", 3) == ["Sat 03 00:00", "Mon 05 00:00", "Wed 07 00:00"]


def test_a_star_day_field_makes_the_other_one_decide() -> None:
    assert fires("0 0 * * 1", 2) == ["Mon 05 00:00", "Mon 12 00:00"]
    assert fires("0 0 ? * mon", 2) == ["Mon 05 00:00", "Mon 12 00:00"]
    # `*/1` keeps the star in robfig/cron: Mondays only, not every day (croniter alone would OR).
    assert fires("0 0 */1 * 1", 2) == ["Mon 05 00:00", "Mon 12 00:00"]
    assert fires("0 0 1 * */1", 2) == ["Sun 01 00:00", "Sun 01 00:00"]


def test_ranges_steps_names_and_macros() -> None:
    assert fires("5/15 * * * *", 4) == ["Thu 01 00:05", "Thu 01 00:20", "Thu 01 00:35", "Thu 01 00:50"]
    assert fires("30 6-16/4 * * 1-5", 4) == ["Thu 01 06:30", "Thu 01 10:30", "Thu 01 14:30", "Fri 02 06:30"]
    assert fires("0 12 * JAN-feb MON-fri", 2) == ["Thu 01 12:00", "Fri 02 12:00"]
    assert fires("@hourly", 2) == ["Thu 01 01:00", "Thu 01 02:00"]
    assert fires("@daily", 1) == fires("@midnight", 1) == ["Fri 02 00:00"]
    assert fires("@weekly", 1) == ["Sun 04 00:00"]
    assert fires("@monthly", 1) == ["Sun 01 00:00"]
    assert CronSchedule("@yearly", UTC).next(T0) == CronSchedule("@annually", UTC).next(T0) == \
        dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert fires("@every 1h30m", 2) == ["Thu 01 01:30", "Thu 01 03:00"]


def test_next_is_strictly_after_and_on_whole_minutes() -> None:
    sched = CronSchedule("* * * * *", UTC)
    assert sched.next(at(0)) == at(1)
    assert sched.next(at(0, 59.5)) == at(1)


def test_time_zone_shifts_the_schedule() -> None:
    ny = ZoneInfo("America/New_York")
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert CronSchedule("0 9 * * *", ny).next(T0) == dt.datetime(2026, 1, 1, 14, tzinfo=UTC)
    assert CronSchedule("0 9 * * *", ny).next(dt.datetime(2026, 7, 1, tzinfo=UTC)) == \
        dt.datetime(2026, 7, 1, 13, tzinfo=UTC)


def test_a_time_skipped_by_daylight_saving_does_not_fire_that_day() -> None:
    ny = ZoneInfo("America/New_York")
    # 2026-03-08 02:00 EST jumps to 03:00 EDT: robfig/cron has no 02:30 that day.
    start = dt.datetime(2026, 3, 7, 12, tzinfo=ny)
    assert [t.astimezone(ny).strftime("%d %H:%M") for t in _walk("30 2 * * *", ny, start, 3)] == [
        "09 02:30", "10 02:30", "11 02:30"]
    assert [t.astimezone(ny).strftime("%d %H:%M") for t in _walk("0 3 * * *", ny, start, 2)] == [
        "08 03:00", "09 03:00"]


def test_a_time_repeated_by_daylight_saving_fires_twice() -> None:
    ny = ZoneInfo("America/New_York")
    start = dt.datetime(2026, 10, 31, 12, tzinfo=ny)
    assert [t.strftime("%d %H:%M") for t in _walk("30 1 * * *", ny, start, 3)] == [
        "01 05:30", "01 06:30", "02 06:30"]


def _walk(schedule: str, zone: dt.tzinfo, start: dt.datetime, n: int) -> list[dt.datetime]:
    sched, out, t = CronSchedule(schedule, zone), [], start
    for _ in range(n):
        nxt = sched.next(t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


def test_a_date_that_never_comes_has_no_next_time() -> None:
    assert CronSchedule("0 0 31 2 *", UTC).next(T0) is None


def test_unparseable_schedules_raise_with_robfigs_words() -> None:
    with pytest.raises(ScheduleError, match=r"end of range \(7\) above maximum \(6\): 7"):
        CronSchedule("0 0 * * 7", UTC)


@pytest.mark.parametrize(("schedule", "problem"), [
    ("* * * *", "expected exactly 4 fields" and "expected exactly 5 fields, found 4: [* * * *]"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
    ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("0 0 5-2 * *", "beginning of range (5) beyond end of range (2): 5-2"),
    ("0 0 1-2-3 * *", "too many hyphens: 1-2-3"),
    ("0 0 L * *", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
    ("@Daily", "unrecognized descriptor: @Daily"),
    ("@every 1x", 'failed to parse duration @every 1x: time: invalid duration "1x"'),
    ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
])
def test_schedule_errors(schedule: str, problem: str) -> None:
    assert cron_schedule_error(schedule) == problem


@pytest.mark.parametrize("schedule", ["* * * * *", "0 0 1,15 * mon-fri", "@every 90s", "?/5 * * * ?", "@annually",
                                      "TZ=UTC * * * * *"])
def test_schedules_robfig_accepts(schedule: str) -> None:
    assert cron_schedule_error(schedule) is None


def _validate(spec: dict[str, Any]) -> list[str]:
    info = Registry().by_kind("batch", "v1", "CronJob")
    assert info is not None
    obj = make_cronjob(**spec)
    strategy = CronJobStrategy()
    strategy.default(info, obj)
    return [f"{e.field}: {e.message()}" for e in strategy.validate(info, obj)]


def test_validation_refuses_tz_in_the_schedule_and_unknown_time_zones() -> None:
    assert _validate({"schedule": "CRON_TZ=UTC 0 0 * * *"}) == [
        'spec.schedule: Invalid value: "CRON_TZ=UTC 0 0 * * *": cannot use TZ or CRON_TZ in schedule, '
        "use timeZone field instead"]
    assert _validate({"timeZone": "Mars/Olympus"}) == [
        'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']
    assert _validate({"timeZone": "Local"})[0].endswith("timeZone must be an explicit time zone as defined in "
                                                        "https://www.iana.org/time-zones")
    assert _validate({"timeZone": ""}) == ['spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string']
    assert _validate({"timeZone": "Europe/Berlin"}) == []


# -- planner --------------------------------------------------------------------------------


def test_job_names_are_minutes_since_the_epoch() -> None:
    assert job_name(make_cronjob(), at(1)) == f"nightly-{int(at(1).timestamp()) // 60}"
    assert job_name(make_cronjob(), at(1)) == "nightly-29453761"


def test_job_from_template_carries_labels_annotations_owner_and_the_scheduled_time() -> None:
    job = job_from_template(make_cronjob(), at(1), ZoneInfo("Asia/Tokyo"))
    meta = job["metadata"]
    assert meta["name"] == "nightly-29453761"
    assert meta["labels"] == {"app": "nightly"}
    assert meta["annotations"] == {"team": "ops", SCHEDULED_TIMESTAMP_ANNOTATION: "2026-01-01T09:01:00+09:00"}
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                                        "uid": "cj-uid", "controller": True, "blockOwnerDeletion": True}]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    utc_job = job_from_template(make_cronjob(), at(1), UTC)
    assert utc_job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T00:01:00Z"


def test_most_recent_schedule_time_counts_from_creation_or_last_schedule() -> None:
    sched = CronSchedule("* * * * *", UTC)
    cj = make_cronjob(created=at(0, 30))
    assert most_recent_schedule_time(cj, at(0, 50), sched, True).time is None
    assert most_recent_schedule_time(cj, at(1, 5), sched, True).time == at(1)
    late = most_recent_schedule_time(cj, at(10, 5), sched, True)
    assert (late.time, late.missed) == (at(10), 10)
    cj["status"] = {"lastScheduleTime": stamp(at(9))}
    assert most_recent_schedule_time(cj, at(10, 5), sched, True).missed == 0
    # The starting deadline moves the earliest time it looks at.
    cj = make_cronjob(created=at(0), startingDeadlineSeconds=30)
    assert most_recent_schedule_time(cj, at(500, 10), sched, True).missed == 0


def test_history_to_prune_keeps_the_newest_by_start_time() -> None:
    jobs = [make_job(f"ok-{i}", finished="Complete", started=at(i)) for i in (4, 1, 3, 2, 5)]
    jobs += [make_job(f"bad-{i}", finished="Failed", started=at(i)) for i in (2, 1)]
    jobs.append(make_job("running", started=at(0)))
    doomed = [j["metadata"]["name"] for j in history_to_prune(make_cronjob(), jobs)]
    assert doomed == ["ok-1", "ok-2", "bad-1"]
    assert history_to_prune(make_cronjob(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0), jobs[:1]) == jobs[:1]


def test_reconcile_children_drops_finished_jobs_and_takes_the_latest_success() -> None:
    cj = make_cronjob()
    cj["status"] = {"active": [{"kind": "Job", "name": "a", "uid": "uid-a"}, {"kind": "Job", "name": "b",
                                                                              "uid": "uid-b"},
                               {"kind": "Job", "name": "gone", "uid": "uid-gone"}]}
    out = reconcile_children(cj, [make_job("a", finished="Complete", completed=at(3)),
                                  make_job("b"), make_job("stray"),
                                  make_job("old", finished="Complete", completed=at(1))])
    assert [r["name"] for r in out.status["active"]] == ["b", "gone"]
    assert out.status["lastSuccessfulTime"] == stamp(at(3))
    assert out.events == [("Normal", "SawCompletedJob", "Saw completed job: a, condition: Complete")]
    assert [j["metadata"]["name"] for j in out.unexpected] == ["stray"]
    assert [r["name"] for r in out.unseen] == ["gone"]


# -- the controller with an injected clock ----------------------------------------------------


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def setup(cronjob: dict[str, Any], *jobs: dict[str, Any],
          now: dt.datetime) -> tuple[FakeClient, CronJobController, Clock]:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(CRONJOBS, cronjob)
    if jobs:
        client.add(JOBS, *jobs)
    clock = Clock(now)
    return client, CronJobController(client, informers, clock=clock, default_zone=UTC), clock


async def sync(ctl: CronJobController) -> Any:
    result = await ctl.sync("default/nightly")
    await asyncio.sleep(0)  # events are recorded by tasks
    return result


def reasons(client: FakeClient) -> list[str]:
    return [e.reason for e in client.events]


def stored_cronjob(client: FakeClient) -> dict[str, Any]:
    cj = client.stored(CRONJOBS, "default", "nightly")
    assert cj is not None
    return cj


def job_names(client: FakeClient) -> list[str]:
    return sorted(j["metadata"]["name"] for j in client.all(JOBS))


async def test_every_minute_creates_the_job_and_records_it_in_status() -> None:
    client, ctl, clock = setup(make_cronjob(created=at(0, 30)), now=at(0, 50))
    result = await sync(ctl)
    assert client.all(JOBS) == []
    assert result.requeue_after == pytest.approx(10.1)
    clock.now = at(1, 5)
    result = await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    job = client.all(JOBS)[0]
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] == "2026-01-01T00:01:00Z"
    status = stored_cronjob(client)["status"]
    assert status["lastScheduleTime"] == "2026-01-01T00:01:00Z"
    assert status["active"] == [{"kind": "Job", "namespace": "default", "name": "nightly-29453761",
                                 "uid": "uid-nightly-29453761", "apiVersion": "batch/v1",
                                 "resourceVersion": job["metadata"]["resourceVersion"]}]
    assert reasons(client) == ["SuccessfulCreate"]
    assert client.events[0].message == "Created job nightly-29453761"
    # Next wake-up: just after 00:02:00.
    assert result.requeue_after == pytest.approx(55.1)
    # The same minute again creates nothing more.
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    clock.now = at(2, 1)
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761", "nightly-29453762"]
    assert len(stored_cronjob(client)["status"]["active"]) == 2  # Allow: both run


async def test_forbid_skips_a_start_while_a_job_runs() -> None:
    cj = make_cronjob(concurrencyPolicy="Forbid")
    cj["status"] = {"active": [{"kind": "Job", "namespace": "default", "name": "nightly-29453760",
                                "uid": "uid-nightly-29453760"}], "lastScheduleTime": stamp(at(0))}
    client, ctl, _ = setup(cj, make_job("nightly-29453760", started=at(0)), now=at(1, 5))
    result = await sync(ctl)
    assert job_names(client) == ["nightly-29453760"]
    assert reasons(client) == ["JobAlreadyActive"]
    assert result.requeue_after == pytest.approx(55.1)


async def test_forbid_starts_once_the_running_job_finished() -> None:
    cj = make_cronjob(concurrencyPolicy="Forbid")
    cj["status"] = {"active": [{"kind": "Job", "namespace": "default", "name": "nightly-29453760",
                                "uid": "uid-nightly-29453760"}], "lastScheduleTime": stamp(at(0))}
    done = make_job("nightly-29453760", started=at(0), finished="Complete", completed=at(0, 40))
    client, ctl, _ = setup(cj, done, now=at(1, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453760", "nightly-29453761"]
    status = stored_cronjob(client)["status"]
    assert [r["name"] for r in status["active"]] == ["nightly-29453761"]
    assert status["lastSuccessfulTime"] == stamp(at(0, 40))
    assert reasons(client) == ["SawCompletedJob", "SuccessfulCreate"]


async def test_replace_deletes_the_running_job_before_starting_the_next() -> None:
    cj = make_cronjob(concurrencyPolicy="Replace")
    cj["status"] = {"active": [{"kind": "Job", "namespace": "default", "name": "nightly-29453760",
                                "uid": "uid-nightly-29453760"}], "lastScheduleTime": stamp(at(0))}
    client, ctl, _ = setup(cj, make_job("nightly-29453760", started=at(0)), now=at(1, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    deletes = client.calls_of("delete", "jobs")
    assert [(c.name, c.options.get("propagation_policy")) for c in deletes] == [("nightly-29453760", "Background")]
    assert [r["name"] for r in stored_cronjob(client)["status"]["active"]] == ["nightly-29453761"]
    assert reasons(client) == ["SuccessfulDelete", "SuccessfulCreate"]


async def test_history_limits_prune_the_oldest_finished_jobs() -> None:
    cj = make_cronjob(successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    cj["status"] = {"lastScheduleTime": stamp(at(1))}
    jobs = [make_job(f"nightly-{i}", finished="Complete", started=at(-10 + i)) for i in range(4)]
    jobs += [make_job(f"nightly-f{i}", finished="Failed", started=at(-10 + i)) for i in range(2)]
    client, ctl, _ = setup(cj, *jobs, now=at(1, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-2", "nightly-3", "nightly-f1"]
    assert reasons(client).count("SuccessfulDelete") == 3


async def test_suspend_stops_scheduling() -> None:
    client, ctl, _ = setup(make_cronjob(suspend=True), now=at(5, 5))
    result = await sync(ctl)
    assert client.all(JOBS) == []
    assert result.is_done


async def test_a_start_past_its_deadline_is_skipped() -> None:
    # 01:00 passed 30 s ago with a 10 s deadline: no Job for it, next look just after 02:00.
    cj = make_cronjob("0 * * * *", startingDeadlineSeconds=10)
    client, ctl, _ = setup(cj, now=at(60, 30))
    result = await sync(ctl)
    assert client.all(JOBS) == []
    assert result.requeue_after == pytest.approx(59.5 * 60 + 0.1)
    # Within the deadline it starts.
    client, ctl, _ = setup(cj, now=at(60, 9))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453820"]


async def test_too_many_missed_start_times_warns_and_starts_the_latest() -> None:
    client, ctl, _ = setup(make_cronjob(), now=at(200, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453960"]
    assert reasons(client) == ["TooManyMissedTimes", "SuccessfulCreate"]


async def test_a_few_missed_start_times_start_only_the_latest_quietly() -> None:
    client, ctl, _ = setup(make_cronjob(), now=at(50, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453810"]
    assert reasons(client) == ["SuccessfulCreate"]


async def test_an_active_job_that_went_missing_leaves_the_list() -> None:
    cj = make_cronjob(concurrencyPolicy="Forbid")
    cj["status"] = {"active": [{"kind": "Job", "namespace": "default", "name": "nightly-29453760",
                                "uid": "uid-nightly-29453760"}], "lastScheduleTime": stamp(at(0))}
    client, ctl, _ = setup(cj, now=at(1, 5))
    await sync(ctl)
    assert reasons(client) == ["MissingJob", "SuccessfulCreate"]
    assert [r["name"] for r in stored_cronjob(client)["status"]["active"]] == ["nightly-29453761"]


async def test_a_job_created_but_not_recorded_is_adopted_into_status() -> None:
    # The controller created the Job but its status write was lost (a restart).
    cj = make_cronjob(concurrencyPolicy="Forbid")
    client, ctl, _ = setup(cj, make_job("nightly-29453761"), now=at(1, 5))
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    assert "UnexpectedJob" in reasons(client)
    status = stored_cronjob(client)["status"]
    assert [r["name"] for r in status["active"]] == ["nightly-29453761"]
    assert status["lastScheduleTime"] == stamp(at(1))


async def test_time_zone_decides_when_jobs_start() -> None:
    cj = make_cronjob("0 9 * * *", timeZone="Asia/Tokyo")  # 00:00 UTC
    client, ctl, _ = setup(cj, now=dt.datetime(2026, 1, 2, 0, 0, 5, tzinfo=UTC))
    await sync(ctl)
    assert [j["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] for j in client.all(JOBS)] == [
        "2026-01-02T09:00:00+09:00"]


async def test_a_job_finishing_wakes_its_cronjob() -> None:
    client, ctl, _ = setup(make_cronjob(), make_job("nightly-1"), now=at(0))
    while len(ctl.queue):
        key = await ctl.queue.get()
        ctl.queue.done(key)
    informer = ctl.jobs
    job = dict(informer.get("default", "nightly-1") or {})
    job["metadata"] = {**job["metadata"], "resourceVersion": "999"}
    informer.upsert(job)
    assert len(ctl.queue) == 1


async def test_a_schedule_that_never_fires_is_reported_not_scheduled() -> None:
    client, ctl, _ = setup(make_cronjob("0 0 31 2 *"), now=at(5))
    result = await sync(ctl)
    assert client.all(JOBS) == []
    assert reasons(client) == ["InvalidSchedule"]
    assert result.is_done


async def test_a_stored_unparseable_schedule_or_unknown_zone_is_reported() -> None:
    client, ctl, _ = setup(make_cronjob("0 0 * * 7"), now=at(5))
    await sync(ctl)
    assert reasons(client) == ["UnparseableSchedule"]
    assert client.events[0].message == 'unparseable schedule: "0 0 * * 7" : end of range (7) above maximum (6): 7'
    client, ctl, _ = setup(make_cronjob(timeZone="Mars/Olympus"), now=at(5))
    await sync(ctl)
    assert reasons(client) == ["UnknownTimeZone"]
    assert client.all(JOBS) == []


async def test_a_cronjob_being_deleted_starts_nothing() -> None:
    cj = make_cronjob()
    cj["metadata"]["deletionTimestamp"] = stamp(at(0))
    client, ctl, _ = setup(cj, now=at(5, 5))
    await sync(ctl)
    assert client.all(JOBS) == []


async def test_a_new_schedule_requeues_for_its_next_time() -> None:
    client, ctl, _ = setup(make_cronjob("0 * * * *", created=at(0, 30)), now=at(10))
    while len(ctl.queue):
        ctl.queue.done(await ctl.queue.get())
    old = ctl.cronjobs.get("default", "nightly")
    assert old is not None
    new = {**old, "spec": {**old["spec"], "schedule": "*/15 * * * *"}}
    ctl.cronjobs.upsert(new)
    assert len(ctl.queue) == 0  # not now: just after 00:15
    timer = ctl.queue._timers["default/nightly"]
    assert timer.when() - asyncio.get_running_loop().time() == pytest.approx(5 * 60 + 0.1, abs=1)
    await asyncio.sleep(0)
    assert reasons(client) == []


async def test_a_status_the_informer_has_not_seen_yet_does_not_start_a_job_twice() -> None:
    informers = FakeInformers()
    client = FakeClient(informers, lag=("cronjobs",))
    client.add(CRONJOBS, make_cronjob())
    client.deliver()
    clock = Clock(at(1, 5))
    ctl = CronJobController(client, informers, clock=clock, default_zone=UTC)
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    # The Job reached the informer, the CronJob's new status did not.
    assert "status" not in (ctl.cronjobs.get("default", "nightly") or {})
    clock.now = at(1, 20)
    await sync(ctl)
    assert job_names(client) == ["nightly-29453761"]
    assert [c.verb for c in client.calls_of(resource="jobs")] == ["create"]
    assert reasons(client) == ["SuccessfulCreate"]
