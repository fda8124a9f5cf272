"""The PodSecurity admission shell (kybernetes/apiserver/podsecurity.py) over a stand-in cache:
which requests it judges, what it refuses, warns and records for the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from kybernetes.api import podsecurity as ps
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.registry import Registry
from kybernetes.apiserver.podsecurity import PodSecurityAdmission
from kybernetes.apiserver.resources import WriteContext

REG = Registry()
PODS = REG.get("", "v1", "pods")
NAMESPACES = REG.get("", "v1", "namespaces")
DEPLOYMENTS = REG.get("apps", "v1", "deployments")


@dataclass
class Cached:
    key: str
    obj: dict[str, Any]


class Cache:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}

    def put(self, key: str, obj: dict[str, Any]) -> None:
        self.objects[key] = obj

    def get(self, key: str) -> Cached | None:
        return Cached(key, self.objects[key]) if key in self.objects else None

    def list(self, prefix: str) -> list[Cached]:
        return [Cached(k, v) for k, v in sorted(self.objects.items()) if k.startswith(prefix)]


def namespace(cache: Cache, name: str, **labels: str) -> None:
    cache.put(NAMESPACES.key(None, name), {"metadata": {"name": name, "labels": {
        f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}}})


def pod(name: str = "p", ns: str = "ns", token: str = "abcde", **sc: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "pause",
                         "volumeMounts": [{"name": f"kube-api-access-{token}", "mountPath": "/var/run"}]}
    if sc:
        c["securityContext"] = sc
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [c], "volumes": [{"name": f"kube-api-access-{token}", "projected": {}}]}}


@pytest.fixture
def setup() -> tuple[Cache, PodSecurityAdmission]:
    cache = Cache()
    return cache, PodSecurityAdmission(REG, cache)  # type: ignore[arg-type]


def test_unlabelled_namespaces_are_not_judged(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns")
    ctx = WriteContext()
    adm.admit("create", PODS, "", pod(privileged=True), None, ctx)
    assert ctx.warnings == [] and ctx.audit_annotations == {}


def test_enforce_refuses_with_upstreams_message_and_records_the_policy(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns", enforce="baseline", audit="baseline")
    ctx = WriteContext()
    with pytest.raises(ApiError) as e:
        adm.admit("create", PODS, "", pod("x", privileged=True), None, ctx)
    assert e.value.code == 403
    assert e.value.message == ('pods "x" is forbidden: violates PodSecurity "baseline:latest": '
                               'privileged (container "c" must not set securityContext.privileged=true)')
    assert ctx.audit_annotations == {
        ps.ENFORCE_POLICY: "baseline:latest",
        ps.AUDIT_VIOLATIONS: 'would violate PodSecurity "baseline:latest": '
                             'privileged (container "c" must not set securityContext.privileged=true)'}
    assert ctx.warnings == []  # a refused request is not also warned about


def test_warn_mode_warns_and_admits(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns", warn="restricted", warn_version="v1.30")
    ctx = WriteContext()
    adm.admit("create", PODS, "", pod(), None, ctx)
    assert len(ctx.warnings) == 1
    assert ctx.warnings[0].startswith('would violate PodSecurity "restricted:v1.30": allowPrivilegeEscalation != false')


def test_evaluations_are_remembered_across_token_volume_names_but_not_other_volumes(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns", warn="restricted")
    first, second = WriteContext(), WriteContext()
    adm.admit("create", PODS, "", pod("a", token="aaaaa"), None, first)
    adm.admit("create", PODS, "", pod("b", token="bbbbb"), None, second)
    assert first.warnings == second.warnings and len(adm._memo) == 1
    host = pod("h")
    host["spec"]["volumes"].append({"name": "root", "hostPath": {"path": "/"}})
    ctx = WriteContext()
    adm.admit("create", PODS, "", host, None, ctx)
    assert 'restricted volume types (volume "root" uses restricted volume type "hostPath")' in ctx.warnings[0]
    renamed = pod("h2")
    renamed["spec"]["volumes"].append({"name": "other", "hostPath": {"path": "/"}})
    ctx = WriteContext()
    adm.admit("create", PODS, "", renamed, None, ctx)
    assert 'volume "other"' in ctx.warnings[0]


def test_updates_are_judged_only_when_they_matter(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns", enforce="baseline")
    old = pod(privileged=True)  # admitted before the label
    relabelled = pod(privileged=True)
    relabelled["metadata"]["labels"] = {"a": "b"}
    adm.admit("update", PODS, "", relabelled, old, WriteContext())
    adm.admit("update", PODS, "status", relabelled, old, WriteContext())
    debug = pod(privileged=True)
    debug["spec"]["ephemeralContainers"] = [{"name": "dbg", "image": "busybox"}]
    with pytest.raises(ApiError):
        adm.admit("update", PODS, "ephemeralcontainers", debug, old, WriteContext())


def test_exempt_users_and_namespaces(setup) -> None:
    cache, adm = setup
    adm.config = ps.Config(exempt_usernames=frozenset({"ops"}), exempt_namespaces=frozenset({"free"}))
    namespace(cache, "ns", enforce="restricted")
    namespace(cache, "free", enforce="restricted")
    ctx = WriteContext(requester=Requester("ops"))
    adm.admit("create", PODS, "", pod(privileged=True), None, ctx)
    assert ctx.audit_annotations == {ps.EXEMPT: "user"}
    adm.admit("create", PODS, "", pod(ns="free", privileged=True), None, WriteContext())
    with pytest.raises(ApiError):
        adm.admit("create", PODS, "", pod(privileged=True), None, WriteContext(requester=Requester("dev")))


def test_workloads_warn_from_the_template(setup) -> None:
    cache, adm = setup
    namespace(cache, "ns", enforce="baseline")
    dep = {"metadata": {"name": "d", "namespace": "ns"},
           "spec": {"template": {"metadata": {}, "spec": pod(privileged=True)["spec"]}}}
    ctx = WriteContext()
    adm.admit("create", DEPLOYMENTS, "", dep, None, ctx)
    assert ctx.warnings == ['would violate PodSecurity "baseline:latest": '
                            'privileged (container "c" must not set securityContext.privileged=true)']
    ctx = WriteContext()
    adm.admit("update", DEPLOYMENTS, "status", dep, dep, ctx)
    assert ctx.warnings == []
    scaled = {**dep, "spec": {**dep["spec"], "replicas": 3}}
    adm.admit("update", DEPLOYMENTS, "", scaled, dep, ctx)
    assert ctx.warnings == []
    changed = {**dep, "spec": {**dep["spec"], "template": {"metadata": {"labels": {"v": "2"}},
                                                           "spec": dep["spec"]["template"]["spec"]}}}
    adm.admit("update", DEPLOYMENTS, "", changed, dep, ctx)
    assert len(ctx.warnings) == 1


def test_namespace_labels_must_parse(setup) -> None:
    _, adm = setup
    bad = {"metadata": {"name": "ns", "labels": {"pod-security.kubernetes.io/audit-version": "v2.0"}}}
    with pytest.raises(ApiError) as e:
        adm.admit("create", NAMESPACES, "", bad, None, WriteContext())
    assert e.value.code == 422
    assert e.value.message == ('Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/audit-version]: '
                               'Invalid value: "v2.0": must be "latest" or "v1.x"')
