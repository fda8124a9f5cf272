"""ValidatingAdmissionPolicy decisions (kybernetes.api.admissionpolicy): compiling at
write time, matching requests, and what validations decide, worded as upstream."""

from __future__ import annotations

from kybernetes.api import admissionpolicy as ap
from kybernetes.api.kinds.admission import validate_policy


def policy(validations: list[dict], **spec: object) -> dict:
    return {"metadata": {"name": "p"}, "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": validations, **spec}}


def request(op: str = "CREATE", resource: str = "deployments", group: str = "apps", sub: str = "",
            namespaced: bool = True) -> ap.Request:
    return ap.Request(op, group, "v1", resource, sub, "Deployment", "ns", "web", namespaced,
                      {"username": "alice", "groups": ["dev"]})


def deployment(replicas: int, labels: dict | None = None) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns", "labels": labels or {}}, "spec": {"replicas": replicas}}


def decide(p: dict, obj: dict, old: dict | None = None, params: dict | None = None) -> list[ap.Decision]:
    return ap.evaluate(ap.compile_policy(p), {"object": obj, "oldObject": old, "params": params,
                                              "request": request().as_cel(), "namespaceObject": None}, None)


def test_policy_with_a_bad_expression_is_refused_at_write() -> None:
    errs = validate_policy(policy([{"expression": "object.spec.replicas <="}]))
    assert [e.field for e in errs] == ["spec.validations[0].expression"]
    assert errs[0].detail.startswith("compilation failed: ERROR: <input>:1:")
    errs = validate_policy(policy([{"expression": "'not a bool'"}]))
    assert errs and "must evaluate to a bool" in errs[0].detail
    errs = validate_policy(policy([{"expression": "true", "reason": "Teapot"}]))
    assert errs and errs[0].field == "spec.validations[0].reason"
    assert validate_policy(policy([{"expression": "object.spec.replicas <= 5"}])) == []


def test_message_message_expression_and_default_wording() -> None:
    assert decide(policy([{"expression": "object.spec.replicas <= 5"}]), deployment(3)) == []
    [d] = decide(policy([{"expression": "object.spec.replicas <= 5"}]), deployment(6))
    assert d.message == "failed expression: object.spec.replicas <= 5" and d.reason == "Invalid"
    [d] = decide(policy([{"expression": "object.spec.replicas <= 5", "message": "too many"}]), deployment(6))
    assert d.message == "too many"
    [d] = decide(policy([{"expression": "object.spec.replicas <= 5", "message": "m", "reason": "Forbidden",
                          "messageExpression": "'replicas ' + string(object.spec.replicas) + ' > 5'"}]),
                 deployment(6))
    assert (d.message, d.reason) == ("replicas 6 > 5", "Forbidden")


def test_errors_follow_the_failure_policy() -> None:
    broken = [{"expression": "object.spec.missing > 1"}]
    [d] = decide(policy(broken), deployment(1))
    assert d.message == "expression 'object.spec.missing > 1' resulted in error: no such key: missing"
    assert decide(policy(broken, failurePolicy="Ignore"), deployment(1)) == []


def test_variables_params_and_match_conditions() -> None:
    p = policy([{"expression": "variables.replicas <= params.data.max"}],
               variables=[{"name": "replicas", "expression": "object.spec.replicas"}],
               matchConditions=[{"name": "not-system", "expression": "request.userInfo.username != 'system:x'"}])
    assert decide(p, deployment(4), params={"data": {"max": 5}}) == []
    assert len(decide(p, deployment(6), params={"data": {"max": 5}})) == 1
    skipped = policy([{"expression": "false"}], matchConditions=[{"name": "c", "expression": "object.spec.replicas > 10"}])
    assert decide(skipped, deployment(3)) == []


def test_transition_on_update_sees_old_object() -> None:
    p = policy([{"expression": "oldObject == null || object.spec.replicas >= oldObject.spec.replicas",
                 "message": "no scale down"}])
    assert decide(p, deployment(2)) == []
    assert [d.message for d in decide(p, deployment(2), deployment(3))] == ["no scale down"]


def test_resource_rules_selectors_and_exclusions() -> None:
    match = policy([])["spec"]["matchConstraints"]
    assert ap.resources_match(match, request(), deployment(1), None, {}, need_rules=True)
    assert not ap.resources_match(match, request(op="DELETE"), deployment(1), None, {}, need_rules=True)
    assert not ap.resources_match(match, request(resource="replicasets"), None, None, {}, need_rules=True)
    assert not ap.resources_match(match, request(sub="status"), None, None, {}, need_rules=True)
    excluded = {**match, "excludeResourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"],
                                                   "operations": ["*"], "resources": ["*"]}]}
    assert not ap.resources_match(excluded, request(), deployment(1), None, {}, need_rules=True)
    by_ns = {**match, "namespaceSelector": {"matchLabels": {"env": "prod"}}}
    assert ap.resources_match(by_ns, request(), deployment(1), None, {"env": "prod"}, need_rules=True)
    assert not ap.resources_match(by_ns, request(), deployment(1), None, {"env": "dev"}, need_rules=True)
    by_obj = {"objectSelector": {"matchLabels": {"tier": "web"}}}
    assert ap.resources_match(by_obj, request(), deployment(1, {"tier": "web"}), None, {}, need_rules=False)
    assert not ap.resources_match(by_obj, request(), deployment(1), None, {}, need_rules=False)


def test_denial_and_warning_wording() -> None:
    assert ap.denial_message("p", "b", "m") == "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: m"
    assert ap.warning_message("p", "b", "m") == "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': m"
