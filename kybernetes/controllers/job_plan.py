"""The Job controller's decisions, as pure functions over a snapshot (upstream
pkg/controller/job): which pods to create (and with which completion index) or
delete, which finished pods to count, the status to write before and after the
tracking finalizers come off, and the conditions Kubernetes documents.

Counting is finalizer based, as upstream's: a finished pod still holding
`batch.kubernetes.io/job-tracking` is first recorded by uid in
`status.uncountedTerminatedPods` (written), then loses its finalizer, then moves into
the `succeeded` / `failed` counters (written). A controller restarted between any two
of those steps finds the same answer again, so no pod is lost or counted twice.

`JobController` (job.py) is the shell: it feeds `plan_job` informer state, carries
out the plan, and finishes the status with `finish_status` once it knows which
finalizer removals succeeded.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.pods import pod_is_active, pod_is_ready, pod_is_terminal
from kybernetes.controllers.podutil import format_time, parse_time
from kybernetes.controllers.replicaset import rank_pods_for_deletion

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

# Pod failure back-off: 10 s, doubled per failure since the last success, capped at the
# six minutes Kubernetes documents for Jobs.
POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0
# Upstream's caps: uids in uncountedTerminatedPods (keeps the status near 20 KB) and
# creates or deletes per sync.
MAX_UNCOUNTED_PODS = 500
MAX_PODS_PER_SYNC = 500
# names.MaxGeneratedNameLength: the API server appends 5 random characters.
MAX_GENERATED_NAME = 58

COMPLETE, FAILED = "Complete", "Failed"
SUCCESS_CRITERIA_MET, FAILURE_TARGET, SUSPENDED = "SuccessCriteriaMet", "FailureTarget", "Suspended"

BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
MAX_FAILED_INDEXES_EXCEEDED = ("MaxFailedIndexesExceeded",
                               "Job has exceeded the specified maximal number of failed indexes")
FAILED_INDEXES = ("FailedIndexes", "Job has failed indexes")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
REASON_SUCCESS_POLICY = "SuccessPolicy"


# -- small readers ----------------------------------------------------------------------------

def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def uid_of(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def has_tracking_finalizer(pod: Mapping[str, Any]) -> bool:
    return TRACKING_FINALIZER in (_meta(pod).get("finalizers") or ())


def is_indexed(job: Mapping[str, Any]) -> bool:
    return _spec(job).get("completionMode") == "Indexed"


def has_backoff_limit_per_index(job: Mapping[str, Any]) -> bool:
    return _spec(job).get("backoffLimitPerIndex") is not None


def is_suspended(job: Mapping[str, Any]) -> bool:
    return _spec(job).get("suspend") is True


def find_condition(job: Mapping[str, Any], type_: str) -> Obj | None:
    for cond in _status(job).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def condition_true(job: Mapping[str, Any], type_: str) -> bool:
    cond = find_condition(job, type_)
    return cond is not None and cond.get("status") == "True"


def is_finished(job: Mapping[str, Any]) -> bool:
    """Complete or Failed: nothing more will ever happen to it."""
    return condition_true(job, COMPLETE) or condition_true(job, FAILED)


def finished_at(job: Mapping[str, Any]) -> dt.datetime | None:
    """When the Job finished: the transition time of its Complete or Failed condition."""
    for type_ in (COMPLETE, FAILED):
        cond = find_condition(job, type_)
        if cond is not None and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime"))
    return None


def completion_index(pod: Mapping[str, Any]) -> int | None:
    """The pod's completion index from its annotation, None when missing or invalid."""
    value = (_meta(pod).get("annotations") or {}).get(COMPLETION_INDEX)
    if not isinstance(value, str) or not value.isdigit():
        return None
    return int(value)


def _annotation_int(pod: Mapping[str, Any], key: str) -> int:
    value = (_meta(pod).get("annotations") or {}).get(key)
    if isinstance(value, str) and value.isdigit() and int(value) <= 2**31 - 1:
        return int(value)
    return 0


def only_replace_failed(job: Mapping[str, Any]) -> bool:
    """podReplacementPolicy Failed (implied by a pod failure policy): a replacement waits
    until the old pod is really gone or failed."""
    spec = _spec(job)
    return spec.get("podReplacementPolicy") == "Failed" or bool(spec.get("podFailurePolicy"))


