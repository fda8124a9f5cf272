"""Jobs and CronJobs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kybernetes.api.defaults import child_map, default_template, set_default
from kybernetes.api.errors import FieldError, duplicate, invalid, not_supported, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.selectors import label_selector_matcher
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_int,
    as_str,
    aware,
    bool_word,
    column,
    container_names_images,
    containers_columns,
    dict_at,
    doc,
    format_selector,
    get_path,
    has_condition,
    human_duration,
    list_at,
    name_column,
    name_of,
    since,
)
from kybernetes.api.timefmt import parse_time
from kybernetes.api.validation import (
    JOB_RESTART,
    GoValue,
    as_dict,
    enum_errors,
    go_label_selector,
    immutable,
    is_int,
    non_negative,
    selector_is_empty,
    validate_label_selector,
    validate_labels,
    validate_template,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_job_spec(spec: Any, prefix: str = "spec", with_selector: bool = True) -> Errors:
    if not isinstance(spec, dict):
        return [required(prefix)]
    errs: Errors = []
    for key in ("parallelism", "completions", "backoffLimit"):
        errs += non_negative(f"{prefix}.{key}", spec.get(key))
    errs += enum_errors(f"{prefix}.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"],
                  required_when_empty=False)
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        errs.append(required(f"{prefix}.completions", "when completion mode is Indexed"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not is_int(deadline) or deadline <= 0):
        errs.append(invalid(f"{prefix}.activeDeadlineSeconds", deadline, "must be greater than or equal to 0"))
    errs += _validate_job_policies(spec, prefix)
    if with_selector:
        sel = spec.get("selector")
        matcher = None
        if sel is None:
            errs.append(required(f"{prefix}.selector"))
        else:
            errs += validate_label_selector(f"{prefix}.selector", sel)
            if not selector_is_empty(sel):
                matcher = label_selector_matcher(sel)
        errs += validate_template(f"{prefix}.template", spec.get("template"), matcher, JOB_RESTART)
    else:
        errs += validate_template(f"{prefix}.template", spec.get("template"), None, JOB_RESTART)
    return errs


_POD_FAILURE_ACTIONS = ["Count", "FailIndex", "FailJob", "Ignore"]
_MAX_POD_FAILURE_RULES = 20
_MAX_EXIT_CODES = 255
_MAX_FAILED_INDEXES = 100_000
_MAX_SUCCESS_RULES = 20


def _too_many(path: str, count: int, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, f"must have at most {limit} items", count, True)


def _container_names(spec: Obj) -> set[str]:
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    return {c.get("name") for key in ("containers", "initContainers") for c in pod_spec.get(key) or []
            if isinstance(c, dict)}


def _validate_exit_codes(path: str, req: Any, containers: set[str]) -> Errors:
    if not isinstance(req, dict):
        return [required(path)]
    errs = enum_errors(f"{path}.operator", req.get("operator"), ["In", "NotIn"])
    name = req.get("containerName")
    if name is not None and name not in containers:
        errs.append(invalid(f"{path}.containerName", name,
                            "must be one of the container or initContainer names in the pod template"))
    values = req.get("values")
    if not isinstance(values, list) or not values:
        errs.append(invalid(f"{path}.values", GoValue("[]int32(nil)") if not values else values,
                            "at least one value is required"))
    elif len(values) > _MAX_EXIT_CODES:
        errs.append(_too_many(f"{path}.values", len(values), _MAX_EXIT_CODES))
    else:
        seen: set[int] = set()
        for i, value in enumerate(values):
            if req.get("operator") == "In" and value == 0:
                errs.append(invalid(f"{path}.values[{i}]", value, "must not be 0 for the In operator"))
            if value in seen:
                errs.append(duplicate(f"{path}.values[{i}]", value))
            if i > 0 and is_int(value) and is_int(values[i - 1]) and values[i - 1] > value:
                errs.append(invalid(f"{path}.values[{i}]", value, "must be ordered"))
            seen.add(value)
    return errs


def _validate_pod_failure_policy(spec: Obj, path: str) -> Errors:
    policy = spec.get("podFailurePolicy")
    rules = as_dict(policy).get("rules")
    errs: Errors = []
    if not isinstance(rules, list):
        return [required(f"{path}.rules")] if rules is not None else []
    if len(rules) > _MAX_POD_FAILURE_RULES:
        return [_too_many(f"{path}.rules", len(rules), _MAX_POD_FAILURE_RULES)]
    containers = _container_names(spec)
    for i, rule in enumerate(rules):
        rule_path = f"{path}.rules[{i}]"
        rule = as_dict(rule)
        action = rule.get("action")
        if not action:
            errs.append(required(f"{rule_path}.action", "valid values: " + str(_POD_FAILURE_ACTIONS).replace("'", '"')))
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errs.append(invalid(f"{rule_path}.action", action, "requires the backoffLimitPerIndex to be set"))
        elif action not in _POD_FAILURE_ACTIONS:
            errs.append(not_supported(f"{rule_path}.action", action, _POD_FAILURE_ACTIONS))
        on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if on_codes is not None:
            errs += _validate_exit_codes(f"{rule_path}.onExitCodes", on_codes, containers)
        for j, pattern in enumerate(on_conditions or []):
            errs += enum_errors(f"{rule_path}.onPodConditions[{j}].status", as_dict(pattern).get("status"),
                                ["False", "True", "Unknown"])
            if not as_dict(pattern).get("type"):
                errs.append(required(f"{rule_path}.onPodConditions[{j}].type"))
        if on_codes is not None and on_conditions:
            errs.append(invalid(rule_path, GoValue(""),
                                "specifying both OnExitCodes and OnPodConditions is not supported"))
        elif on_codes is None and not on_conditions:
            errs.append(invalid(rule_path, GoValue(""),
                                "specifying one of OnExitCodes and OnPodConditions is required"))
    return errs


def _indexes_count(text: str, completions: int) -> tuple[int, str | None]:
    """How many indexes "1,3-5" names, or why it is malformed (upstream validateIndexesFormat)."""
    count, prev = 0, -1
    for part in text.split(","):
        bounds = part.split("-")
        if len(bounds) > 2:
            return 0, f'the fragment "{part}" violates the requirement that an index interval can have at most ' \
                      "two parts separated by '-'"
        try:
            nums = [int(b) for b in bounds]
        except ValueError:
            return 0, f'cannot convert string to integer for index: "{bounds[0] if len(bounds) == 1 else part}"'
        first, last = nums[0], nums[-1]
        if first < 0 or last >= completions:
            bad = first if first < 0 else last
            return 0, f"too large index: {bad}" if bad >= completions else f"too small index: {bad}"
        if first > last:
            return 0, f"non-increasing order, previous: {first}, current: {last}"
        if first <= prev:
            return 0, f"non-increasing order, previous: {prev}, current: {first}"
        count += last - first + 1
        prev = last
    return count, None


def _validate_success_policy(spec: Obj, path: str) -> Errors:
    policy = spec.get("successPolicy")
    if policy is None:
        return []
    if spec.get("completionMode") != "Indexed":
        return [invalid(path, GoValue("batch.SuccessPolicy{...}"), "requires indexed completion mode")]
    rules = as_dict(policy).get("rules")
    if not rules:
        return [required(f"{path}.rules", "at least one rules must be specified when the successPolicy is specified")]
    if len(rules) > _MAX_SUCCESS_RULES:
        return [_too_many(f"{path}.rules", len(rules), _MAX_SUCCESS_RULES)]
    completions = spec.get("completions") if is_int(spec.get("completions")) else 0
    errs: Errors = []
    for i, rule in enumerate(rules):
        rule_path = f"{path}.rules[{i}]"
        rule = as_dict(rule)
        count, indexes = rule.get("succeededCount"), rule.get("succeededIndexes")
        if count is None and indexes is None:
            errs.append(required(rule_path, "at least one of succeededCount or succeededIndexes must be specified"))
        total = 0
        if isinstance(indexes, str):
            total, problem = _indexes_count(indexes, completions)
            if problem:
                errs.append(invalid(f"{rule_path}.succeededIndexes", indexes,
                                    f"error parsing succeededIndexes: {problem}"))
        if count is not None:
            errs += non_negative(f"{rule_path}.succeededCount", count)
            if is_int(count) and count > completions:
                errs.append(invalid(f"{rule_path}.succeededCount", count,
                                    f"must be less than or equal to {completions} (the number of specified "
                                    "completions)"))
            if isinstance(indexes, str) and is_int(count) and count > total:
                errs.append(invalid(f"{rule_path}.succeededCount", count,
                                    f"must be less than or equal to {total} (the number of indexes in the "
                                    "specified succeededIndexes field)"))
    return errs


def _validate_job_policies(spec: Obj, prefix: str) -> Errors:
    """backoffLimitPerIndex / maxFailedIndexes, podFailurePolicy, podReplacementPolicy and
    successPolicy, as kube-apiserver's ValidateJobSpec."""
    errs: Errors = []
    per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
    errs += non_negative(f"{prefix}.backoffLimitPerIndex", per_index)
    errs += non_negative(f"{prefix}.maxFailedIndexes", max_failed)
    if max_failed is not None:
        if per_index is None:
            errs.append(required(f"{prefix}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
        elif is_int(max_failed) and max_failed > _MAX_FAILED_INDEXES:
            errs.append(invalid(f"{prefix}.maxFailedIndexes", max_failed,
                                f"must be less than or equal to {_MAX_FAILED_INDEXES}"))
    if spec.get("completionMode") != "Indexed":
        if per_index is not None:
            errs.append(invalid(f"{prefix}.backoffLimitPerIndex", per_index, "requires indexed completion mode"))
        if max_failed is not None:
            errs.append(invalid(f"{prefix}.maxFailedIndexes", max_failed, "requires indexed completion mode"))
    completions = spec.get("completions")
    if is_int(max_failed) and is_int(completions) and max_failed > completions:
        errs.append(invalid(f"{prefix}.maxFailedIndexes", max_failed, "must be less than or equal to completions"))
    if spec.get("podFailurePolicy") is not None:
        errs += _validate_pod_failure_policy(spec, f"{prefix}.podFailurePolicy")
        restart = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy")
        if restart not in (None, "Never"):
            errs.append(invalid(f"{prefix}.template.spec.restartPolicy", restart,
                                'only "Never" is supported when podFailurePolicy is specified'))
    replacement = spec.get("podReplacementPolicy")
    if replacement is not None:
        allowed = ["Failed"] if spec.get("podFailurePolicy") is not None else ["Failed", "TerminatingOrFailed"]
        if replacement not in allowed:
            errs.append(not_supported(f"{prefix}.podReplacementPolicy", replacement, allowed))
    errs += _validate_success_policy(spec, f"{prefix}.successPolicy")
    return errs


def _validate_job(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_job_spec(obj.get("spec"))


def _validate_job_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs = immutable("spec.selector", new_spec.get("selector"), old_spec.get("selector"),
                      go_label_selector(new_spec.get("selector")))
    errs += immutable("spec.template", new_spec.get("template"), old_spec.get("template"),
                       GoValue("core.PodTemplateSpec{...}"))
    errs += immutable("spec.completionMode", new_spec.get("completionMode"), old_spec.get("completionMode"))
    if new_spec.get("completionMode") != "Indexed":
        errs += immutable("spec.completions", new_spec.get("completions"), old_spec.get("completions"))
    return errs


_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


# robfig/cron v3 (what kube-apiserver validates with): bounds and names per field. Day of
# week stops at 6: unlike Vixie cron, 7 is not Sunday.
CRON_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


CRON_NAMES: list[dict[str, int]] = [
    {}, {}, {},
    {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                     "dec"])},
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}]


