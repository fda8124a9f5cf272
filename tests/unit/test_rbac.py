"""RBAC decisions: rule matching, the subject/namespace index, upstream's wording, escalation."""

from __future__ import annotations

import orjson
import pytest

from kybernetes.api import rbac_bootstrap
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.rbac import (
    Attributes,
    RbacIndex,
    Rule,
    escalation_message,
    forbidden_message,
    missing_rules,
)
from kybernetes.api.registry import builtin_resources
from kybernetes.apiserver.auth import UserInfo
from kybernetes.apiserver.authz import Authorizer, request_attributes
from kybernetes.apiserver.watchcache import CachedObject, CacheEvent


def _role(name, rules, ns=None, labels=None):
    meta = {"name": name, **({"namespace": ns} if ns else {}), **({"labels": labels} if labels else {})}
    return {"metadata": meta, "rules": rules}


def _binding(name, kind, role, subjects, ns=None):
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": meta, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": subjects}


def _user(name):
    return {"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}


def _a(verb, resource="pods", ns="default", user="alice", groups=("system:authenticated",), **kw):
    return Attributes(user, tuple(groups), verb, kw.pop("group", ""), resource, kw.pop("sub", ""), ns,
                      kw.pop("name", ""), **kw)


def _rule_allows(rule, attrs):
    return Rule.of(rule).allows(attrs)


def test_rule_matching_verbs_groups_resources_and_names():
    r = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    assert _rule_allows(r, _a("get")) and _rule_allows(r, _a("list"))
    assert not _rule_allows(r, _a("delete"))
    assert not _rule_allows(r, _a("get", group="apps"))
    assert not _rule_allows(r, _a("get", sub="log")), "a resource rule does not grant its subresources"
    assert _rule_allows({**r, "resources": ["pods/log"]}, _a("get", sub="log"))
    assert _rule_allows({**r, "resources": ["*/log"]}, _a("get", sub="log"))
    assert not _rule_allows({**r, "resources": ["*/log"]}, _a("get"))
    assert _rule_allows({**r, "resources": ["*"]}, _a("get", "secrets", sub="x"))
    assert _rule_allows({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, _a("escalate", group="x.io"))
    named = {**r, "resourceNames": ["web"]}
    assert _rule_allows(named, _a("get", name="web"))
    assert not _rule_allows(named, _a("get", name="db"))
    assert not _rule_allows(named, _a("list")), "resourceNames never grant a list of everything"


def test_non_resource_urls_with_trailing_star():
    r = {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]}
    na = lambda p, v="get": Attributes("u", (), v, path=p, resource_request=False)  # noqa: E731
    assert _rule_allows(r, na("/healthz")) and _rule_allows(r, na("/apis/apps/v1"))
    assert not _rule_allows(r, na("/healthz/etcd")) and not _rule_allows(r, na("/metrics"))
    assert not _rule_allows(r, na("/healthz", "post"))
    assert not _rule_allows(r, _a("get")), "a non-resource rule grants no resource"


def test_index_role_bindings_cluster_roles_groups_and_service_accounts():
    idx = RbacIndex(
        roles=[_role("pod-reader", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}], ns="team")],
        cluster_roles=[_role("view", [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]),
                       _role("nodes", [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}])],
        role_bindings=[_binding("rb", "Role", "pod-reader", [_user("alice")], ns="team"),
                       _binding("rv", "ClusterRole", "view", [{"kind": "Group", "name": "devs"}], ns="team"),
                       _binding("sa", "ClusterRole", "view", [{"kind": "ServiceAccount", "name": "bot"}], ns="team")],
        cluster_role_bindings=[_binding("crb", "ClusterRole", "nodes", [_user("bob")])])
    ok = idx.authorize(_a("get", ns="team"))
    assert ok.allowed and ok.reason == ('RBAC: allowed by RoleBinding "rb/team" of Role "pod-reader" '
                                        'to User "alice"')
    assert not idx.authorize(_a("get", ns="other")).allowed, "a RoleBinding grants only in its namespace"
    assert not idx.authorize(_a("list", ns="team")).allowed
    assert idx.authorize(_a("list", ns="team", user="carol", groups=("devs",))).allowed
    assert not idx.authorize(_a("list", ns="", user="carol", groups=("devs",))).allowed
    bot = idx.authorize(_a("list", ns="team", user="system:serviceaccount:team:bot", groups=()))
    assert bot.allowed and bot.reason.endswith('to ServiceAccount "bot/team"')
    node = idx.authorize(_a("get", "nodes", ns="", user="bob"))
    assert node.reason == 'RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "nodes" to User "bob"'
    assert idx.authorize(_a("get", "nodes", ns="anything", user="bob")).allowed


