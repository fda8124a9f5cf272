"""The ValidatingAdmissionPolicy admission step (kybernetes.apiserver.admissionpolicy)
over a cache of policies, bindings, params and namespaces: Deny, Warn and Audit
actions, params by name and selector, the authorizer, and what it leaves alone."""

from __future__ import annotations

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.rbac import Decision
from kybernetes.api.registry import Registry
from kybernetes.apiserver.admissionpolicy import BINDING_PREFIX, POLICY_PREFIX, PolicyAdmission
from kybernetes.apiserver.resources import WriteContext
from kybernetes.apiserver.watchcache import CachedObject

ADMIN = Requester("alice", groups=("dev", "system:authenticated"))


class FakeCache:
    def __init__(self) -> None:
        self.objs: dict[str, CachedObject] = {}
        self.listeners: list = []
        self.rev = 0

    def put(self, key: str, obj: dict) -> None:
        self.rev += 1
        self.objs[key] = CachedObject(key, None, orjson.dumps(obj), self.rev)
        for fn in self.listeners:
            fn(type("Ev", (), {"key": key})())

    def add_listener(self, fn) -> None:
        self.listeners.append(fn)

    def list(self, prefix: str) -> list[CachedObject]:
        return [v for k, v in sorted(self.objs.items()) if k.startswith(prefix)]

    def get(self, key: str) -> CachedObject | None:
        return self.objs.get(key)


class FakeAuthorizer:
    def __init__(self) -> None:
        self.asked: list = []

    def authorize(self, user, attrs) -> Decision:
        self.asked.append(attrs)
        return Decision(attrs.verb == "get", "fake")


def setup(validations: list[dict], actions: list[str], **spec: object) -> tuple[PolicyAdmission, FakeCache]:
    cache = FakeCache()
    cache.put("/registry/core/namespaces/ns", {"metadata": {"name": "ns", "labels": {"team": "a"}}})
    cache.put(POLICY_PREFIX + "p", {"metadata": {"name": "p"}, "spec": {
        "failurePolicy": "Fail", "validations": validations, **spec,
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["*"],
                                                "resources": ["configmaps"]}]}}})
    binding_spec: dict = {"policyName": "p", "validationActions": actions}
    if "paramRef" in spec:
        binding_spec["paramRef"] = spec.pop("paramRef")
    cache.put(BINDING_PREFIX + "b", {"metadata": {"name": "b"}, "spec": binding_spec})
    return PolicyAdmission(cache, Registry(), FakeAuthorizer()), cache


def configmap(data: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": data}


INFO = Registry().get("", "v1", "configmaps")
SIZE_RULE = [{"expression": "size(object.data) <= 1", "message": "one key at most"}]


def test_deny_refuses_with_upstreams_wording_and_code() -> None:
    pa, _ = setup(SIZE_RULE, ["Deny"])
    pa.admit("create", INFO, "", configmap({"a": "1"}), None, WriteContext(requester=ADMIN))
    with pytest.raises(ApiError) as e:
        pa.admit("create", INFO, "", configmap({"a": "1", "b": "2"}), None, WriteContext(requester=ADMIN))
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message == ('configmaps "cm" is forbidden: ValidatingAdmissionPolicy \'p\' with binding \'b\' '
                               "denied request: one key at most")


def test_warn_and_audit_admit_and_report() -> None:
    pa, _ = setup(SIZE_RULE, ["Warn", "Audit"],
                  auditAnnotations=[{"key": "size", "valueExpression": "string(size(object.data))"}])
    ctx = WriteContext(requester=ADMIN)
    pa.admit("update", INFO, "", configmap({"a": "1", "b": "2"}), configmap({}), ctx)
    assert ctx.warnings == ["Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': one key at most"]
    assert ctx.audit_annotations["p/size"] == "2"
    failure = orjson.loads(ctx.audit_annotations["validation.policy.admission.k8s.io/validation_failure"])
    assert failure[0]["message"] == "one key at most" and failure[0]["binding"] == "b"


def test_params_by_name_and_selector() -> None:
    rule = [{"expression": "size(object.data) <= int(params.data.max)", "messageExpression": "'max ' + params.data.max"}]
    pa, cache = setup(rule, ["Deny"], paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
                      paramRef={"name": "limits", "parameterNotFoundAction": "Deny"})
    with pytest.raises(ApiError, match="no params found for policy binding with `Deny` parameterNotFoundAction"):
        pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=ADMIN))
    cache.put("/registry/core/configmaps/ns/limits", {"metadata": {"name": "limits", "namespace": "ns"},
                                                      "data": {"max": "1"}})
    pa.admit("create", INFO, "", configmap({"a": "1"}), None, WriteContext(requester=ADMIN))
    with pytest.raises(ApiError, match="denied request: max 1"):
        pa.admit("create", INFO, "", configmap({"a": "1", "b": "2"}), None, WriteContext(requester=ADMIN))
    pa, cache = setup(rule, ["Deny"], paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
                      paramRef={"selector": {"matchLabels": {"limit": "yes"}}, "parameterNotFoundAction": "Allow"})
    pa.admit("create", INFO, "", configmap({"a": "1", "b": "2"}), None, WriteContext(requester=ADMIN))  # none: allow
    cache.put("/registry/core/configmaps/ns/l1", {"metadata": {"name": "l1", "labels": {"limit": "yes"}},
                                                  "data": {"max": "5"}})
    cache.put("/registry/core/configmaps/ns/l2", {"metadata": {"name": "l2", "labels": {"limit": "yes"}},
                                                  "data": {"max": "1"}})
    with pytest.raises(ApiError, match="denied request: max 1"):  # every selected param must pass
        pa.admit("create", INFO, "", configmap({"a": "1", "b": "2"}), None, WriteContext(requester=ADMIN))


def test_authorizer_asks_for_the_requester() -> None:
    rule = [{"expression": "authorizer.group('').resource('secrets').namespace('ns').check('get').allowed() && "
                           "!authorizer.group('').resource('secrets').check('delete').allowed()"}]
    pa, _ = setup(rule, ["Deny"])
    pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=ADMIN))
    asked = pa.authorizer.asked
    assert [(a.user, a.verb, a.resource, a.namespace) for a in asked] == [
        ("alice", "get", "secrets", "ns"), ("alice", "delete", "secrets", "")]


def test_server_writes_other_resources_and_policy_kinds_are_not_judged() -> None:
    pa, _ = setup([{"expression": "false"}], ["Deny"])
    pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=None))
    pa.admit("create", Registry().get("", "v1", "secrets"), "", configmap({}), None, WriteContext(requester=ADMIN))
    with pytest.raises(ApiError):
        pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=ADMIN))


def test_a_new_binding_takes_effect_and_a_deleted_policy_stops() -> None:
    pa, cache = setup([{"expression": "false"}], ["Warn"])
    ctx = WriteContext(requester=ADMIN)
    pa.admit("create", INFO, "", configmap({}), None, ctx)
    assert len(ctx.warnings) == 1
    cache.put(BINDING_PREFIX + "b", {"metadata": {"name": "b"}, "spec": {"policyName": "p",
                                                                        "validationActions": ["Deny"]}})
    with pytest.raises(ApiError):
        pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=ADMIN))
    del cache.objs[POLICY_PREFIX + "p"]
    cache.put("/registry/core/configmaps/ns/x", {"metadata": {"name": "x"}})
    cache.listeners[0](type("Ev", (), {"key": POLICY_PREFIX + "p"})())
    pa.admit("create", INFO, "", configmap({}), None, WriteContext(requester=ADMIN))
