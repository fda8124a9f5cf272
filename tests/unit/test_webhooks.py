"""Admission webhooks' decisions: which webhook a request calls, the AdmissionReview it
is sent, how its answer is read and its patch applied, and how webhook configurations
are validated (kybernetes/api/webhooks.py, api/kinds/admission.py)."""

from __future__ import annotations

import base64
import json

import pytest

from kybernetes.api import webhooks as wh
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.admission import default_webhook_configuration, validate_webhook_configuration

PODS = wh.Target("", "v1", "pods", "Pod")
DEPLOY_V1 = wh.Target("apps", "v1", "deployments", "Deployment")
DEPLOY_V1BETA1 = wh.Target("apps", "v1beta1", "deployments", "Deployment")
NAMESPACES = wh.Target("", "v1", "namespaces", "Namespace")


def _hook(mutating: bool = True, **fields) -> wh.Webhook:
    raw = {"name": "hook.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
           "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/mutate"}},
           "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}
    raw.update(fields)
    config = {"metadata": {"name": "cfg"}, "webhooks": [raw]}
    default_webhook_configuration(config, mutating)
    return wh.compile_configurations([config], mutating)[0]


def _attrs(op: str = "CREATE", target: wh.Target = PODS, sub: str = "", ns: str = "team",
           obj: dict | None = None, old: dict | None = None) -> wh.Attributes:
    if obj is None and op != "DELETE":
        obj = {"metadata": {"name": "p", "namespace": ns, "labels": {"app": "web"}}}
    return wh.Attributes(op, target, sub, "p", ns, obj, old, user={"username": "alice"})


def _rule(**fields) -> dict:
    rule = {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}
    rule.update(fields)
    return rule


def _no_equivalents() -> list[wh.Target]:
    return []


# -- rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("resources", "sub", "called"), [
    (["pods"], "", True),
    (["pods"], "status", False),
    (["pods/status"], "status", True),
    (["pods/status"], "", False),
    (["pods/*"], "status", True),
    (["pods/*"], "", True),
    (["*"], "", True),
    (["*"], "status", False),
    (["*/*"], "status", True),
    (["*/status"], "status", True),
    (["deployments"], "", False),
])
def test_resources_and_subresources_match_as_upstream(resources, sub, called):
    hook = _hook(rules=[_rule(resources=resources)])
    assert (wh.matched_target(hook, _attrs(sub=sub), _no_equivalents) is not None) is called


@pytest.mark.parametrize(("ops", "op", "called"), [
    (["CREATE"], "CREATE", True), (["CREATE"], "UPDATE", False), (["*"], "DELETE", True),
    (["UPDATE", "DELETE"], "DELETE", True), (["CONNECT"], "CREATE", False)])
def test_operations(ops, op, called):
    hook = _hook(rules=[_rule(operations=ops)])
    assert (wh.matched_target(hook, _attrs(op=op, old={"metadata": {}}), _no_equivalents) is not None) is called


def test_scope_cluster_namespaced_and_namespaces_themselves():
    cluster, namespaced = _hook(rules=[_rule(scope="Cluster")]), _hook(rules=[_rule(scope="Namespaced")])
    pod, node = _attrs(), _attrs(target=wh.Target("", "v1", "nodes", "Node"), ns="")
    ns_update = _attrs(op="UPDATE", target=NAMESPACES, ns="team")  # a namespace's requests name it
    assert wh.matched_target(cluster, pod, _no_equivalents) is None
    assert wh.matched_target(cluster, node, _no_equivalents) is not None
    assert wh.matched_target(cluster, ns_update, _no_equivalents) is not None
    assert wh.matched_target(namespaced, pod, _no_equivalents) is not None
    assert wh.matched_target(namespaced, ns_update, _no_equivalents) is None


def test_match_policy_equivalent_sees_the_request_in_the_version_a_rule_names():
    rule = _rule(apiGroups=["apps"], apiVersions=["v1beta1"], resources=["deployments"])
    attrs = _attrs(target=DEPLOY_V1)
    equivalent = _hook(rules=[rule])
    exact = _hook(rules=[rule], matchPolicy="Exact")
    assert wh.matched_target(equivalent, attrs, lambda: [DEPLOY_V1, DEPLOY_V1BETA1]) == DEPLOY_V1BETA1
    assert wh.matched_target(exact, attrs, lambda: [DEPLOY_V1, DEPLOY_V1BETA1]) is None
    review = wh.review_request("u", equivalent, attrs, DEPLOY_V1BETA1, attrs.obj, None)["request"]
    assert review["kind"]["version"] == "v1beta1" and review["requestKind"]["version"] == "v1"
    assert review["resource"] == {"group": "apps", "version": "v1beta1", "resource": "deployments"}


def test_webhook_configurations_themselves_are_exempt():
    assert wh.exempt(wh.Target("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
                               "ValidatingWebhookConfiguration"))
    assert not wh.exempt(PODS)


# -- selectors -----------------------------------------------------------------------------

