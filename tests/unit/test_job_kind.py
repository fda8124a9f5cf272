"""The Job's own API rules without a server: the generated selector and labels, the
defaults, the new policy fields' validation, and the STATUS column."""

from __future__ import annotations

from datetime import UTC, datetime

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import DEFAULT
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

REG = Registry()
JOBS = REG.get("batch", "v1", "jobs")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job(**spec) -> dict:
    obj = {"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "main", "image": "busybox"}]}}, **spec}}
    DEFAULT.for_info(JOBS).default(JOBS, obj)
    return obj


def errors(obj: dict) -> str:
    errs = validate_with(DEFAULT.for_info(JOBS), JOBS, obj, None)
    return ApiError.invalid(JOBS.group, JOBS.kind, "pi", errs).message if errs else ""


def test_selector_and_pod_labels_are_generated_from_the_uid_unless_manual():
    spec = job()["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u-1", "controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    manual = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    assert "controller-uid" not in (manual["spec"]["template"]["metadata"]["labels"])
    assert errors(manual) == ""


def test_a_per_index_backoff_limit_turns_the_global_limit_off():
    spec = job(completionMode="Indexed", completions=3, backoffLimitPerIndex=1)["spec"]
    assert spec["backoffLimit"] == 2147483647


def test_per_index_fields_need_indexed_mode_and_each_other():
    msg = errors(job(maxFailedIndexes=1, completions=2))
    assert "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified" in msg
    assert "spec.maxFailedIndexes: Invalid value: 1: requires indexed completion mode" in msg
    msg = errors(job(completionMode="Indexed", completions=2, backoffLimitPerIndex=1, maxFailedIndexes=3))
    assert "spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions" in msg


def test_pod_failure_policy_rules_are_checked():
    policy = {"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [0, 5, 3, 3]}},
        {"action": "Explode", "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]},
        {"action": "Ignore"},
        {"action": "Count", "onExitCodes": {"operator": "In", "values": [1], "containerName": "nope"}},
    ]}
    msg = errors(job(podFailurePolicy=policy, podReplacementPolicy="Failed"))
    assert 'spec.podFailurePolicy.rules[0].action: Invalid value: "FailIndex": requires the backoffLimitPerIndex ' \
           "to be set" in msg
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In " \
           "operator" in msg
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Invalid value: 3: must be ordered" in msg
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 3" in msg
    assert 'spec.podFailurePolicy.rules[1].action: Unsupported value: "Explode"' in msg
    assert 'spec.podFailurePolicy.rules[1].onPodConditions[0].status: Unsupported value: "Maybe"' in msg
    assert "spec.podFailurePolicy.rules[2]: Invalid value: : specifying one of OnExitCodes and OnPodConditions " \
           "is required" in msg or "specifying one of OnExitCodes and OnPodConditions is required" in msg
    assert 'spec.podFailurePolicy.rules[3].onExitCodes.containerName: Invalid value: "nope"' in msg
    good = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    assert errors(job(podFailurePolicy=good)) == ""
    onfailure = job(podFailurePolicy=good)
    onfailure["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert 'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when ' \
           "podFailurePolicy is specified" in errors(onfailure)
    assert 'spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"' in \
        errors(job(podFailurePolicy=good, podReplacementPolicy="TerminatingOrFailed"))


def test_success_policy_needs_indexed_mode_and_valid_rules():
    rules = {"rules": [{"succeededIndexes": "0-2,1"}, {"succeededCount": 9}, {}]}
    assert "requires indexed completion mode" in errors(job(successPolicy=rules, completions=3))
    msg = errors(job(successPolicy=rules, completions=3, completionMode="Indexed"))
    assert "spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"0-2,1\": error parsing " \
           "succeededIndexes: non-increasing order, previous: 2, current: 1" in msg
    assert "spec.successPolicy.rules[1].succeededCount: Invalid value: 9: must be less than or equal to 3 " \
           "(the number of specified completions)" in msg
    assert "spec.successPolicy.rules[2]: Required value: at least one of succeededCount or succeededIndexes " \
           "must be specified" in msg
    ok = {"rules": [{"succeededIndexes": "0,2", "succeededCount": 1}]}
    assert errors(job(successPolicy=ok, completions=3, completionMode="Indexed")) == ""


def test_status_column_follows_the_conditions():
    strategy = DEFAULT.for_info(JOBS)

    def word(*conds: tuple[str, str]) -> str:
        obj = job()
        obj["status"] = {"conditions": [{"type": t, "status": s} for t, s in conds]}
        return strategy.cells(obj, NOW)[1]

    assert word() == "Running"
    assert word(("Suspended", "True")) == "Suspended"
    assert word(("Suspended", "False")) == "Running"
    assert word(("SuccessCriteriaMet", "True")) == "SuccessCriteriaMet"
    assert word(("SuccessCriteriaMet", "True"), ("Complete", "True")) == "Complete"
    assert word(("FailureTarget", "True")) == "FailureTarget"
    assert word(("FailureTarget", "True"), ("Failed", "True")) == "Failed"
