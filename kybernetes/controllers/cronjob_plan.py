"""The CronJob controller's decisions, as pure functions of a CronJob, its Jobs and the time.

- `CronSchedule`: a schedule as kube-controller-manager reads it (robfig/cron's standard
  parser): five fields through croniter, the @hourly ... @yearly descriptors, `@every`, a
  time zone from `spec.timeZone` (or a legacy `TZ=` prefix, or the controller's own zone).
- `most_recent_schedule_time` / `next_schedule_time` / `requeue_after`: the unmet start
  time to act on now, the "too many missed start times" count, and when to look again.
- `history_to_prune`, `reconcile_children`, `decide_schedule`: what one sync does with the
  finished Jobs, the active list and the next start, in upstream's order.
- `job_from_template`: the Job a scheduled time creates (deterministic name, annotation,
  controller reference).

`kybernetes/controllers/cronjob.py` is the shell that feeds these from informers and
carries the results out through the API.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from croniter import croniter
from croniter.croniter import CroniterError

from kybernetes.api.kinds.batch import (
    CRON_BOUNDS,
    CRON_NAMES,
    cron_range,
    cron_schedule_error,
    go_duration_seconds,
    load_time_zone,
    split_cron_time_zone,
)
from kybernetes.api.timefmt import parse_time, rfc3339
from kybernetes.controllers.podutil import owner_reference

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# Upstream wakes a little after the scheduled second so the schedule has surely come.
NEXT_SCHEDULE_DELTA = 0.1
# More unmet start times than this is reported (an event, a warning) rather than walked one by one.
TOO_MANY_MISSED = 100
UTC = dt.UTC


# -- the schedule ---------------------------------------------------------------------------


class ScheduleError(ValueError):
    """A schedule that cannot be read (UnparseableSchedule) or computed (InvalidSchedule)."""


def local_zone() -> dt.tzinfo:
    """The zone of this process, which upstream uses for CronJobs without `spec.timeZone`."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        zone = load_time_zone(name)
        if zone is not None:
            return zone
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f)
    except (OSError, ValueError):
        return UTC


_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
# Later matches than this many in a row that robfig would not take mean there are none.
_MAX_REJECTS = 1000


@dataclass(frozen=True)
class _Fields:
    """The values each field allows, as robfig/cron's bit sets, to check croniter's answers."""

    minute: frozenset[int]
    hour: frozenset[int]
    dom: frozenset[int]
    month: frozenset[int]
    dow: frozenset[int]
    # A day field with a star (`*`, `?`, `*/1`): then both day fields must match, else either.
    day_and: bool

    @classmethod
    def parse(cls, fields: list[str]) -> _Fields:
        values: list[frozenset[int]] = []
        stars: list[bool] = []
        for text, (low, high), names in zip(fields, CRON_BOUNDS, CRON_NAMES, strict=True):
            allowed: set[int] = set()
            star = False
            for part in text.split(","):
                if part:
                    start, end, step, part_star = cron_range(part, low, high, names)
                    allowed.update(range(start, end + 1, step))
                    star = star or part_star
            values.append(frozenset(allowed))
            stars.append(star)
        return cls(*values, day_and=stars[2] or stars[4])

    def matches(self, wall: dt.datetime) -> bool:
        if wall.second or wall.minute not in self.minute or wall.hour not in self.hour \
                or wall.month not in self.month:
            return False
        dom, dow = wall.day in self.dom, wall.isoweekday() % 7 in self.dow
        return (dom and dow) if self.day_and else (dom or dow)


def _croniter_expr(fields: list[str]) -> str:
    # robfig keeps the star of `*/1`, so the day fields then combine with AND; croniter
    # would OR them and skip days. A starred field allows every value anyway.
    out = list(fields)
    for i in (2, 4):
        parts = [p.split("/") for p in out[i].split(",") if p]
        if any(p[0] in ("*", "?") and (len(p) == 1 or p[1].lstrip("+0") == "1") for p in parts):
            out[i] = "*"
    return " ".join(f.replace("?", "*") for f in out)


