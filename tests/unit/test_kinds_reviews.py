"""The review kinds answer a create from who is asking; nothing about them is stored."""

from __future__ import annotations

from kybernetes.api.kinds import strategy_for
from kybernetes.api.kinds.base import Requester
from kybernetes.api.registry import builtin_resources


def _info(kind: str):
    return next(i for i in builtin_resources() if i.kind == kind)


class _Ctx:
    def __init__(self, who: Requester, tokens: dict[str, Requester] | None = None) -> None:
        self.requester = who
        self.tokens = tokens or {}

    def authenticate_token(self, token: str) -> Requester | None:
        return self.tokens.get(token)

    def review_token(self, token: str, audiences: list[str]) -> tuple[Requester | None, list[str], str]:
        found = self.tokens.get(token)
        return (found, [], "") if found is not None else (None, [], "invalid bearer token")


ALICE = Requester("alice", uid="u-1", groups=("dev", "system:authenticated"), extra=(("scopes", ("a", "b")),))


def test_self_subject_review_reports_the_requester_without_empty_fields():
    info = _info("SelfSubjectReview")
    out = strategy_for(info).review(info, {}, _Ctx(ALICE))
    assert out["apiVersion"] == "authentication.k8s.io/v1" and out["kind"] == "SelfSubjectReview"
    assert out["status"]["userInfo"] == {"username": "alice", "uid": "u-1",
                                         "groups": ["dev", "system:authenticated"], "extra": {"scopes": ["a", "b"]}}
    bare = strategy_for(info).review(info, {}, _Ctx(Requester("bob")))
    assert bare["status"]["userInfo"] == {"username": "bob"}


def test_token_review_authenticates_only_known_tokens():
    info = _info("TokenReview")
    ctx = _Ctx(ALICE, {"good": Requester("node-1", groups=("system:nodes",))})
    ok = strategy_for(info).review(info, {"spec": {"token": "good"}}, ctx)
    assert ok["status"] == {"authenticated": True, "user": {"username": "node-1", "groups": ["system:nodes"]}}
    assert ok["spec"] == {"token": "good"}
    for body in ({"spec": {"token": "bad"}}, {"spec": {}}, {"spec": {"token": 7}}, {}):
        out = strategy_for(info).review(info, body, ctx)
        assert out["status"]["authenticated"] is False and out["status"]["error"]


def _rbac_ctx(who: Requester) -> _Ctx:
    from kybernetes.api.rbac import RbacIndex

    idx = RbacIndex(
        cluster_roles=[{"metadata": {"name": "view"},
                        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}],
        role_bindings=[{"metadata": {"name": "v", "namespace": "team"},
                        "roleRef": {"kind": "ClusterRole", "name": "view"},
                        "subjects": [{"kind": "User", "name": "alice"}]}])
    ctx = _Ctx(who)
    ctx.authorize = idx.authorize  # type: ignore[attr-defined]
    ctx.rules_for = idx.rules_for  # type: ignore[attr-defined]
    return ctx


def test_access_reviews_answer_with_the_authorizers_decision():
    body = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "team"}}}
    info = _info("SelfSubjectAccessReview")
    out = strategy_for(info).review(info, body, _rbac_ctx(ALICE))
    assert out["status"] == {"allowed": True,
                             "reason": 'RBAC: allowed by RoleBinding "v/team" of ClusterRole "view" to User "alice"'}
    other = {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "prod"}}}
    assert strategy_for(info).review(info, other, _rbac_ctx(ALICE))["status"] == {"allowed": False}
    anon = strategy_for(info).review(info, body, _rbac_ctx(Requester("system:anonymous")))
    assert anon["status"]["allowed"] is False and anon["spec"] == body["spec"]
    sar = _info("SubjectAccessReview")
    asked = {"spec": {**body["spec"], "user": "alice"}}
    assert strategy_for(sar).review(sar, asked, _rbac_ctx(Requester("bob")))["status"]["allowed"] is True
    rules = _info("SelfSubjectRulesReview")
    out = strategy_for(rules).review(rules, {"spec": {"namespace": "team"}}, _rbac_ctx(ALICE))
    assert out["status"]["resourceRules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    assert out["status"]["incomplete"] is False


def test_stored_kinds_have_no_review():
    info = _info("ConfigMap")
    assert strategy_for(info).review(info, {}, _Ctx(ALICE)) is None