def test_object_selector_matches_the_new_or_the_old_object():
    hook = _hook(objectSelector={"matchLabels": {"app": "db"}})
    db = {"metadata": {"name": "p", "labels": {"app": "db"}}}
    web = {"metadata": {"name": "p", "labels": {"app": "web"}}}
    assert not wh.object_selected(hook, _attrs(obj=web))
    assert wh.object_selected(hook, _attrs(obj=db))
    assert wh.object_selected(hook, _attrs(op="UPDATE", obj=web, old=db))  # labels removed: still called
    assert wh.object_selected(hook, _attrs(op="DELETE", old=db))
    assert wh.object_selected(_hook(), _attrs(obj=web))  # no selector: everything


def test_namespace_selector_uses_the_namespace_labels_or_a_namespace_own_labels():
    hook = _hook(namespaceSelector={"matchExpressions": [{"key": "hooked", "operator": "In", "values": ["yes"]}]})
    labels = {"team": {"hooked": "yes"}, "other": {}}
    assert wh.namespace_selected(hook, _attrs(ns="team"), labels.get)
    assert not wh.namespace_selected(hook, _attrs(ns="other"), labels.get)
    # A cluster-scoped object is always selected.
    assert wh.namespace_selected(hook, _attrs(target=wh.Target("", "v1", "nodes", "Node"), ns=""), labels.get)
    # A namespace being created is judged by its own labels.
    new_ns = {"metadata": {"name": "fresh", "labels": {"hooked": "yes"}}}
    assert wh.namespace_selected(hook, _attrs(target=NAMESPACES, ns="", obj=new_ns), labels.get)
    with pytest.raises(ApiError) as e:
        wh.namespace_selected(hook, _attrs(ns="gone"), labels.get)
    assert e.value.code == 404


# -- the review and its answer -------------------------------------------------------------

def test_review_request_carries_what_upstream_sends():
    hook = _hook()
    attrs = _attrs(op="UPDATE", sub="status", old={"metadata": {"name": "p"}})
    attrs.dry_run, attrs.options = True, {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}
    review = wh.review_request("uid-1", hook, attrs, PODS, attrs.obj, attrs.old)
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    req = review["request"]
    assert req["uid"] == "uid-1" and req["operation"] == "UPDATE" and req["dryRun"] is True
    assert req["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert req["subResource"] == "status" and req["namespace"] == "team" and req["name"] == "p"
    assert req["userInfo"] == {"username": "alice"} and req["oldObject"] == {"metadata": {"name": "p"}}
    assert req["options"]["kind"] == "UpdateOptions"


def _answer(uid: str = "u", **response) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, **response}}


def _b64(ops: list) -> str:
    return base64.b64encode(json.dumps(ops).encode()).decode()


def test_a_patch_answer_applies_to_the_object():
    ops = [{"op": "add", "path": "/metadata/labels/hooked", "value": "yes"}]
    verdict = wh.parse_response(_answer(allowed=True, patchType="JSONPatch", patch=_b64(ops),
                                        warnings=["careful"], auditAnnotations={"k": "v"}), "u", _hook())
    assert verdict.allowed and verdict.warnings == ["careful"] and verdict.audit_annotations == {"k": "v"}
    obj = {"metadata": {"name": "p", "labels": {"app": "web"}}}
    patched = wh.apply_patch("hook.example.com", obj, verdict.patch)
    assert patched["metadata"]["labels"] == {"app": "web", "hooked": "yes"}
    assert obj["metadata"]["labels"] == {"app": "web"}  # the original is left alone


def test_a_patch_that_does_not_apply_is_a_server_error():
    with pytest.raises(ApiError) as e:
        wh.apply_patch("h", {"metadata": {}}, [{"op": "replace", "path": "/spec/x/y", "value": 1}])
    assert e.value.code == 500


@pytest.mark.parametrize(("body", "message"), [
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u"}},
     "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, "
     "Kind=AdmissionReview"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "webhook response was absent"),
    (_answer(uid="other", allowed=True), 'expected response.uid="u", got "other"'),
    (_answer(allowed=True, patch=_b64([])), "webhook returned response.patch but not response.patchType"),
    (_answer(allowed=True, patch=_b64([]), patchType="Merge"), 'webhook returned invalid response.patchType of "Merge"'),
])
def test_invalid_answers_are_refused_as_upstream_words_them(body, message):
    with pytest.raises(wh.BadResponse) as e:
        wh.parse_response(body, "u", _hook())
    assert str(e.value) == message


def test_a_validating_webhook_may_not_patch():
    with pytest.raises(wh.BadResponse, match="validating webhook may not return response.patch"):
        wh.parse_response(_answer(allowed=True, patchType="JSONPatch", patch=_b64([])), "u", _hook(False))


def test_denials_are_worded_as_upstream():
    e = wh.denial("deny.example.com", {"message": "the name is taken", "code": 403, "reason": "Forbidden"})
    assert (e.code, e.reason) == (403, "Forbidden")
    assert e.message == 'admission webhook "deny.example.com" denied the request: the name is taken'
    bare = wh.denial("deny.example.com", {})
    assert bare.code == 400
    assert bare.message == 'admission webhook "deny.example.com" denied the request without explanation'
    assert wh.denial("d", {"code": 200, "reason": "NoReason"}).message.endswith("denied the request: NoReason")


