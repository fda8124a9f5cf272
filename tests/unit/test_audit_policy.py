"""The audit policy checker and event building (api/audit.py), against upstream's rules."""

from __future__ import annotations

import pytest
import yaml

from kybernetes.api import audit
from kybernetes.api.audit import PolicyChecker, PolicyError, parse_policy
from kybernetes.api.rbac import Attributes
from kybernetes.apiserver.authz import request_attributes


def _policy(rules: list[dict], **top) -> PolicyChecker:
    return PolicyChecker(parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": rules, **top}))


def _req(method: str, path: str, user: str = "alice", groups: tuple[str, ...] = ("system:authenticated",),
         **query: str) -> Attributes:
    return request_attributes(user, groups, method, path, query)


def test_first_matching_rule_wins_and_no_match_is_none():
    checker = _policy([
        {"level": "None", "users": ["bob"]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}]},
        {"level": "Metadata"},
    ])
    cm = _req("POST", "/api/v1/namespaces/ns/configmaps")
    assert checker.decide(cm).level == "RequestResponse"
    assert checker.decide(_req("POST", "/api/v1/namespaces/ns/configmaps", user="bob")).level == "None"
    assert checker.decide(_req("GET", "/api/v1/pods")).level == "Metadata"
    assert _policy([{"level": "Metadata", "verbs": ["delete"]}]).decide(cm).level == "None"


def test_users_groups_verbs_and_namespaces():
    checker = _policy([{"level": "Request", "userGroups": ["devs"], "verbs": ["create", "delete"],
                        "namespaces": ["team"]}])
    dev = ("devs", "system:authenticated")
    assert checker.decide(_req("POST", "/api/v1/namespaces/team/pods", groups=dev)).level == "Request"
    assert checker.decide(_req("DELETE", "/api/v1/namespaces/team/pods/p", groups=dev)).level == "Request"
    # deletecollection is its own verb, as upstream's RequestInfo names it.
    assert checker.decide(_req("DELETE", "/api/v1/namespaces/team/pods", groups=dev)).level == "None"
    assert checker.decide(_req("POST", "/api/v1/namespaces/other/pods", groups=dev)).level == "None"
    assert checker.decide(_req("POST", "/api/v1/namespaces/team/pods")).level == "None"
    # The empty namespace names cluster-scoped resources.
    cluster = _policy([{"level": "Metadata", "namespaces": [""]}])
    assert cluster.decide(_req("POST", "/api/v1/nodes")).level == "Metadata"
    assert cluster.decide(_req("POST", "/api/v1/namespaces/a/pods")).level == "None"


@pytest.mark.parametrize(("resources", "path", "matched"), [
    (["pods"], "/api/v1/namespaces/a/pods/p", True),
    (["pods"], "/api/v1/namespaces/a/pods/p/log", False),
    (["pods/log"], "/api/v1/namespaces/a/pods/p/log", True),
    (["pods/*"], "/api/v1/namespaces/a/pods/p/status", True),
    # As upstream's checker (not its doc comment): "pods/*" matches the pod itself too.
    (["pods/*"], "/api/v1/namespaces/a/pods/p", True),
    (["pods/*"], "/api/v1/namespaces/a/services/s/status", False),
    (["*/status"], "/api/v1/namespaces/a/services/s/status", True),
    (["*"], "/api/v1/namespaces/a/pods/p/exec", True),
    (["deployments"], "/apis/apps/v1/namespaces/a/deployments/d", False),  # core group only
])
def test_resource_forms(resources, path, matched):
    checker = _policy([{"level": "Metadata", "resources": [{"group": "", "resources": resources}]}])
    assert (checker.decide(_req("GET", path)).level == "Metadata") is matched


