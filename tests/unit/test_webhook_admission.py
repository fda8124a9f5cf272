"""The webhook admission shell without a server or network: the order webhooks are
called in, reinvocation, failurePolicy, warnings and refusals, and how a Service is
resolved to a ready endpoint (kybernetes/apiserver/webhooks.py, the HTTP call stubbed)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.registry import Registry
from kybernetes.api.webhooks import ServiceRef
from kybernetes.apiserver import webhooks as shell
from kybernetes.apiserver.resources import WriteContext

PODS = Registry().get("", "v1", "pods")
MUT = "/registry/admissionregistration.k8s.io/mutatingwebhookconfigurations/"
VAL = "/registry/admissionregistration.k8s.io/validatingwebhookconfigurations/"


class FakeCache:
    def __init__(self, objs: dict[str, dict]) -> None:
        self.objs = objs

    def add_listener(self, fn: Any) -> None:
        pass

    def list(self, prefix: str) -> list[Any]:
        return [SimpleNamespace(obj=o) for k, o in sorted(self.objs.items()) if k.startswith(prefix)]

    def get(self, key: str) -> Any:
        return SimpleNamespace(obj=self.objs[key]) if key in self.objs else None


def _hook(name: str, path: str, **extra: Any) -> dict:
    return {"name": name, "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
            "clientConfig": {"url": f"https://hooks.example.com{path}"}, "timeoutSeconds": 10,
            "rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            **extra}


def _admission(objs: dict[str, dict], answer: Any) -> tuple[shell.WebhookAdmission, list[str]]:
    service = SimpleNamespace(external_mutation=[], external_validation=[],
                              apply_defaults=lambda info, obj: None, kinds=None)
    admission = shell.WebhookAdmission(Registry(), FakeCache(objs), service)  # type: ignore[arg-type]
    called: list[str] = []

    async def post(hook: Any, review: dict) -> Any:
        called.append(hook.name)
        response = answer(hook, review["request"])
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], **response}}

    admission._post = post  # type: ignore[method-assign]
    return admission, called


def _add_label(key: str) -> Any:
    def answer(hook: Any, request: dict) -> dict:
        labels = request["object"]["metadata"].get("labels") or {}
        if key in labels:
            return {"allowed": True}
        ops = [{"op": "add", "path": f"/metadata/labels/{key}", "value": "y"}]
        return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}
    return answer


def _pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "labels": {}}}


async def test_a_webhook_marked_if_needed_is_called_again_when_a_later_one_changed_the_object():
    objs = {MUT + "a": {"metadata": {"name": "a"}, "webhooks": [_hook("first.x.io", "/a", reinvocationPolicy="IfNeeded")]},
            MUT + "b": {"metadata": {"name": "b"}, "webhooks": [_hook("second.x.io", "/b")]}}
    labels = {"first.x.io": "a", "second.x.io": "b"}
    admission, called = _admission(objs, lambda hook, req: _add_label(labels[hook.name])(hook, req))
    pod = _pod()
    await admission.mutate("CREATE", PODS, "", pod, None, WriteContext())
    assert pod["metadata"]["labels"] == {"a": "y", "b": "y"}
    assert called == ["first.x.io", "second.x.io", "first.x.io"]
    # Never (the default): each is called once.
    objs[MUT + "a"]["webhooks"][0]["reinvocationPolicy"] = "Never"
    admission, called = _admission(objs, lambda hook, req: _add_label(labels[hook.name])(hook, req))
    await admission.mutate("CREATE", PODS, "", _pod(), None, WriteContext())
    assert called == ["first.x.io", "second.x.io"]


async def test_validating_webhooks_refuse_warn_and_record_audit_annotations():
    objs = {VAL + "v": {"metadata": {"name": "v"}, "webhooks": [_hook("ok.x.io", "/ok"), _hook("no.x.io", "/no")]}}

    def answer(hook: Any, request: dict) -> dict:
        if hook.name == "no.x.io" and request["name"] == "bad":
            return {"allowed": False, "status": {"message": "not that one", "code": 422}}
        return {"allowed": True, "warnings": [f"{hook.name} looked"], "auditAnnotations": {"k": "v"}}

    admission, called = _admission(objs, answer)
    ctx = WriteContext()
    await admission.validate("CREATE", PODS, "", _pod(), None, ctx)
    assert sorted(called) == ["no.x.io", "ok.x.io"] and sorted(ctx.warnings) == ["no.x.io looked", "ok.x.io looked"]
    if hasattr(ctx, "audit_annotations"):
        assert ctx.audit_annotations["ok.x.io/k"] == "v"
    bad = _pod()
    bad["metadata"]["name"] = "bad"
    with pytest.raises(ApiError) as e:
        await admission.validate("CREATE", PODS, "", bad, None, WriteContext())
    assert e.value.code == 422 and e.value.message == 'admission webhook "no.x.io" denied the request: not that one'


async def test_failure_policy_fail_refuses_and_ignore_lets_the_write_through():
    objs = {VAL + "v": {"metadata": {"name": "v"}, "webhooks": [_hook("down.x.io", "/down")]}}
    admission, _called = _admission(objs, lambda hook, req: {"allowed": True})

    async def down(hook: Any, review: dict) -> Any:
        raise shell.CallFailed('failed to call webhook: Post "https://hooks.example.com/down?timeout=10s": '
                               "context deadline exceeded")

    admission._post = down  # type: ignore[method-assign]
    with pytest.raises(ApiError) as e:
        await admission.validate("CREATE", PODS, "", _pod(), None, WriteContext())
    assert e.value.code == 500 and e.value.message.startswith(
        'Internal error occurred: failed calling webhook "down.x.io": failed to call webhook: Post ')
    objs[VAL + "v"]["webhooks"][0]["failurePolicy"] = "Ignore"
    admission._dirty = True
    await admission.validate("CREATE", PODS, "", _pod(), None, WriteContext())


async def test_a_dry_run_is_sent_to_no_webhook_with_side_effects():
    objs = {VAL + "v": {"metadata": {"name": "v"}, "webhooks": [_hook("fx.x.io", "/fx", sideEffects="Some")]}}
    admission, called = _admission(objs, lambda hook, req: {"allowed": True})
    with pytest.raises(ApiError) as e:
        await admission.validate("CREATE", PODS, "", _pod(), None, WriteContext(dry_run=True))
    assert e.value.code == 400 and e.value.message == 'admission webhook "fx.x.io" does not support dry run'
    assert called == []


def _slice(name: str, port_name: str, port: int, endpoints: list[tuple[str, bool]]) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/service-name": "hooks"}},
            "ports": [{"name": port_name, "port": port}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": r}} for a, r in endpoints]}


def test_a_service_resolves_to_a_ready_endpoint_behind_its_port():
    svc = {"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443},
                              {"name": "metrics", "port": 9090}]}}
    objs = {"/registry/core/services/ns/hooks": svc,
            "/registry/discovery.k8s.io/endpointslices/ns/hooks-1": _slice(
                "hooks-1", "https", 8443, [("10.0.0.1", False), ("10.0.0.2", True)]),
            "/registry/discovery.k8s.io/endpointslices/ns/hooks-2": _slice("hooks-2", "metrics", 9090,
                                                                           [("10.0.0.3", True)])}
    admission, _ = _admission(objs, lambda hook, req: {})
    assert admission.service_address(ServiceRef("ns", "hooks", "/x", 443)) == ("10.0.0.2", 8443)
    with pytest.raises(shell.CallFailed, match='no service port 8443 found for service "hooks"'):
        admission.service_address(ServiceRef("ns", "hooks", "/x", 8443))
    with pytest.raises(shell.CallFailed, match='service "other" not found'):
        admission.service_address(ServiceRef("ns", "other", "/x", 443))
    objs["/registry/discovery.k8s.io/endpointslices/ns/hooks-1"]["endpoints"][1]["conditions"]["ready"] = False
    with pytest.raises(shell.CallFailed, match='no endpoints available for service "hooks"'):
        admission.service_address(ServiceRef("ns", "hooks", "/x", 443))


def _patching(ops: list[dict]) -> Any:
    def answer(hook: Any, request: dict) -> dict:
        return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}
    return answer


async def test_a_patch_is_decoded_as_the_kind_unknown_fields_dropped_wrong_types_refused():
    objs = {MUT + "m": {"metadata": {"name": "m"}, "webhooks": [_hook("m.x.io", "/m")]}}
    admission, _ = _admission(objs, _patching([{"op": "add", "path": "/metadata/bogus", "value": "x"},
                                               {"op": "add", "path": "/metadata/labels/ok", "value": "y"}]))
    pod = _pod()
    await admission.mutate("CREATE", PODS, "", pod, None, WriteContext())
    assert pod["metadata"]["labels"] == {"ok": "y"} and "bogus" not in pod["metadata"]
    admission, _ = _admission(objs, _patching([{"op": "add", "path": "/metadata/labels/n", "value": 5}]))
    with pytest.raises(ApiError) as e:
        await admission.mutate("CREATE", PODS, "", _pod(), None, WriteContext())
    assert e.value.code == 500 and "cannot unmarshal number" in e.value.message


async def test_a_delete_sends_the_old_object_and_may_not_be_patched():
    seen: list[dict] = []
    objs = {MUT + "m": {"metadata": {"name": "m"}, "webhooks": [_hook("m.x.io", "/m")]},
            VAL + "v": {"metadata": {"name": "v"}, "webhooks": [_hook("v.x.io", "/v")]}}

    def answer(hook: Any, request: dict) -> dict:
        seen.append(request)
        return {"allowed": True}

    admission, _ = _admission(objs, answer)
    await admission.validate("DELETE", PODS, "", None, _pod(), WriteContext())
    assert seen[0]["operation"] == "DELETE" and seen[0]["object"] is None
    assert seen[0]["oldObject"]["metadata"]["name"] == "p" and seen[0]["options"]["kind"] == "DeleteOptions"
    admission, _ = _admission(objs, _patching([{"op": "add", "path": "/metadata/labels/x", "value": "y"}]))
    with pytest.raises(ApiError) as e:
        await admission.mutate("DELETE", PODS, "", None, _pod(), WriteContext())
    assert e.value.code == 500 and "attempted to modify the object" in e.value.message