def test_call_failures_are_internal_errors_naming_the_url():
    hook = _hook()
    reason = wh.post_failure(hook.endpoint, hook.timeout, 'no endpoints available for service "svc"')
    e = wh.call_failure(hook.name, reason)
    assert e.code == 500 and e.reason == "InternalError"
    assert e.message == ('Internal error occurred: failed calling webhook "hook.example.com": failed to call webhook: '
                         'Post "https://svc.ns.svc:443/mutate?timeout=10s": no endpoints available for service "svc"')


def test_dry_run_needs_side_effects_none():
    assert wh.supports_dry_run(_hook(sideEffects="NoneOnDryRun"))
    assert not wh.supports_dry_run(_hook(sideEffects="Some"))
    assert wh.dry_run_unsupported("h").message == 'admission webhook "h" does not support dry run'


def test_configurations_are_called_in_name_order_then_in_their_own_order():
    def config(name: str, hooks: list[str]) -> dict:
        return {"metadata": {"name": name}, "webhooks": [
            {"name": h, "clientConfig": {"url": "https://x.example.com"}, "rules": []} for h in hooks]}
    hooks = wh.compile_configurations([config("b", ["b1.x.io", "b2.x.io"]), config("a", ["a1.x.io"])], True)
    assert [h.name for h in hooks] == ["a1.x.io", "b1.x.io", "b2.x.io"]
    assert hooks[0].timeout == 10 and hooks[0].failure_policy == "Fail"


# -- configuration validation --------------------------------------------------------------

def _config(**hook_fields) -> dict:
    hook = {"name": "a.b.c", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": "https://hooks.example.com/x"}, "rules": [_rule()]}
    hook.update(hook_fields)
    return {"metadata": {"name": "c"}, "webhooks": [hook]}


@pytest.mark.parametrize(("url", "detail"), [
    ("http://hooks.example.com", "'https' is the only allowed URL scheme"),
    ("https://user:pw@hooks.example.com", "user information is not permitted in the URL"),
    ("https://hooks.example.com/x?a=b", "query parameters are not permitted in the URL"),
    ("https://hooks.example.com/x#frag", "fragments are not permitted in the URL"),
    ("https:///x", "host must be specified"),
])
def test_webhook_urls_are_validated_as_upstream(url, detail):
    errs = validate_webhook_configuration(_config(clientConfig={"url": url}), True)
    assert any(detail in e.message() for e in errs), [e.message() for e in errs]
    assert all(e.field == "webhooks[0].clientConfig.url" for e in errs)


def test_valid_configuration_and_its_limits():
    assert validate_webhook_configuration(_config(), True) == []
    fields = {e.field for e in validate_webhook_configuration(_config(
        timeoutSeconds=31, sideEffects="Some",
        clientConfig={"service": {"namespace": "n", "name": "s", "path": "no-slash"}},
        matchConditions=[{"name": "x", "expression": "true"}, {"name": "x"}]), True)}
    assert fields == {"webhooks[0].timeoutSeconds", "webhooks[0].sideEffects", "webhooks[0].clientConfig.service.path",
                      "webhooks[0].matchConditions[1].name", "webhooks[0].matchConditions[1].expression"}


# -- matchConditions -----------------------------------------------------------------------

def _conditioned(policy: str, *conditions: tuple[str, str]) -> wh.Webhook:
    return _hook(failurePolicy=policy, matchConditions=[{"name": n, "expression": e} for n, e in conditions])


def test_match_conditions_all_true_call_the_webhook_and_one_false_skips_it():
    attrs = _attrs()
    request = {"operation": "CREATE", "userInfo": {"username": "alice"}}
    hook = _conditioned("Fail", ("web", "object.metadata.labels.app == 'web'"),
                        ("alice", "request.userInfo.username == 'alice'"))
    assert wh.conditions_match(hook, attrs, request)
    skip = _conditioned("Fail", ("web", "object.metadata.labels.app == 'web'"), ("bob", "request.userInfo.username == 'bob'"))
    assert not wh.conditions_match(skip, attrs, request)


def test_a_match_condition_error_refuses_under_fail_and_skips_under_ignore():
    attrs = _attrs()
    failing = ("missing", "object.spec.nothing == 'x'")
    assert not wh.conditions_match(_conditioned("Ignore", failing), attrs, {})
    with pytest.raises(ApiError) as e:
        wh.conditions_match(_conditioned("Fail", failing), attrs, {})
    assert e.value.code == 403 and 'failed to evaluate match conditions for webhook "hook.example.com"' in e.value.message
    # A false condition wins over an error: the webhook is simply not called.
    assert not wh.conditions_match(_conditioned("Fail", failing, ("no", "false")), attrs, {})


def test_a_match_condition_that_does_not_compile_is_refused_when_stored():
    errs = validate_webhook_configuration(_config(matchConditions=[{"name": "bad", "expression": "object.("}]), True)
    assert [e.field for e in errs] == ["webhooks[0].matchConditions[0].expression"]
    assert "compilation failed" in errs[0].message()