def is_pod_failed(pod: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    phase = _status(pod).get("phase")
    if phase == "Failed":
        return True
    if only_replace_failed(job):
        return False
    # A pod deleted before it finished (an orphan, an evicted pod) counts as a failure.
    return bool(_meta(pod).get("deletionTimestamp")) and phase != "Succeeded"


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool(_meta(pod).get("deletionTimestamp")) and not pod_is_terminal(pod)


# -- index intervals --------------------------------------------------------------------------

Intervals = list[tuple[int, int]]


def parse_indexes(text: str | None, completions: int) -> Intervals:
    """"1,3-5,7" as ordered intervals, indexes at or beyond `completions` dropped."""
    out: Intervals = []
    for part in (text or "").split(","):
        if not part:
            continue
        first_text, _, last_text = part.partition("-")
        if not first_text.isdigit() or (last_text and not last_text.isdigit()):
            continue
        first = int(first_text)
        if first >= completions:
            break
        last = min(int(last_text), completions - 1) if last_text else first
        if out and out[-1][1] == first - 1:
            out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def with_indexes(intervals: Intervals, indexes: Iterable[int]) -> Intervals:
    """The union of `intervals` and `indexes`, merged and ordered."""
    points = sorted({*indexes})
    merged: Intervals = []
    for first, last in sorted([*intervals, *((i, i) for i in points)]):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def format_indexes(intervals: Intervals) -> str:
    parts = []
    for first, last in intervals:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def total(intervals: Intervals) -> int:
    return sum(last - first + 1 for first, last in intervals)


def has_index(intervals: Intervals, index: int) -> bool:
    return any(first <= index <= last for first, last in intervals)


# -- pod failure policy -----------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyMatch:
    fail_job_message: str | None = None
    count: bool = True
    action: str | None = None


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return (status.get("state") or {}).get("terminated")


def _exit_code_matches(statuses: Sequence[Mapping[str, Any]], req: Mapping[str, Any]) -> Mapping[str, Any] | None:
    name = req.get("containerName")
    values = req.get("values") or []
    for cs in statuses:
        term = _terminated(cs)
        if term is None or (name and name != cs.get("name")):
            continue
        code = int(term.get("exitCode") or 0)
        # Successful containers never match a rule.
        if code == 0:
            continue
        op = req.get("operator")
        if (op == "In" and code in values) or (op == "NotIn" and code not in values):
            return cs
    return None


def match_pod_failure_policy(policy: Mapping[str, Any] | None, pod: Mapping[str, Any]) -> PolicyMatch:
    """The first rule of the Job's podFailurePolicy that a failed pod matches: a
    FailJob rule gives the Job's failure message; Ignore does not count the failure."""
    if not policy:
        return PolicyMatch()
    status = _status(pod)
    meta = _meta(pod)
    who = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _exit_code_matches(status.get("containerStatuses") or [], rule["onExitCodes"]) or \
                _exit_code_matches(status.get("initContainerStatuses") or [], rule["onExitCodes"])
            if cs is None:
                continue
            message = (f"Container {cs.get('name')} for pod {who} failed with exit code "
                       f"{int((_terminated(cs) or {}).get('exitCode') or 0)} matching {action} rule at index {index}")
        elif rule.get("onPodConditions") is not None:
            patterns = rule["onPodConditions"]
            matched = next((c for c in status.get("conditions") or ()
                            for p in patterns
                            if c.get("type") == p.get("type") and c.get("status") == (p.get("status") or "True")),
                           None)
            if matched is None:
                continue
            message = f"Pod {who} has condition {matched.get('type')} matching {action} rule at index {index}"
        else:
            continue
        if action == "Ignore":
            return PolicyMatch(None, False, action)
        if action == "FailJob":
            return PolicyMatch(message, True, action)
        if action in ("Count", "FailIndex"):
            return PolicyMatch(None, True, action)
    return PolicyMatch()


# -- back-off ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackoffRecord:
    """Failures since the last success and when the last one happened (kept in memory,
    as upstream's backoff store: a restarted controller starts afresh)."""

    failures: int = 0
    last_failure: dt.datetime | None = None


def finished_time(pod: Mapping[str, Any]) -> dt.datetime:
    """When a pod finished: its containers' last end, else its Ready=False transition,
    else its deletion time less the grace period, else its creation."""
    statuses = _status(pod).get("containerStatuses") or []
    latest: dt.datetime | None = None
    complete = bool(statuses)
    for cs in statuses:
        at = parse_time((_terminated(cs) or {}).get("finishedAt"))
        if at is None:
            complete = False
            break
        latest = at if latest is None or at > latest else latest
    if complete and latest is not None:
        return latest
    for cond in _status(pod).get("conditions") or ():
        if cond.get("type") == "Ready" and cond.get("status") == "False":
            at = parse_time(cond.get("lastTransitionTime"))
            if at is not None:
                return at
    deleted = parse_time(_meta(pod).get("deletionTimestamp"))
    if deleted is not None:
        return deleted - dt.timedelta(seconds=int(_meta(pod).get("deletionGracePeriodSeconds") or 0))
    return parse_time(_meta(pod).get("creationTimestamp")) or dt.datetime.min.replace(tzinfo=dt.UTC)


def next_backoff_record(old: BackoffRecord, new_succeeded: list[Obj], new_failed: list[Obj]) -> BackoffRecord:
    """The record after this sync's newly finished pods: a success resets it, failures
    after the last success count."""
    failed_times = sorted(finished_time(p) for p in new_failed)
    if not new_succeeded:
        if not failed_times:
            return old
        return BackoffRecord(old.failures + len(failed_times), failed_times[-1])
    last_success = max(finished_time(p) for p in new_succeeded)
    after = [t for t in failed_times if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def backoff_remaining(failures: int, last_failure: dt.datetime | None, now: dt.datetime,
                      base: float = POD_FAILURE_BACKOFF, cap: float = MAX_POD_FAILURE_BACKOFF) -> float:
    """Seconds before a replacement pod may be created: base * 2^(failures-1), capped,
    counted from the last failure."""
    if failures <= 0 or last_failure is None:
        return 0.0
    delay = base
    for _ in range(1, failures):
        delay *= 2
        if delay >= cap:
            delay = cap
            break
    elapsed = (now - last_failure).total_seconds()
    return max(0.0, delay - elapsed)


# -- success policy ---------------------------------------------------------------------------

def _overlap(a: Intervals, b: Intervals) -> int:
    return sum(max(0, min(al, bl) - max(af, bf) + 1) for af, al in a for bf, bl in b)


def match_success_policy(policy: Mapping[str, Any] | None, completions: int, succeeded: Intervals) -> str | None:
    """"Matched rules at index N" for the first successPolicy rule the succeeded indexes meet."""
    if not policy or not succeeded:
        return None
    for index, rule in enumerate(policy.get("rules") or ()):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = parse_indexes(rule["succeededIndexes"], completions)
            if not required:
                continue
            contains = _overlap(required, succeeded)
            if contains == total(required) or (count is not None and contains >= int(count)):
                return f"Matched rules at index {index}"
        elif count is not None and total(succeeded) >= int(count):
            return f"Matched rules at index {index}"
    return None


# -- conditions -------------------------------------------------------------------------------

def new_condition(type_: str, status: str, reason: str, message: str, now: dt.datetime) -> Obj:
    at = format_time(now)
    return {"type": type_, "status": status, "lastProbeTime": at, "lastTransitionTime": at,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], type_: str, status: str, reason: str, message: str,
                     now: dt.datetime) -> bool:
    """Set a condition in place (never adds one that is False); whether anything changed."""
    for i, cond in enumerate(conditions):
        if cond.get("type") == type_:
            if cond.get("status") != status or cond.get("reason") != reason or cond.get("message") != message:
                conditions[i] = new_condition(type_, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_condition(type_, status, reason, message, now))
        return True
    return False


# -- the plan ---------------------------------------------------------------------------------

@dataclass
class JobPlan:
    """One sync of a Job. The shell deletes `delete` (removing the tracking finalizer
    first unless `keep_finalizers`), creates one pod per entry of `create` (a completion
    index or None), writes `status` when `flush`, removes the finalizers of
    `remove_finalizers`, then calls `finish_status`."""

    status: Obj = field(default_factory=dict)
    flush: bool = False
    create: list[int | None] = field(default_factory=list)
    # Index -> the failed pod whose failure counts the new pod of that index inherits.
    replaces: dict[int, Obj] = field(default_factory=dict)
    delete: list[Obj] = field(default_factory=list)
    keep_finalizers: bool = False
    remove_finalizers: list[Obj] = field(default_factory=list)
    # Pods still holding the finalizer after this sync, if every removal succeeds.
    with_finalizer: set[str] = field(default_factory=set)
    final_condition: Obj | None = None
    reached_max_uncounted: bool = False
    backoff: BackoffRecord = field(default_factory=BackoffRecord)
    requeue_after: float | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    done: bool = False

    def requeue(self, seconds: float) -> None:
        if seconds > 0:
            self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def _backoff_limit(job: Mapping[str, Any]) -> int:
    value = _spec(job).get("backoffLimit")
    return 6 if value is None else int(value)


def _past_backoff_limit_on_failure(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> bool:
    """restartPolicy OnFailure: container restarts of running pods count as failures."""
    template_spec = (_spec(job).get("template") or {}).get("spec") or {}
    if template_spec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if _status(pod).get("phase") in ("Running", "Pending"):
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(int(cs.get("restartCount") or 0) for cs in _status(pod).get(key) or ())
    limit = _backoff_limit(job)
    return restarts > 0 if limit == 0 else restarts >= limit


def _index_failed(job: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """backoffLimitPerIndex: the pod's failure exhausts its index (or a FailIndex rule fires)."""
    counted = False
    if is_pod_failed(pod, job):
        match = match_pod_failure_policy(_spec(job).get("podFailurePolicy"), pod)
        if match.action == "FailIndex":
            return True
        counted = match.count
    return counted and _annotation_int(pod, INDEX_FAILURE_COUNT) >= int(_spec(job).get("backoffLimitPerIndex") or 0)


def _valid_index(job: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    ix = completion_index(pod)
    if ix is None or ix >= int(_spec(job).get("completions") or 0):
        return None
    return ix


def _pods_for_removal(job: Mapping[str, Any], active: list[Obj], at_least: int) -> list[Obj]:
    """Indexed: duplicates of an index and pods without a valid index go first; then the
    cheapest pods by the ReplicaSet ranking (not ready, unscheduled, pending first)."""
    remove: list[Obj] = []
    left = active
    if is_indexed(job):
        by_index: dict[int, list[Obj]] = {}
        left = []
        for pod in active:
            ix = _valid_index(job, pod)
            if ix is None:
                remove.append(pod)
            else:
                by_index.setdefault(ix, []).append(pod)
        for ix in sorted(by_index):
            group = rank_pods_for_deletion(by_index[ix])
            remove.extend(group[:-1])
            left.append(group[-1])
    if len(remove) < at_least:
        remove.extend(rank_pods_for_deletion(left)[:at_least - len(remove)])
    return remove


def _first_pending_indexes(job: Mapping[str, Any], active: list[Obj], pods: list[Obj], succeeded: Intervals,
                           failed: Intervals | None, count: int) -> list[int]:
    completions = int(_spec(job).get("completions") or 0)
    busy = {ix for p in active if (ix := completion_index(p)) is not None}
    if only_replace_failed(job):
        busy |= {ix for p in pods if is_terminating(p) and (ix := completion_index(p)) is not None}
    taken = with_indexes([*succeeded, *(failed or [])], busy)
    out = []
    for candidate in range(completions):
        if len(out) >= count:
            break
        if not has_index(taken, candidate):
            out.append(candidate)
    return out


def _delayed_deletion_per_index(job: Mapping[str, Any], pods: list[Obj], active: list[Obj], succeeded: Intervals,
                                failed: Intervals, skip: set[str]) -> dict[int, Obj]:
    """backoffLimitPerIndex: for each index waiting for a replacement, its last failed pod,
    whose finalizer stays until the replacement inherits its failure count."""
    active_ix = {ix for p in active if (ix := completion_index(p)) is not None}
    out: dict[int, Obj] = {}
    for pod in pods:
        if not has_tracking_finalizer(pod) or uid_of(pod) in skip or not is_pod_failed(pod, job):
            continue
        ix = _valid_index(job, pod)
        if ix is None or has_index(succeeded, ix) or has_index(failed, ix) or ix in active_ix:
            continue
        prev = out.get(ix)
        if prev is None or (_absolute_failures(prev) <= _absolute_failures(pod)
                            and not finished_time(pod) < finished_time(prev)):
            out[ix] = pod
    return out


def _absolute_failures(pod: Mapping[str, Any]) -> int:
    return _annotation_int(pod, INDEX_FAILURE_COUNT) + _annotation_int(pod, INDEX_IGNORED_FAILURE_COUNT)


def index_failure_counts(job: Mapping[str, Any], replaced: Mapping[str, Any] | None) -> tuple[int, int]:
    """(failures, ignored failures) a new pod of an index carries on from the pod it replaces."""
    if replaced is None:
        return 0, 0
    failures = _annotation_int(replaced, INDEX_FAILURE_COUNT)
    ignored = _annotation_int(replaced, INDEX_IGNORED_FAILURE_COUNT)
    if match_pod_failure_policy(_spec(job).get("podFailurePolicy"), replaced).count:
        failures += 1
    else:
        ignored += 1
    return failures, ignored


def _uncounted(status: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    u = status.get("uncountedTerminatedPods") or {}
    return list(u.get("succeeded") or []), list(u.get("failed") or [])


def plan_job(job: Mapping[str, Any], pods: Sequence[Obj], now: dt.datetime, *,
             expectations_satisfied: bool = True, expected_removals: Iterable[str] = (),
             backoff: BackoffRecord | None = None, max_uncounted: int = MAX_UNCOUNTED_PODS,
             burst: int = MAX_PODS_PER_SYNC) -> JobPlan:
    """Decide one sync of `job` from the pods it controls (`pods`, adoption done).
    `expected_removals` are uids whose finalizer removal this controller sent but has not
    yet seen: they were counted already."""
    plan = JobPlan(backoff=backoff or BackoffRecord())
    if is_finished(job):
        plan.done = True
        return plan
    spec = _spec(job)
    old_status = _status(job)
    status: Obj = copy.deepcopy(dict(old_status))
    skip = set(expected_removals)
    indexed = is_indexed(job)
    completions = spec.get("completions")
    completions_n = int(completions) if completions is not None else None
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    policy = spec.get("podFailurePolicy")
    conditions: list[Obj] = status.setdefault("conditions", [])
    if not conditions:
        status.pop("conditions")
        conditions = []
    unc_succ, unc_fail = _uncounted(status)
    unc_succ_set, unc_fail_set = set(unc_succ), set(unc_fail)

    if indexed:
        pods = sorted(pods, key=lambda p: (completion_index(p) is None, completion_index(p) or 0))
    active = [p for p in pods if pod_is_active(p)]
    terminating = sum(1 for p in pods if is_terminating(p))
    ready = sum(1 for p in active if pod_is_ready(p))

    def valid(p: Mapping[str, Any], uncounted: set[str]) -> bool:
        uid = uid_of(p)
        if not has_tracking_finalizer(p) or uid in uncounted or uid in skip:
            return False
        return not indexed or _valid_index(job, p) is not None

    new_succeeded = [p for p in pods if valid(p, unc_succ_set) and _status(p).get("phase") == "Succeeded"]
    new_failed = [p for p in pods if valid(p, unc_fail_set) and is_pod_failed(p, job)]
    succeeded = int(old_status.get("succeeded") or 0) + len(new_succeeded) + len(unc_succ)
    failed = int(old_status.get("failed") or 0) + len(unc_fail) + sum(
        1 for p in new_failed if match_pod_failure_policy(policy, p).count)

    if status.get("startTime") is None and not is_suspended(job):
        status["startTime"] = format_time(now)
    plan.backoff = next_backoff_record(plan.backoff, new_succeeded, new_failed)

    finished: Obj | None = None
    scm = find_condition(job, SUCCESS_CRITERIA_MET)
    if scm is not None and scm.get("status") == "True":
        finished = scm
    if finished is None:
        target = find_condition(job, FAILURE_TARGET)
        if target is not None and target.get("status") == "True":
            finished = new_condition(FAILED, "True", target.get("reason", ""), target.get("message", ""), now)
        elif policy:
            for p in pods:
                if is_pod_failed(p, job):
                    message = match_pod_failure_policy(policy, p).fail_job_message
                    if message is not None:
                        finished = new_condition(FAILURE_TARGET, "True", REASON_POD_FAILURE_POLICY, message, now)
                        break
    start = parse_time(status.get("startTime"))
    if finished is None:
        deadline = spec.get("activeDeadlineSeconds")
        if failed > _backoff_limit(job) or _past_backoff_limit_on_failure(job, pods):
            finished = new_condition(FAILURE_TARGET, "True", *BACKOFF_LIMIT_EXCEEDED, now)
        elif deadline is not None and start is not None and not is_suspended(job):
            left = float(deadline) - (now - start).total_seconds()
            if left <= 0:
                finished = new_condition(FAILURE_TARGET, "True", *DEADLINE_EXCEEDED, now)
            else:
                plan.requeue(left)

    prev_succeeded_ix: Intervals = []
    succeeded_ix: Intervals = []
    failed_ix: Intervals | None = None
    delayed: dict[int, Obj] = {}
    if indexed:
        n = completions_n or 0
        prev_succeeded_ix = parse_indexes(status.get("completedIndexes"), n)
        succeeded_ix = with_indexes(prev_succeeded_ix, (
            ix for p in pods if _status(p).get("phase") == "Succeeded" and has_tracking_finalizer(p)
            and (ix := _valid_index(job, p)) is not None))
        succeeded = total(succeeded_ix)
        if has_backoff_limit_per_index(job):
            failed_ix = with_indexes(parse_indexes(status.get("failedIndexes"), n), (
                ix for p in pods if has_tracking_finalizer(p) and (ix := _valid_index(job, p)) is not None
                and _index_failed(job, p)))
            if finished is None:
                max_failed = spec.get("maxFailedIndexes")
                if max_failed is not None and total(failed_ix) > int(max_failed):
                    finished = new_condition(FAILURE_TARGET, "True", *MAX_FAILED_INDEXES_EXCEEDED, now)
                elif total(failed_ix) > 0 and total(failed_ix) + total(succeeded_ix) >= n:
                    finished = new_condition(FAILURE_TARGET, "True", *FAILED_INDEXES, now)
            delayed = _delayed_deletion_per_index(job, list(pods), active, succeeded_ix, failed_ix, skip)
        if finished is None:
            message = match_success_policy(spec.get("successPolicy"), n, succeeded_ix)
            if message is not None:
                finished = new_condition(SUCCESS_CRITERIA_MET, "True", REASON_SUCCESS_POLICY, message, now)

    n_active = len(active)
    if finished is not None:
        # Whatever still runs goes; its finalizer stays until it is counted below.
        plan.delete = list(active)
        plan.keep_finalizers = True
        if not expectations_satisfied:
            finished = None
        n_active = 0
        terminating += len(active)
        ready = 0
    else:
        managed = False
        if expectations_satisfied and not _meta(job).get("deletionTimestamp"):
            managed = True
            n_active = _manage(plan, job, active, list(pods), succeeded, succeeded_ix, failed_ix, delayed,
                               terminating, parallelism, completions_n, now, burst)
            if plan.delete:
                terminating += len(plan.delete)
                ready -= sum(1 for p in plan.delete if pod_is_ready(p))
        if completions_n is None:
            complete = succeeded > 0 and n_active == 0
        else:
            complete = succeeded >= completions_n and n_active == 0
        if complete:
            finished = new_condition(SUCCESS_CRITERIA_MET, "True", *COMPLETIONS_REACHED, now)
        elif managed:
            if is_suspended(job):
                if ensure_condition(conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now):
                    plan.events.append(("Normal", "Suspended", "Job suspended"))
            elif ensure_condition(conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now):
                plan.events.append(("Normal", "Resumed", "Job resumed"))
                # activeDeadlineSeconds counts continuous activity: a resumed Job starts afresh.
                status["startTime"] = format_time(now)

    status["active"] = n_active
    status["ready"] = max(ready, 0)
    status["terminating"] = terminating

    # -- tracking: what finished pods count, which finalizers come off ---------------------
    with_finalizer = {uid_of(p) for p in pods if has_tracking_finalizer(p) and uid_of(p) not in skip}
    succ_list, fail_list = list(unc_succ), list(unc_fail)
    new_succeeded_ix: list[int] = []
    for pod in pods:
        uid = uid_of(pod)
        if not has_tracking_finalizer(pod) or uid in skip:
            continue
        considered_failed = is_pod_failed(pod, job)
        if not _can_remove_finalizer(job, pod, finished, considered_failed, delayed):
            continue
        plan.remove_finalizers.append(pod)
        phase = _status(pod).get("phase")
        if phase == "Succeeded" and uid not in unc_fail_set:
            if indexed:
                ix = _valid_index(job, pod)
                if ix is not None and not has_index(prev_succeeded_ix, ix):
                    new_succeeded_ix.append(ix)
            elif uid not in unc_succ_set:
                succ_list.append(uid)
                unc_succ_set.add(uid)
        elif considered_failed or (finished is not None and finished["type"] != SUCCESS_CRITERIA_MET):
            if uid not in unc_fail_set and (not indexed or _valid_index(job, pod) is not None):
                if match_pod_failure_policy(policy, pod).count:
                    fail_list.append(uid)
                    unc_fail_set.add(uid)
        if len(new_succeeded_ix) + len(succ_list) + len(fail_list) >= max_uncounted:
            plan.reached_max_uncounted = True
            break
    status["uncountedTerminatedPods"] = _uncounted_obj(succ_list, fail_list)
    # Uids already counted but left in the list (a crash after the finalizer came off).
    _count_uncounted_without_finalizer(status, with_finalizer)
    if indexed:
        succeeded_ix = with_indexes(succeeded_ix, new_succeeded_ix)
        status["completedIndexes"] = format_indexes(succeeded_ix)
        status["succeeded"] = total(succeeded_ix)
        if failed_ix is not None:
            status["failedIndexes"] = format_indexes(failed_ix)
    if finished is not None and finished["type"] == FAILURE_TARGET:
        conditions.append(finished)
        finished = new_condition(FAILED, "True", finished["reason"], finished["message"], now)
    if finished is not None and finished["type"] == SUCCESS_CRITERIA_MET:
        if not condition_true(job, SUCCESS_CRITERIA_MET):
            conditions.append(finished)
        finished = new_condition(COMPLETE, "True", finished.get("reason", ""), finished.get("message", ""), now)
    if conditions:
        status["conditions"] = conditions
    plan.final_condition = finished
    plan.status = compact_status(status)
    plan.flush = normalized_status(status) != normalized_status(old_status)
    plan.with_finalizer = with_finalizer - {uid_of(p) for p in plan.remove_finalizers}
    return plan


def _can_remove_finalizer(job: Mapping[str, Any], pod: Mapping[str, Any], finished: Obj | None,
                          considered_failed: bool, delayed: Mapping[int, Obj]) -> bool:
    if _meta(job).get("deletionTimestamp") or finished is not None or _status(pod).get("phase") == "Succeeded":
        return True
    if not considered_failed:
        return False
    if has_backoff_limit_per_index(job):
        ix = completion_index(pod)
        if ix is not None and uid_of(delayed.get(ix) or {}) == uid_of(pod):
            return False
    return True


def _manage(plan: JobPlan, job: Mapping[str, Any], active: list[Obj], pods: list[Obj], succeeded: int,
            succeeded_ix: Intervals, failed_ix: Intervals | None, delayed: dict[int, Obj], terminating: int,
            parallelism: int, completions: int | None, now: dt.datetime, burst: int) -> int:
    """Creates and deletes that bring the active pods to what the Job wants; returns the
    active count once they are done."""
    n_active = len(active)
    if is_suspended(job):
        plan.delete = _pods_for_removal(job, active, n_active)
        return n_active - len(plan.delete)
    if completions is None:
        want = n_active if succeeded > 0 else parallelism
    else:
        want = max(0, min(completions - succeeded, parallelism))
    remove = _pods_for_removal(job, active, max(0, n_active - want))[:burst]
    if remove:
        plan.delete = remove
        return n_active - len(remove)
    blocked = terminating if only_replace_failed(job) else 0
    diff = want - blocked - n_active
    if diff <= 0:
        return n_active
    if not has_backoff_limit_per_index(job):
        wait = backoff_remaining(plan.backoff.failures, plan.backoff.last_failure, now)
        if wait > 0:
            plan.requeue(wait)
            return n_active
    diff = min(diff, burst)
    if is_indexed(job):
        indexes = _first_pending_indexes(job, active, pods, succeeded_ix, failed_ix, diff)
        if has_backoff_limit_per_index(job):
            ready_now, soonest = [], None
            for ix in indexes:
                last = delayed.get(ix)
                wait = 0.0
                if last is not None:
                    failures = _absolute_failures(last) + 1
                    wait = backoff_remaining(failures, finished_time(last), now)
                if wait <= 0:
                    ready_now.append(ix)
                elif soonest is None or wait < soonest:
                    soonest = wait
            if not ready_now and soonest is not None:
                plan.requeue(soonest)
                return n_active
            indexes = ready_now
            plan.replaces = {ix: delayed[ix] for ix in indexes if ix in delayed}
        plan.create = list(indexes)
    else:
        plan.create = [None] * diff
    return n_active + len(plan.create)


def _uncounted_obj(succeeded: list[str], failed: list[str]) -> Obj:
    out: Obj = {}
    if succeeded:
        out["succeeded"] = succeeded
    if failed:
        out["failed"] = failed
    return out


def _count_uncounted_without_finalizer(status: Obj, with_finalizer: set[str]) -> bool:
    """Move the uids whose pods lost their finalizer (or are gone) from
    uncountedTerminatedPods into the counters; whether anything moved."""
    succ, fail = _uncounted(status)
    keep_succ = [u for u in succ if u in with_finalizer]
    keep_fail = [u for u in fail if u in with_finalizer]
    if len(keep_succ) == len(succ) and len(keep_fail) == len(fail):
        return False
    status["succeeded"] = int(status.get("succeeded") or 0) + len(succ) - len(keep_succ)
    status["failed"] = int(status.get("failed") or 0) + len(fail) - len(keep_fail)
    status["uncountedTerminatedPods"] = _uncounted_obj(keep_succ, keep_fail)
    return True


def finish_status(plan: JobPlan, status: Mapping[str, Any], still_with_finalizer: set[str],
                  now: dt.datetime) -> tuple[Obj, bool]:
    """The status after the finalizer removals: removed pods counted; the Complete or
    Failed condition added once nothing is uncounted or terminating. Returns the status
    and whether the Job finished."""
    out: Obj = copy.deepcopy(dict(status))
    _count_uncounted_without_finalizer(out, still_with_finalizer)
    compact_status(out)
    cond = plan.final_condition
    if cond is None or plan.reached_max_uncounted:
        return out, False
    succ, fail = _uncounted(out)
    if succ or fail or int(out.get("terminating") or 0) > 0:
        return out, False
    conditions = list(out.get("conditions") or [])
    ensure_condition(conditions, cond["type"], cond["status"], cond.get("reason", ""), cond.get("message", ""), now)
    out["conditions"] = conditions
    if cond["type"] == COMPLETE:
        # The completion time is the moment the Complete condition appeared.
        out["completionTime"] = next(c["lastTransitionTime"] for c in conditions if c["type"] == COMPLETE)
    return out, True


_ZERO_DEFAULTS = {"active": 0, "succeeded": 0, "failed": 0}


def compact_status(status: Obj) -> Obj:
    """Leave out what Go's omitempty leaves out of a JobStatus: zero counters and an
    empty completedIndexes (ready, terminating and failedIndexes are pointers: kept)."""
    for key in _ZERO_DEFAULTS:
        if not status.get(key):
            status.pop(key, None)
    if not status.get("completedIndexes"):
        status.pop("completedIndexes", None)
    # JobStatus's field order, as the real API writes it.
    ordered = {k: status.pop(k) for k in _STATUS_ORDER if k in status}
    ordered.update(status)
    status.clear()
    status.update(ordered)
    return status


_STATUS_ORDER = ("conditions", "startTime", "completionTime", "active", "succeeded", "failed", "terminating",
                 "completedIndexes", "failedIndexes", "uncountedTerminatedPods", "ready")


def normalized_status(status: Mapping[str, Any] | None) -> Obj:
    """A status with zero counters and empty lists dropped, for change detection."""
    out: Obj = {}
    for key, value in (status or {}).items():
        if key in _ZERO_DEFAULTS and not value:
            continue
        if key == "uncountedTerminatedPods":
            value = {k: v for k, v in (value or {}).items() if v}
            if not value:
                continue
        if key == "conditions" and not value:
            continue
        out[key] = value
    return out


def finished_event(job: Mapping[str, Any], cond: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The events upstream records when a Job finishes."""
    if cond.get("type") == COMPLETE:
        events = []
        completions = _spec(job).get("completions")
        if completions is not None and int(_status(job).get("succeeded") or 0) > int(completions):
            events.append(("Warning", "TooManySucceededPods",
                           "Too many succeeded pods running after completion count reached"))
        return [*events, ("Normal", "Completed", "Job completed")]
    return [("Warning", cond.get("reason", ""), cond.get("message", ""))]


# -- the pods it creates ----------------------------------------------------------------------

def generate_name(job_name: str, index: int | None) -> str:
    if index is None:
        prefix = f"{job_name}-"
    else:
        prefix = f"{job_name}-{index}-"
    if len(prefix) > MAX_GENERATED_NAME:
        # Keep the index visible: shorten the Job's name instead.
        cut = len(prefix) - MAX_GENERATED_NAME
        prefix = f"{job_name[:len(job_name) - cut]}-{index}-" if index is not None else prefix[:MAX_GENERATED_NAME]
    return prefix


def new_pod(job: Mapping[str, Any], index: int | None, replaced: Mapping[str, Any] | None = None) -> Obj:
    """The pod a Job creates: its template with the tracking finalizer and, for an
    Indexed Job, the completion index (annotation, label, JOB_COMPLETION_INDEX env) and
    the hostname NAME-INDEX."""
    meta = _meta(job)
    template = copy.deepcopy(_spec(job).get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    finalizers = list(tmeta.get("finalizers") or [])
    if TRACKING_FINALIZER not in finalizers:
        finalizers.append(TRACKING_FINALIZER)
    if index is not None:
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        pod_spec["hostname"] = f"{meta.get('name', '')}-{index}"
        env_ref = {"name": COMPLETION_INDEX_ENV,
                   "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{COMPLETION_INDEX}']"}}}
        for key in ("initContainers", "containers"):
            for container in pod_spec.get(key) or ():
                env = container.setdefault("env", [])
                if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                    env.append(copy.deepcopy(env_ref))
        if has_backoff_limit_per_index(job):
            failures, ignored = index_failure_counts(job, replaced)
            annotations[INDEX_FAILURE_COUNT] = str(failures)
            if ignored:
                annotations[INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
    pod_meta: Obj = {"generateName": generate_name(meta.get("name", ""), index),
                     "namespace": meta.get("namespace", ""),
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta.get("name", ""),
                                          "uid": meta.get("uid", ""), "controller": True,
                                          "blockOwnerDeletion": True}],
                     "finalizers": finalizers}
    if labels:
        pod_meta["labels"] = labels
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def remove_finalizer_patch() -> Obj:
    """Strategic merge patch taking the tracking finalizer (only) off a pod."""
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}