_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_GO_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                      "h": 3600.0}


def _cron_uint(text: str) -> int:
    if not _GO_INT.match(text):
        raise ValueError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    number = int(text)
    if number < 0:
        raise ValueError(f"negative number ({number}) not allowed: {text}")
    return number


def _cron_value(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else _cron_uint(text)


def cron_range(expr: str, low: int, high: int, names: dict[str, int]) -> tuple[int, int, int, bool]:
    """One comma-separated part of a cron field as robfig/cron reads it: (start, end, step,
    star). `star` is kept only by `*`/`?` without a step above 1: that is what makes the
    day-of-month and day-of-week fields combine with AND instead of OR. Raises ValueError."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = low_high[0] in ("*", "?")
    if star:
        start, end = low, high
    else:
        start = _cron_value(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _cron_value(low_high[1], names)
        else:
            raise ValueError(f"too many hyphens: {expr}")
    step = 1
    if len(range_and_step) == 2:
        step = _cron_uint(range_and_step[1])
        # "N/step" means "N-max/step".
        if len(low_high) == 1:
            end = high
        if step > 1:
            star = False
    elif len(range_and_step) > 2:
        raise ValueError(f"too many slashes: {expr}")
    if start < low:
        raise ValueError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise ValueError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise ValueError(f"step of range should be a positive number: {expr}")
    return start, end, step, star


def go_duration_seconds(text: str) -> float | None:
    """A Go duration ("1h30m", "90s") in seconds, or None if Go would not parse it."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        m = _GO_DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            return None
        total += float(m.group(1)) * _GO_DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not body:
        return None
    return -total if text.startswith("-") else total


def load_time_zone(name: str) -> ZoneInfo | None:
    """The IANA zone `name` as Go's time.LoadLocation finds it ("" and "UTC" are UTC), or None."""
    if name in ("", "UTC"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def split_cron_time_zone(schedule: str) -> tuple[str | None, str]:
    """A `TZ=zone ` or `CRON_TZ=zone ` prefix (robfig/cron's) and the schedule after it."""
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        space = schedule.find(" ")
        if space < 0:
            return schedule[schedule.find("=") + 1:], ""
        return schedule[schedule.find("=") + 1:space], schedule[space:].strip()
    return None, schedule


def cron_schedule_error(schedule: str) -> str | None:
    """Why robfig/cron's ParseStandard refuses a schedule (in its words), or None if it parses:
    five fields or a descriptor (@hourly ... @yearly, @every <duration>), an optional TZ= prefix."""
    if not schedule:
        return "empty spec string"
    zone, text = split_cron_time_zone(schedule)
    if zone is not None and load_time_zone(zone) is None:
        return f"provided bad location {zone}: unknown time zone {zone}"
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS:
            return None
        if text.startswith("@every "):
            duration = text[len("@every "):]
            return None if go_duration_seconds(duration) is not None else (
                f'failed to parse duration {text}: time: invalid duration "{duration}"')
        return f"unrecognized descriptor: {text}"
    fields = text.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for field_text, (low, high), names in zip(fields, CRON_BOUNDS, CRON_NAMES, strict=True):
        for part in field_text.split(","):
            if not part:
                continue
            try:
                cron_range(part, low, high, names)
            except ValueError as e:
                return str(e)
    return None


# https://data.iana.org/time-zones/theory.html#naming, with the digits and '+' of legacy names.
_TIME_ZONE_PART = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}$")


def _validate_time_zone(path: str, zone: Any) -> Errors:
    if zone is None:
        return []
    if not isinstance(zone, str) or zone == "":
        return [invalid(path, zone, "timeZone must be nil or non-empty string")]
    for part in zone.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TIME_ZONE_PART.match(part):
            return [invalid(path, zone, f"unknown time zone {zone}")]
    errs: Errors = []
    if zone.lower() == "local":
        errs.append(invalid(path, zone, "timeZone must be an explicit time zone as defined in "
                                        "https://www.iana.org/time-zones"))
    elif load_time_zone(zone) is None:
        errs.append(invalid(path, zone, f"unknown time zone {zone}"))
    return errs


def _validate_cronjob(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    name = as_dict(obj.get("metadata")).get("name")
    if isinstance(name, str) and len(name) > 52:
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [required("spec")]
    schedule = spec.get("schedule")
    if not schedule:
        errs.append(required("spec.schedule"))
    elif isinstance(schedule, str):
        problem = cron_schedule_error(schedule)
        if problem:
            errs.append(invalid("spec.schedule", schedule, problem))
        if "TZ" in schedule:
            errs.append(invalid("spec.schedule", schedule,
                                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    errs += enum_errors("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), ["Allow", "Forbid", "Replace"])
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"):
        errs += non_negative(f"spec.{key}", spec.get(key))
    errs += _validate_time_zone("spec.timeZone", spec.get("timeZone"))
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict):
        errs.append(required("spec.jobTemplate"))
    else:
        errs += validate_labels("spec.jobTemplate.metadata.labels",
                                as_dict(job_template.get("metadata")).get("labels"))
        errs += _validate_job_spec(job_template.get("spec"), "spec.jobTemplate.spec", with_selector=False)
    return errs


JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        # With a per-index limit the global one is effectively off, as upstream defaults it.
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    set_default(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        # With a pod failure policy a replacement must wait for the old pod to be gone.
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    default_template(spec, restart_policy=None)


def _default_job(obj: Obj) -> None:
    meta = child_map(obj, "metadata")
    spec = child_map(obj, "spec")
    default_job_spec(spec)
    template = spec.get("template")
    # The Job strategy generates the selector from the uid, unless the user manages it.
    uid = meta.get("uid")
    if isinstance(template, dict) and uid and spec.get("manualSelector") is not True:
        labels = child_map(child_map(template, "metadata"), "labels")
        if spec.get("selector") is None:
            spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
        for key, value in ((JOB_UID_LABEL, uid), ("controller-uid", uid),
                           (JOB_NAME_LABEL, meta.get("name", "")), ("job-name", meta.get("name", ""))):
            labels.setdefault(key, value)
    if isinstance(template, dict):
        labels = template.get("metadata", {}).get("labels") if isinstance(template.get("metadata"), dict) else None
        if isinstance(labels, dict) and labels and not meta.get("labels"):
            meta["labels"] = dict(labels)


def _default_cronjob(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        default_template(job_template["spec"], restart_policy=None)


def _columns_job() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Status", "Status of the job."),
        column("Completions", doc("batch.v1.JobStatus", "succeeded")),
        column("Duration", "Time required to complete the job."),
        age_column(),
        *containers_columns(doc("batch.v1.JobSpec", "selector")),
    ]


def _columns_cronjob() -> list[dict[str, Any]]:
    spec, status = "batch.v1.CronJobSpec", "batch.v1.CronJobStatus"
    return [
        name_column(),
        column("Schedule", doc(spec, "schedule")),
        column("Timezone", doc(spec, "timeZone")),
        column("Suspend", doc(spec, "suspend"), "boolean"),
        column("Active", doc(status, "active"), "integer"),
        column("Last Schedule", doc(status, "lastScheduleTime")),
        age_column(),
        *containers_columns(doc("batch.v1.JobSpec", "selector")),
    ]


def job_status_word(job: Obj) -> str:
    """The STATUS column of a Job."""
    conditions = list_at(job, "status", "conditions")
    if has_condition(conditions, "Complete"):
        return "Complete"
    if has_condition(conditions, "Failed"):
        return "Failed"
    if get_path(job, "metadata", "deletionTimestamp") is not None:
        return "Terminating"
    if has_condition(conditions, "Suspended"):
        return "Suspended"
    if has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    if has_condition(conditions, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def _cells_job(obj: Obj, now: datetime) -> Cells:
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    succeeded = as_int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{as_int(spec.get('completions'))}"
    elif as_int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {as_int(spec.get('parallelism'))}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    if start is None:
        took = ""
    else:
        took = human_duration(((end or aware(now)) - start).total_seconds())
    names, images = container_names_images(list_at(spec, "template", "spec", "containers"))
    return [name_of(obj), job_status_word(obj), completions, took, age_of(obj, now), names, images,
            format_selector(spec.get("selector"))]


def _cells_cronjob(obj: Obj, now: datetime) -> Cells:
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    last = status.get("lastScheduleTime")
    names, images = container_names_images(list_at(spec, "jobTemplate", "spec", "template", "spec", "containers"))
    return [name_of(obj), as_str(spec.get("schedule")), as_str(spec.get("timeZone")) or "<none>",
            bool_word(spec.get("suspend")), len(list_at(status, "active")),
            "<none>" if last is None else since(last, now), age_of(obj, now), names, images,
            format_selector(get_path(spec, "jobTemplate", "spec", "selector"))]


# -- strategies ---------------------------------------------------------------------------

class JobStrategy(KindStrategy):
    refs = (KindRef("batch", "Job"),)
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_job(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_job(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_job_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_job()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_job(obj, now)


class CronJobStrategy(KindStrategy):
    refs = (KindRef("batch", "CronJob"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_cronjob(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_cronjob(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_cronjob()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_cronjob(obj, now)