class CronSchedule:
    """When a schedule fires. `next(t)` is the first firing strictly after `t` (at a whole
    second), or None when there is none within robfig's five-year horizon (31 February).

    croniter finds the candidates; each is checked against the fields on the zone's wall
    clock, as robfig/cron only returns times whose fields match: a time skipped by a
    daylight-saving jump (02:30 on a spring-forward night) does not fire that day, where
    croniter alone would move it to 03:00."""

    def __init__(self, schedule: str, zone: dt.tzinfo) -> None:
        problem = cron_schedule_error(schedule)
        if problem is not None:
            raise ScheduleError(problem)
        prefix_zone, text = split_cron_time_zone(schedule)
        if prefix_zone is not None:
            zone = load_time_zone(prefix_zone) or zone
        self.zone = zone
        self.every: float | None = None
        self._iter: croniter | None = None
        if text.startswith("@every "):
            seconds = go_duration_seconds(text[len("@every "):]) or 0.0
            # robfig: at least a second, whole seconds only.
            self.every = float(max(1, int(seconds)))
            return
        fields = (_DESCRIPTORS.get(text) or text).split()
        self._fields = _Fields.parse(fields)
        self._iter = croniter(_croniter_expr(fields), dt.datetime(2000, 1, 1, tzinfo=zone),
                              max_years_between_matches=5)

    def next(self, t: dt.datetime) -> dt.datetime | None:
        if self.every is not None:
            return t.replace(microsecond=0) + dt.timedelta(seconds=self.every)
        assert self._iter is not None
        horizon = t + dt.timedelta(days=5 * 366)
        candidate = t.astimezone(self.zone)
        for _ in range(_MAX_REJECTS):
            try:
                candidate = self._iter.get_next(dt.datetime, start_time=candidate)
            except CroniterError:
                return None
            if candidate > horizon:
                return None
            if self._fields.matches(candidate.astimezone(self.zone)):
                return candidate.astimezone(UTC)
        return None


def schedule_of(cronjob: Mapping[str, Any], default_zone: dt.tzinfo) -> CronSchedule:
    """The CronJob's schedule in its time zone. Raises ScheduleError."""
    spec = cronjob.get("spec") or {}
    zone_name = spec.get("timeZone")
    zone = default_zone
    if zone_name is not None and "TZ" not in str(spec.get("schedule") or ""):
        zone = load_time_zone(zone_name) or default_zone
    return CronSchedule(str(spec.get("schedule") or ""), zone)


@dataclass(frozen=True)
class MostRecent:
    earliest: dt.datetime
    # The latest start time not after now that has not been acted on, if any.
    time: dt.datetime | None
    # Roughly how many start times were missed since `earliest` (0 when none).
    missed: int


def _as_time(value: Any) -> dt.datetime | None:
    parsed = parse_time(value) if isinstance(value, str) else None
    return parsed.astimezone(UTC) if parsed is not None else None


def most_recent_schedule_time(cronjob: Mapping[str, Any], now: dt.datetime, schedule: CronSchedule,
                              include_deadline: bool) -> MostRecent:
    """Upstream's mostRecentScheduleTime: counts from the last schedule time (or creation),
    or from `now - startingDeadlineSeconds` when that is later. Raises ScheduleError for a
    schedule that parses but never fires twice a second apart."""
    meta = cronjob.get("metadata") or {}
    spec = cronjob.get("spec") or {}
    earliest = (_as_time((cronjob.get("status") or {}).get("lastScheduleTime"))
                or _as_time(meta.get("creationTimestamp")) or now)
    deadline = spec.get("startingDeadlineSeconds")
    if include_deadline and deadline is not None:
        earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
    t1 = schedule.next(earliest)
    t2 = schedule.next(t1) if t1 is not None else None
    if t1 is not None and now < t1:
        return MostRecent(earliest, None, 0)
    if t2 is not None and now < t2:
        return MostRecent(earliest, t1, 0)
    between = round((t2 - t1).total_seconds()) if t1 is not None and t2 is not None else 0
    if between < 1 or t1 is None:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    missed = int((now - t1).total_seconds()) // between + 1
    # Start one interval before the estimate so uneven schedules (30 6-16/4 * * 1-5) are walked right.
    t: dt.datetime | None = schedule.next(t1 + dt.timedelta(seconds=(missed - 2) * between))
    latest: dt.datetime | None = None
    while t is not None and t <= now:
        latest = t
        t = schedule.next(t)
    return MostRecent(earliest, latest, missed)


def requeue_after(cronjob: Mapping[str, Any], now: dt.datetime, schedule: CronSchedule) -> float:
    """Seconds until the next start time, just after it (upstream's nextScheduleTimeDuration)."""
    try:
        recent = most_recent_schedule_time(cronjob, now, schedule, include_deadline=False)
        base = recent.time or (recent.earliest if recent.missed == 0 else now)
    except ScheduleError:
        base = now
    following = schedule.next(base)
    if following is None:
        # Nothing within the horizon: look again in a day rather than never.
        return 86400.0
    return (following - now).total_seconds() + NEXT_SCHEDULE_DELTA