def test_missing_role_is_named_in_the_denial_reason():
    idx = RbacIndex(role_bindings=[_binding("rb", "ClusterRole", "gone", [_user("alice")], ns="default")])
    d = idx.authorize(_a("get"))
    assert not d.allowed and d.reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'


def test_index_looks_only_at_the_requesters_bindings():
    bindings = [_binding(f"rb{i}", "ClusterRole", f"r{i}", [_user(f"user{i}")], ns=f"ns{i}") for i in range(1000)]
    roles = [_role(f"r{i}", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]) for i in range(1000)]
    idx = RbacIndex(cluster_roles=roles, role_bindings=bindings)
    assert len(idx._bindings("user7", ("system:authenticated",), "ns7")) == 1
    assert idx.authorize(_a("get", ns="ns7", user="user7")).allowed
    assert not idx.authorize(_a("get", ns="ns8", user="user7")).allowed


def test_forbidden_messages_as_kube_apiserver_words_them():
    assert forbidden_message(_a("list")) == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default"')
    assert forbidden_message(_a("get", "deployments", group="apps", name="web")) == (
        'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments" in API group '
        '"apps" in the namespace "default"')
    assert forbidden_message(_a("create", sub="exec", name="p")) == (
        'pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" '
        'in the namespace "default"')
    assert forbidden_message(_a("list", "nodes", ns="")) == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope')
    na = Attributes("system:anonymous", (), "get", path="/apis", resource_request=False)
    assert forbidden_message(na) == 'forbidden: User "system:anonymous" cannot get path "/apis"'


def test_request_attributes_follow_upstream_request_info():
    ra = lambda m, p, q=None: request_attributes("u", (), m, p, q or {})  # noqa: E731
    a = ra("GET", "/api/v1/namespaces/ns/pods")
    assert (a.verb, a.resource, a.namespace, a.name) == ("list", "pods", "ns", "")
    assert ra("GET", "/api/v1/pods", {"watch": "true"}).verb == "watch"
    w = ra("GET", "/api/v1/namespaces/ns/pods", {"watch": "1", "fieldSelector": "metadata.name=x"})
    assert (w.verb, w.name) == ("watch", "x")
    assert ra("GET", "/api/v1/watch/namespaces/ns/pods").verb == "watch"
    assert ra("DELETE", "/api/v1/namespaces/ns/pods").verb == "deletecollection"
    assert ra("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale").subresource == "scale"
    ex = ra("GET", "/api/v1/namespaces/ns/pods/p/exec")
    assert (ex.verb, ex.subresource, ex.name) == ("create", "exec", "p")
    px = ra("GET", "/api/v1/nodes/n1/proxy/stats/summary")
    assert (px.verb, px.resource, px.subresource, px.name, px.namespace) == ("get", "nodes", "proxy", "n1", "")
    ns = ra("GET", "/api/v1/namespaces/team")
    assert (ns.verb, ns.resource, ns.name, ns.namespace) == ("get", "namespaces", "team", "team")
    fin = ra("PUT", "/api/v1/namespaces/team/finalize")
    assert (fin.resource, fin.subresource) == ("namespaces", "finalize")
    for path in ("/api", "/apis", "/apis/apps", "/apis/apps/v1", "/version", "/openapi/v2"):
        assert not ra("GET", path).resource_request and ra("GET", path).path == path