def test_group_without_resources_and_resource_names():
    apps = _policy([{"level": "Metadata", "resources": [{"group": "apps"}]}])
    assert apps.decide(_req("GET", "/apis/apps/v1/namespaces/a/deployments/d/scale")).level == "Metadata"
    assert apps.decide(_req("GET", "/api/v1/namespaces/a/pods/p")).level == "None"
    named = _policy([{"level": "Metadata",
                      "resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["cfg"]}]}])
    assert named.decide(_req("PUT", "/api/v1/namespaces/a/configmaps/cfg")).level == "Metadata"
    assert named.decide(_req("PUT", "/api/v1/namespaces/a/configmaps/other")).level == "None"


def test_non_resource_urls():
    checker = _policy([{"level": "Metadata", "nonResourceURLs": ["/healthz*", "/version"]}])
    assert checker.decide(_req("GET", "/healthz/ping")).level == "Metadata"
    assert checker.decide(_req("GET", "/version")).level == "Metadata"
    assert checker.decide(_req("GET", "/version/x")).level == "None"
    # A resource request never matches a non-resource rule.
    assert checker.decide(_req("GET", "/api/v1/namespaces/a/pods")).level == "None"


def test_omit_stages_union_and_managed_fields_override():
    checker = _policy([{"level": "Metadata", "users": ["a"], "omitStages": ["ResponseStarted"],
                        "omitManagedFields": False},
                       {"level": "Request"}],
                      omitStages=["RequestReceived"], omitManagedFields=True)
    first = checker.decide(_req("GET", "/api/v1/pods", user="a"))
    assert first.omit_stages == {"RequestReceived", "ResponseStarted"} and not first.omit_managed_fields
    second = checker.decide(_req("GET", "/api/v1/pods"))
    assert second.omit_stages == {"RequestReceived"} and second.omit_managed_fields


@pytest.mark.parametrize(("doc", "words"), [
    ({"kind": "Policy", "apiVersion": "v1", "rules": []}, "apiVersion"),
    ({"rules": [{"level": "Loud"}]}, 'rules[0].level: Unsupported value: "Loud"'),
    ({"rules": [{}]}, "rules[0].level: Required value"),
    ({"rules": [{"level": "None", "nonResourceURLs": ["/x"], "resources": [{"group": ""}]}]}, "both"),
    ({"rules": [{"level": "None", "nonResourceURLs": ["/a*/b"]}]}, "nonResourceURLs[0]"),
    ({"rules": [{"level": "None", "resources": [{"resourceNames": ["x"]}]}]}, "requires at least one resource"),
    ({"rules": [{"level": "None", "resources": [{"resources": ["p*ds"]}]}]}, "wildcard"),
    ({"omitStages": ["Later"], "rules": []}, 'omitStages[0]: Unsupported value: "Later"'),
])
def test_bad_policies_are_refused(doc, words):
    full = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", **doc}
    with pytest.raises(PolicyError, match=None) as e:
        parse_policy(full)
    assert words in str(e.value)


def test_default_policy_logs_writes_at_metadata_and_secrets_never_above():
    checker = PolicyChecker(audit.default_policy())
    for method, path in (("POST", "/api/v1/namespaces/a/configmaps"), ("PUT", "/api/v1/namespaces/a/secrets/s"),
                         ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d"), ("DELETE", "/api/v1/nodes/n"),
                         ("DELETE", "/api/v1/namespaces/a/pods"),
                         ("POST", "/api/v1/namespaces/a/serviceaccounts/sa/token"),
                         ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")):
        decision = checker.decide(_req(method, path))
        assert decision.level == "Metadata", (method, path)
        assert "RequestReceived" in decision.omit_stages
    for method, path in (("GET", "/api/v1/namespaces/a/secrets/s"), ("GET", "/api/v1/pods"),
                         ("GET", "/api/v1/pods", ), ("GET", "/healthz"), ("GET", "/apis"), ("GET", "/version"),
                         ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n"),
                         ("POST", "/api/v1/namespaces/a/events")):
        assert checker.decide(_req(method, path)).level == "None", (method, path)
    assert checker.decide(_req("GET", "/api/v1/pods", watch="true")).level == "None"
    # The shipped text is a valid policy a user can start from.
    assert parse_policy(yaml.safe_load(audit.DEFAULT_POLICY_YAML)).rules


def test_event_fields_in_upstream_order():
    attrs = _req("POST", "/apis/apps/v1/namespaces/web/deployments")
    base = audit.new_event("id-1", "Metadata", attrs, "/apis/apps/v1/namespaces/web/deployments?dryRun=All",
                           audit.user_info("alice", "", ["devs"], {}), ["10.0.0.1"], "kubectl/v1.37")
    audit.fill_object_ref(base, {"metadata": {"name": "d", "uid": "u-1", "resourceVersion": "7"}})
    ev = audit.stage_event(base, "ResponseComplete", "2026-01-01T00:00:00.000001Z", "2026-01-01T00:00:00.000002Z",
                           impersonated=audit.user_info("bob"), status=audit.response_status(201),
                           annotations={audit.DECISION: "allow", audit.REASON: ""})
    assert list(ev) == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user",
                        "impersonatedUser", "sourceIPs", "userAgent", "objectRef", "responseStatus",
                        "requestReceivedTimestamp", "stageTimestamp", "annotations"]
    assert ev["objectRef"] == {"resource": "deployments", "namespace": "web", "name": "d", "uid": "u-1",
                               "apiGroup": "apps", "apiVersion": "v1", "resourceVersion": "7"}
    assert ev["user"] == {"username": "alice", "groups": ["devs"]}
    assert ev["responseStatus"] == {"metadata": {}, "code": 201}
    assert ev["verb"] == "create" and ev["kind"] == "Event" and ev["apiVersion"] == "audit.k8s.io/v1"


def test_event_details():
    failure = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": 'x "y" not found',
               "reason": "NotFound", "details": {"name": "y"}, "code": 404}
    assert audit.response_status(404, failure) == {"metadata": {}, "status": "Failure", "message": 'x "y" not found',
                                                   "reason": "NotFound", "details": {"name": "y"}, "code": 404}
    assert audit.micro_time(0.5) == "1970-01-01T00:00:00.500000Z"
    assert audit.source_ips("1.1.1.1, 2.2.2.2", "3.3.3.3", "127.0.0.1") == ["1.1.1.1", "2.2.2.2", "3.3.3.3",
                                                                            "127.0.0.1"]
    assert audit.source_ips("", "", "127.0.0.1") == ["127.0.0.1"]
    assert audit.source_ips("10.0.0.9", "", "10.0.0.9") == ["10.0.0.9"]
    assert audit.truncate_user_agent("a" * 2000) == "a" * 1024 + "...TRUNCATED"
    obj = {"metadata": {"name": "n", "managedFields": [{"manager": "m"}]}}
    lst = {"items": [obj], "metadata": {}}
    assert audit.without_managed_fields(obj) == {"metadata": {"name": "n"}}
    assert audit.without_managed_fields(lst)["items"] == [{"metadata": {"name": "n"}}]
    assert obj["metadata"]["managedFields"]  # the original is left alone
    # Non-resource requests carry no objectRef; the verb is the lower-cased method.
    base = audit.new_event("i", "Metadata", _req("GET", "/healthz"), "/healthz", {}, [], "")
    assert "objectRef" not in base and base["verb"] == "get"
    assert audit.long_running(_req("GET", "/api/v1/pods", watch="1"))
    assert audit.long_running(_req("GET", "/api/v1/namespaces/a/pods/p/log"))
    assert not audit.long_running(_req("GET", "/api/v1/pods"))
    assert audit.event_list([b'{"a":1}', b'{"b":2}']) == (
        b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"a":1},{"b":2}]}')