# -- Jobs -------------------------------------------------------------------------------------


def _conditions(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((job.get("status") or {}).get("conditions") or [])


def finished_condition(job: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" when the Job has that condition True, else None."""
    for cond in _conditions(job):
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def _uid(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def job_name(cronjob: Mapping[str, Any], scheduled: dt.datetime) -> str:
    """`<cronjob>-<minutes since the epoch>`: one name per start time, so a Job is never
    created twice for the same time even if the status write after it was lost."""
    return f"{_name(cronjob)}-{int(scheduled.timestamp()) // 60}"


def job_ref(job: Mapping[str, Any]) -> Obj:
    """The ObjectReference to a Job that `status.active` holds."""
    meta = job.get("metadata") or {}
    ref: Obj = {"kind": "Job", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                "uid": meta.get("uid", ""), "apiVersion": "batch/v1"}
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return ref


def job_from_template(cronjob: Mapping[str, Any], scheduled: dt.datetime, zone: dt.tzinfo) -> Obj:
    """The Job for a start time: the template's labels, annotations and spec, the scheduled
    time (in the CronJob's zone, RFC 3339) as an annotation, and the controller reference."""
    meta = cronjob.get("metadata") or {}
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    local = scheduled.astimezone(zone)
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = (
        local.strftime("%Y-%m-%dT%H:%M:%SZ") if local.utcoffset() == dt.timedelta(0)
        else local.isoformat(timespec="seconds"))
    job_meta: Obj = {"name": job_name(cronjob, scheduled), "namespace": meta.get("namespace", ""),
                     "annotations": annotations,
                     "ownerReferences": [owner_reference(cronjob, "batch/v1", "CronJob")]}
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    spec = orjson.loads(orjson.dumps(template.get("spec") or {}))
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": spec}


def _start_key(job: Mapping[str, Any]) -> tuple[int, float, str]:
    started = _as_time((job.get("status") or {}).get("startTime"))
    # Jobs that never started sort last, as upstream's byJobStartTime.
    return (1, 0.0, _name(job)) if started is None else (0, started.timestamp(), _name(job))


def history_to_prune(cronjob: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The finished Jobs over `successfulJobsHistoryLimit` / `failedJobsHistoryLimit`,
    oldest start first."""
    spec = cronjob.get("spec") or {}
    succeeded: list[Mapping[str, Any]] = []
    failed: list[Mapping[str, Any]] = []
    for job in jobs:
        cond = finished_condition(job)
        if cond == "Complete":
            succeeded.append(job)
        elif cond == "Failed":
            failed.append(job)
    doomed: list[Mapping[str, Any]] = []
    for limit, group in ((spec.get("successfulJobsHistoryLimit"), succeeded),
                         (spec.get("failedJobsHistoryLimit"), failed)):
        if limit is None or len(group) <= int(limit):
            continue
        doomed += sorted(group, key=_start_key)[:len(group) - int(limit)]
    return doomed


@dataclass
class Children:
    """What the Jobs say about the CronJob's status."""

    status: Obj
    changed: bool = False
    events: list[tuple[str, str, str]] = field(default_factory=list)
    # Unfinished Jobs of ours missing from `status.active` (the shell re-reads the CronJob first).
    unexpected: list[Mapping[str, Any]] = field(default_factory=list)
    # Active references whose Job the informer does not hold (the shell asks the API).
    unseen: list[Obj] = field(default_factory=list)


def remove_active(status: Obj, uid: str) -> bool:
    active = list(status.get("active") or [])
    kept = [ref for ref in active if ref.get("uid") != uid]
    if len(kept) == len(active):
        return False
    if kept:
        status["active"] = kept
    else:
        status.pop("active", None)
    return True


def reconcile_children(cronjob: Mapping[str, Any], jobs: Iterable[Mapping[str, Any]]) -> Children:
    """Finished Jobs leave `status.active` (SawCompletedJob); the latest completion of a
    succeeded Job becomes `lastSuccessfulTime`; active references to Jobs not among `jobs`
    are reported in `unseen`."""
    status: Obj = orjson.loads(orjson.dumps(cronjob.get("status") or {}))
    out = Children(status)
    seen: set[str] = set()
    for job in jobs:
        uid = _uid(job)
        seen.add(uid)
        in_active = any(ref.get("uid") == uid for ref in status.get("active") or [])
        cond = finished_condition(job)
        if cond is None:
            if not in_active:
                out.unexpected.append(job)
            continue
        if in_active:
            remove_active(status, uid)
            out.events.append(("Normal", "SawCompletedJob", f"Saw completed job: {_name(job)}, condition: {cond}"))
            out.changed = True
        if cond == "Complete":
            completed = _as_time((job.get("status") or {}).get("completionTime"))
            last = _as_time(status.get("lastSuccessfulTime"))
            if completed is not None and (last is None or completed > last):
                status["lastSuccessfulTime"] = rfc3339(completed)
                out.changed = True
    out.unseen = [dict(ref) for ref in status.get("active") or [] if ref.get("uid") not in seen]
    return out


# -- the next start ---------------------------------------------------------------------------


@dataclass
class Decision:
    """What to do about the start time: "wait" (nothing due), "miss" (past its deadline),
    "skip" (already started), "forbid" (a Job still runs), "create". `replace` asks for
    the active Jobs to be deleted first (Replace policy)."""

    action: str
    scheduled: dt.datetime | None = None
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    replace: bool = False


def decide_schedule(cronjob: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime,
                    default_zone: dt.tzinfo) -> Decision:
    """Upstream's syncCronJob after the children are reconciled: time zone, suspend,
    schedule, unmet start time, starting deadline, already-started, concurrency policy."""
    meta = cronjob.get("metadata") or {}
    spec = cronjob.get("spec") or {}
    if meta.get("deletionTimestamp"):
        return Decision("wait")
    zone_name = spec.get("timeZone")
    if zone_name is not None and load_time_zone(zone_name) is None:
        return Decision("wait", events=[("Warning", "UnknownTimeZone",
                                         f'invalid timeZone: "{zone_name}": unknown time zone {zone_name}')])
    if spec.get("suspend"):
        return Decision("wait")
    events: list[tuple[str, str, str]] = []
    schedule_text = str(spec.get("schedule") or "")
    if "TZ" in schedule_text:
        events.append(("Warning", "UnsupportedSchedule",
                       f'CRON_TZ or TZ used in schedule "{schedule_text}" is not officially supported, see '
                       "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"))
    try:
        schedule = schedule_of(cronjob, default_zone)
    except ScheduleError as e:
        events.append(("Warning", "UnparseableSchedule", f'unparseable schedule: "{schedule_text}" : {e}'))
        return Decision("wait", events=events)
    view = {**cronjob, "status": status}
    try:
        recent = most_recent_schedule_time(view, now, schedule, include_deadline=True)
    except ScheduleError as e:
        events.append(("Warning", "InvalidSchedule", f"invalid schedule: {schedule_text} : {e}"))
        return Decision("wait", events=events)
    wait = requeue_after(view, now, schedule)
    scheduled = recent.time
    if scheduled is None or scheduled > now:
        return Decision("wait", requeue_after=wait, events=events)
    if recent.missed > TOO_MANY_MISSED:
        events.append(("Warning", "TooManyMissedTimes", "too many missed start times. Set or decrease "
                                                        ".spec.startingDeadlineSeconds or check clock skew"))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and scheduled + dt.timedelta(seconds=int(deadline)) < now:
        events.append(("Warning", "MissSchedule", "Missed scheduled time to start a job: "
                       + scheduled.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")))
        return Decision("miss", scheduled, wait, events)
    name = job_name(cronjob, scheduled)
    active = list(status.get("active") or [])
    if any(ref.get("name") == name for ref in active) or _as_time(status.get("lastScheduleTime")) == scheduled:
        return Decision("skip", scheduled, wait, events)
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        events.append(("Normal", "JobAlreadyActive",
                       "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return Decision("forbid", scheduled, wait, events)
    return Decision("create", scheduled, events=events, replace=policy == "Replace" and bool(active))


def after_create(cronjob: Mapping[str, Any], status: Mapping[str, Any], scheduled: dt.datetime,
                 now: dt.datetime, default_zone: dt.tzinfo) -> float | None:
    """When to look again once the Job for `scheduled` is recorded in `status`."""
    try:
        schedule = schedule_of(cronjob, default_zone)
    except ScheduleError:
        return None
    return requeue_after({**cronjob, "status": {**status, "lastScheduleTime": rfc3339(scheduled)}}, now, schedule)