def test_escalation_lists_what_the_writer_lacks_in_upstreams_words():
    held = [Rule.of({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]})]
    assert missing_rules(held, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/status"]}]) == []
    missing = missing_rules(held, [{"verbs": ["get", "delete"], "apiGroups": ["", "apps"], "resources": ["pods"]}])
    assert {(m["apiGroups"][0], m["verbs"][0]) for m in missing} == {("", "delete"), ("apps", "delete"),
                                                                      ("apps", "get")}
    msg = escalation_message("alice", ["system:authenticated"], missing)
    assert msg == ('user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions '
                   'not currently held:\n'
                   '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
                   '{APIGroups:["apps"], Resources:["pods"], Verbs:["delete" "get"]}')
    named = [Rule.of({"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]})]
    assert missing_rules(named, [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}])
    assert not missing_rules(named, [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                                      "resourceNames": ["a"]}])
    urls = [Rule.of({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]})]
    assert not missing_rules(urls, [{"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}])
    assert missing_rules(urls, [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}])


def test_bootstrap_policy_and_reconcile_adds_without_removing():
    roles = {r["metadata"]["name"]: r for r in rbac_bootstrap.cluster_roles()}
    assert roles["view"]["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]
    assert roles["view"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert roles["system:aggregate-to-edit"]["metadata"]["labels"] == {
        "kubernetes.io/bootstrapping": "rbac-defaults", "rbac.authorization.k8s.io/aggregate-to-edit": "true"}
    bindings = {b["metadata"]["name"]: b for b in rbac_bootstrap.cluster_role_bindings()}
    assert bindings["system:public-info-viewer"]["subjects"][1]["name"] == "system:unauthenticated"
    desired = roles["system:basic-user"]
    assert rbac_bootstrap.reconcile(None, desired) == desired
    assert rbac_bootstrap.reconcile(desired, desired) is None
    trimmed = {**desired, "rules": desired["rules"][:1] + [{"verbs": ["get"], "apiGroups": [""],
                                                             "resources": ["mine"]}]}
    fixed = rbac_bootstrap.reconcile(trimmed, desired)
    assert fixed is not None and len(fixed["rules"]) == 3 and fixed["rules"][1]["resources"] == ["mine"]
    frozen = {**trimmed, "metadata": {**trimmed["metadata"],
                                      "annotations": {rbac_bootstrap.AUTOUPDATE: "false"}}}
    assert rbac_bootstrap.reconcile(frozen, desired) is None
    crb = bindings["cluster-admin"]
    extra = {**crb, "subjects": [_user("ops")]}
    assert [s["name"] for s in rbac_bootstrap.reconcile(extra, crb)["subjects"]] == ["ops", "system:masters"]


def test_rules_for_reports_the_rules_that_apply():
    idx = RbacIndex(
        cluster_roles=[_role("disc", [{"verbs": ["get"], "nonResourceURLs": ["/api"]}]),
                       _role("view", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])],
        role_bindings=[_binding("rb", "ClusterRole", "view", [_user("alice")], ns="team")],
        cluster_role_bindings=[_binding("d", "ClusterRole", "disc", [{"kind": "Group", "name": "g"}])])
    res, non, err = idx.rules_for("alice", ("g",), "team")
    assert res == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    assert non == [{"verbs": ["get"], "nonResourceURLs": ["/api"]}] and err == ""
    assert idx.rules_for("alice", ("g",), "other")[0] == []


def test_aggregation_gathers_selected_roles_rules_in_name_order():
    from kybernetes.controllers.clusterroleaggregation import aggregated_rules

    roles = {r["metadata"]["name"]: r for r in rbac_bootstrap.cluster_roles()}
    view = aggregated_rules(roles["view"], list(roles.values()))
    assert view == roles["system:aggregate-to-view"]["rules"]
    edit = aggregated_rules(roles["edit"], list(roles.values()))
    # edit selects system:aggregate-to-edit and view (still empty here: filled in a later pass).
    assert edit == roles["system:aggregate-to-edit"]["rules"]
    filled = {**roles, "view": {**roles["view"], "rules": view}}
    edit = aggregated_rules(filled["edit"], list(filled.values()))
    assert edit[:len(filled["system:aggregate-to-edit"]["rules"])] == filled["system:aggregate-to-edit"]["rules"]
    assert all(r in edit for r in view)
    extra = _role("crd-viewer", [{"verbs": ["get"], "apiGroups": ["x.io"], "resources": ["widgets"]}],
                  labels={"rbac.authorization.k8s.io/aggregate-to-view": "true"})
    # Selected roles are visited in name order: crd-viewer before system:aggregate-to-view.
    assert aggregated_rules(roles["view"], [*roles.values(), extra])[0]["resources"] == ["widgets"]
    assert aggregated_rules(roles["system:basic-user"], list(roles.values())) is None


async def test_aggregation_controller_writes_only_changed_roles():
    from kybernetes.controllers.clusterroleaggregation import CLUSTERROLES, ClusterRoleAggregationController
    from kybernetes.testing.fakes import FakeClient, FakeInformers

    informers = FakeInformers()
    client = FakeClient(informers)
    roles = rbac_bootstrap.cluster_roles()
    client.add(CLUSTERROLES, *roles)
    ctl = ClusterRoleAggregationController(client, informers)
    await ctl.sync("view")
    view = informers.informer(CLUSTERROLES).get(None, "view")
    assert view["rules"] == next(r for r in roles if r["metadata"]["name"] == "system:aggregate-to-view")["rules"]
    before = len(client.calls)
    await ctl.sync("view")
    assert len(client.calls) == before, "an up-to-date role is not written again"


class _Cache:
    """The watch cache as the Authorizer uses it: listeners, and an initial list."""

    def __init__(self):
        self.listeners = []

    def add_listener(self, fn):
        self.listeners.append(fn)

    def list(self, prefix):
        return []

    def put(self, kind, obj):
        meta = obj["metadata"]
        key = f"/registry/rbac.authorization.k8s.io/{kind}/" + "/".join(
            x for x in (meta.get("namespace"), meta["name"]) if x)
        co = CachedObject(key, obj, orjson.dumps(obj), 1)
        for fn in self.listeners:
            fn(CacheEvent("ADDED", 1, key, co, None))


def test_authorizer_follows_the_cache_and_keeps_decisions_per_query():
    cache = _Cache()
    authz = Authorizer(cache)  # type: ignore[arg-type]
    alice = UserInfo("alice", groups=["system:authenticated"])
    with pytest.raises(ApiError) as e:
        authz.check_request(alice, "GET", "/api/v1/namespaces/team/pods", {}, "")
    assert e.value.code == 403
    cache.put("clusterroles", _role("lister", [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]))
    cache.put("rolebindings", _binding("b", "ClusterRole", "lister", [_user("alice")], ns="team"))
    authz.check_request(alice, "GET", "/api/v1/namespaces/team/pods", {}, "")
    # The same path as a watch is another question: not answered from the list's decision.
    with pytest.raises(ApiError) as e:
        authz.check_request(alice, "GET", "/api/v1/namespaces/team/pods", {"watch": "1"}, "watch=1")
    assert "cannot watch resource" in e.value.message
    master = UserInfo("admin", groups=["system:masters"])
    authz.check_request(master, "DELETE", "/api/v1/nodes", {}, "")


def test_escalation_checks_of_roles_bindings_and_aggregation():
    cache = _Cache()
    authz = Authorizer(cache)  # type: ignore[arg-type]
    pods = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    secrets = {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}
    write_rbac = {"verbs": ["create"], "apiGroups": ["rbac.authorization.k8s.io"],
                  "resources": ["clusterroles", "rolebindings"]}
    cache.put("clusterroles", _role("writer", [pods, write_rbac]))
    cache.put("clusterroles", _role("secret-reader", [secrets]))
    cache.put("clusterrolebindings", _binding("w", "ClusterRole", "writer", [_user("alice")]))
    alice = Requester("alice", groups=("system:authenticated",))
    infos = {i.plural: i for i in builtin_resources() if i.group == "rbac.authorization.k8s.io"}
    authz.check_escalation(infos["clusterroles"], _role("mine", [pods]), alice)
    with pytest.raises(ApiError) as e:
        authz.check_escalation(infos["clusterroles"], _role("more", [pods, secrets]), alice)
    assert e.value.code == 403 and e.value.message == (
        'clusterroles.rbac.authorization.k8s.io "more" is forbidden: user "alice" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}')
    aggregated = {**_role("agg", []), "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}
    with pytest.raises(ApiError) as e:
        authz.check_escalation(infos["clusterroles"], aggregated, alice)
    assert e.value.message.endswith("must have cluster-admin privileges to use the aggregationRule")
    binding = _binding("sr", "ClusterRole", "secret-reader", [_user("bob")], ns="team")
    with pytest.raises(ApiError) as e:
        authz.check_escalation(infos["rolebindings"], binding, alice)
    assert e.value.message.startswith('rolebindings.rbac.authorization.k8s.io "sr" is forbidden: user "alice"')
    authz.check_escalation(infos["rolebindings"], _binding("w2", "ClusterRole", "writer", [_user("bob")],
                                                           ns="team"), alice)
    # `bind` on that one role lets alice bind it without holding its rules; `escalate` likewise for roles.
    cache.put("clusterroles", _role("binder", [{"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"],
                                                "resources": ["clusterroles"], "resourceNames": ["secret-reader"]},
                                               {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"],
                                                "resources": ["clusterroles"]}]))
    cache.put("clusterrolebindings", _binding("b", "ClusterRole", "binder", [_user("alice")]))
    authz.check_escalation(infos["rolebindings"], binding, alice)
    authz.check_escalation(infos["clusterroles"], _role("more", [pods, secrets]), alice)
    authz.check_escalation(infos["clusterroles"], _role("x", [secrets]), Requester("root", groups=("system:masters",)))
    authz.check_escalation(infos["clusterroles"], _role("x", [secrets]), None)


class _Headers(dict):
    def getall(self, key, default=()):
        v = self.get(key)
        return [v] if v is not None else list(default)


def test_impersonation_checks_each_header_with_the_impersonate_verb():
    cache = _Cache()
    authz = Authorizer(cache)  # type: ignore[arg-type]
    admin = UserInfo("root", groups=["system:masters", "system:authenticated"])
    h = _Headers({"Impersonate-User": "system:serviceaccount:team:bot", "Impersonate-Uid": "u-1",
                  "Impersonate-Extra-Scopes": "view"})
    sa = authz.impersonate(admin, h, h.getall)
    assert sa.username == "system:serviceaccount:team:bot" and sa.uid == "u-1"
    assert sa.groups == ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"]
    assert sa.extra == {"scopes": ["view"]}
    alice = UserInfo("alice", groups=["system:authenticated"])
    with pytest.raises(ApiError) as e:
        authz.impersonate(alice, h, h.getall)
    assert e.value.message == ('serviceaccounts "bot" is forbidden: User "alice" cannot impersonate resource '
                               '"serviceaccounts" in API group "" in the namespace "team"')
    cache.put("clusterroles", _role("imp", [
        {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]},
        {"verbs": ["impersonate"], "apiGroups": ["authentication.k8s.io"], "resources": ["uids"]}]))
    cache.put("clusterrolebindings", _binding("imp", "ClusterRole", "imp", [_user("alice")]))
    with pytest.raises(ApiError) as e:
        authz.impersonate(alice, h, h.getall)
    assert e.value.message == ('userextras.authentication.k8s.io "view" is forbidden: User "alice" cannot '
                               'impersonate resource "userextras/scopes" in API group "authentication.k8s.io" '
                               'at the cluster scope')
    h.pop("Impersonate-Extra-Scopes")
    assert authz.impersonate(alice, h, h.getall).username == "system:serviceaccount:team:bot"
    groups_only = _Headers({"Impersonate-Group": "g"})
    with pytest.raises(ApiError) as e:
        authz.impersonate(admin, groups_only, groups_only.getall)
    assert e.value.code == 400 and "without impersonating a user" in e.value.message
